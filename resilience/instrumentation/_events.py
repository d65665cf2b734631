"""What the instrumentation hooks receive: one event per attempt, one per call."""

from __future__ import annotations

from dataclasses import dataclass

from resilience.core.classification import Category
from resilience.core.records import Attempt

__all__ = ["AttemptEvent", "CallEvent"]


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    """One attempt of a call has ended and the core has decided what follows.

    Attributes:
        attempt: the attempt's number, from 1.
        method: the request method.
        url: the request URL, credentials removed.
        vendor: the vendor that answered (``"generic"`` when none is known).
        category: what the answer means, or ``None`` after a network error.
        status: the HTTP status, or ``None`` after a network error.
        error: the network error's class name, or ``None``.
        delay: seconds to be waited before the next attempt (``0.0``: none).
        region: the region the attempt was sent to.
        next_region: the region of the next attempt (equal unless failing over).
        reason: ``"retry"``, ``"failover"``, ``"return"`` (the answer ends the
            call) or ``"give_up"`` (the policy would retry but may not).
        why: why the call stops, for ``"give_up"`` (``"max_attempts reached"``...).
        trace_id: the vendor's trace id of the answer.
        code: the vendor's machine code of the answer.
    """

    attempt: int
    method: str
    url: str
    vendor: str
    category: Category | None
    status: int | None
    error: str | None
    delay: float
    region: str | None
    next_region: str | None
    reason: str
    why: str | None = None
    trace_id: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call has ended.

    Attributes:
        method: the request method.
        url: the request URL, credentials removed.
        vendor: the vendor of the last answer (``"generic"`` when none is known).
        outcome: ``"success"`` (an answer under 400, or one the vendor calls
            done), ``"failure"`` (another answer returned) or ``"error"`` (an
            exception raised).
        status: the status of the answer returned, or ``None``.
        error: the class name of the exception raised, or ``None``.
        attempts: the call's attempts, first first.
        duration: seconds from the start of the call to its end.
    """

    method: str
    url: str
    vendor: str
    outcome: str
    status: int | None
    error: str | None
    attempts: tuple[Attempt, ...]
    duration: float

    @property
    def resends(self) -> int:
        """Requests sent again (OpenTelemetry's ``http.request.resend_count``)."""
        return max(0, len(self.attempts) - 1)
