"""The one decision flow, with no I/O: an attempt's outcome in, a decision out.

A :class:`CallState` lives for one logical call. The shells (requests adapter,
httpx transports) report each attempt with :meth:`CallState.on_response` or
:meth:`CallState.on_error` and get back a :class:`Decision`: return the answer,
retry after ``delay`` seconds (in the same or another region), or give up and
hand back the last answer. Time comes in as an argument; nothing here sleeps,
reads a clock or touches a socket.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from resilience.core.backoff import Uniform, jittered, nominal
from resilience.core.classification import Category, Classification
from resilience.core.policy import Policy
from resilience.strategies.budget import Budget

__all__ = [
    "Action",
    "Attempt",
    "CallState",
    "Decision",
    "ErrorKind",
    "RetryEvent",
    "UNSAFE_METHODS",
]

#: Methods whose repetition may repeat a side effect (RFC 9110 §9.2.2).
UNSAFE_METHODS = frozenset({"POST", "PATCH"})

#: Gameye's documented wait before retrying a region without capacity.
CAPACITY_WAIT = (2.0, 5.0)


class ErrorKind(enum.Enum):
    """What a network error says about whether the request was processed."""

    CONNECT = "connect"
    """Not sent (connection refused, connect timeout): safe to retry any method."""
    UNKNOWN = "unknown"
    """Sent, answer lost (read timeout, dropped connection): may have been processed."""
    FATAL = "fatal"
    """Retrying cannot help (TLS verification, invalid URL): never retried."""


class Action(enum.Enum):
    """What the shell does next."""

    RETURN = "return"
    """The answer is final: hand it to the caller."""
    RETRY = "retry"
    """Wait ``delay`` seconds, then send again (to ``region``)."""
    GIVE_UP = "give_up"
    """Would retry but may not: hand the last answer (or error) to the caller."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a call, as :func:`resilience.attempts` reports it.

    Attributes:
        number: 1-based.
        status: the HTTP status, or ``None`` after a network error.
        error: the network error's class name, or ``None``.
        delay: seconds waited before this attempt.
        region: the region it was sent to, when regions are in use.
        classification: the verdict on the answer, or ``None`` after an error.
        outcome: what followed: ``"return"``, ``"retry"``, ``"failover"`` or
            why the call stopped (``"max_attempts reached"``, ...).
    """

    number: int
    status: int | None
    error: str | None
    delay: float
    region: str | None
    classification: Classification | None
    outcome: str = "return"


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Given to ``on_retry`` before each wait.

    Attributes:
        attempt: the number of the attempt that just failed.
        delay: seconds about to be waited.
        classification: the verdict on its answer, or ``None`` after an error.
        error: the network error's class name, or ``None``.
        method: the request method.
        url: the request URL, credentials removed.
        region: the region of the failed attempt.
        next_region: the region of the next one (equal unless failing over).
        reason: ``"retry"`` or ``"failover"``.
    """

    attempt: int
    delay: float
    classification: Classification | None
    error: str | None
    method: str
    url: str
    region: str | None
    next_region: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The core's answer about one attempt.

    Attributes:
        action: return, retry or give up.
        delay: seconds to wait before the next attempt (``RETRY`` only).
        region: the region of the next attempt.
        reason: ``"retry"``/``"failover"``, or why the call ends.
        classification: the attempt's classification as finally understood
            (a Gameye 409 after an unknown outcome becomes ``ALREADY_DONE``).
        event: what ``on_retry`` receives (``RETRY`` only).
    """

    action: Action
    delay: float = 0.0
    region: str | None = None
    reason: str = "return"
    classification: Classification | None = None
    event: RetryEvent | None = None


class CallState:
    """The state of one logical call; created per call, never shared.

    Args:
        policy: the policy in force.
        method: the request method.
        url: the request URL with credentials removed (for events).
        started: the monotonic time at which the call started.
        region: the region of the first attempt (``None``: regions not in use).
        replayable: whether the body can be sent again.
        idempotent: ``() -> bool``, whether a POST/PATCH carries an idempotency
            key (asked only when it matters).
        budget: the transport's retry budget, or ``None``.
        uniform: random source, :func:`random.uniform` by default.
    """

    __slots__ = (
        "_capacity_here",
        "_idempotent",
        "_pending_delay",
        "_previous_backoff",
        "_tried",
        "_unknown_before",
        "_waited",
        "attempts",
        "budget",
        "method",
        "policy",
        "region",
        "replayable",
        "started",
        "uniform",
        "url",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        method: str,
        url: str,
        started: float,
        region: str | None = None,
        replayable: bool = True,
        idempotent: Callable[[], bool] | None = None,
        budget: Budget | None = None,
        uniform: Uniform = random.uniform,
    ) -> None:
        self.policy = policy
        self.method = method.upper()
        self.url = url
        self.started = started
        self.region = region
        self.replayable = replayable
        self.budget = budget
        self.uniform = uniform
        self.attempts: list[Attempt] = []
        self._idempotent = idempotent
        self._pending_delay = 0.0
        self._waited = 0.0
        self._previous_backoff: float | None = None
        self._capacity_here = 0
        self._tried = {region} if region is not None else set()
        self._unknown_before = False

    # -- reporting outcomes ---------------------------------------------------

    def on_response(self, classification: Classification, now: float) -> Decision:
        """Decide what follows an answer classified as ``classification``."""
        c = classification
        if (
            c.category is Category.CONFLICT
            and self._unknown_before
            and self.method in UNSAFE_METHODS
        ):
            # The earlier attempt's answer was lost but it created the resource:
            # "already exists" now means "done".
            c = replace(c, category=Category.ALREADY_DONE, retryable=False)
            return self._finish(c, None, Action.RETURN, "already done by an earlier attempt")
        if not c.retryable:
            if self.budget is not None:
                self.budget.record_success()
            return self._finish(c, None, Action.RETURN, "return")
        if self.budget is not None:
            self.budget.record_failure()
        may_have_run = c.category is Category.TRANSIENT and c.status != 503
        if may_have_run:
            if not self._may_repeat():
                return self._finish(c, None, Action.GIVE_UP, self._not_repeated)
            self._unknown_before = True
        return self._retry(c, None, now)

    def on_error(self, kind: ErrorKind, error: str, now: float) -> Decision:
        """Decide what follows a network error of class ``error``."""
        if kind is ErrorKind.FATAL:
            return self._finish(None, error, Action.GIVE_UP, "not retryable")
        if self.budget is not None:
            self.budget.record_failure()
        if kind is ErrorKind.UNKNOWN:
            if not self._may_repeat():
                return self._finish(None, error, Action.GIVE_UP, self._not_repeated)
            self._unknown_before = True
        return self._retry(None, error, now)

    def abandon(self, reason: str) -> None:
        """The shell could not carry out the last retry (open circuit, local limit)."""
        if self.attempts:
            self.attempts[-1] = replace(self.attempts[-1], outcome=reason)

    def add_wait(self, seconds: float) -> None:
        """Count a wait the shell made before the next attempt (local pacing)."""
        self._waited += seconds
        self._pending_delay += seconds

    # -- internals ------------------------------------------------------------

    @property
    def _not_repeated(self) -> str:
        return f"{self.method} may have been processed; not repeated without an idempotency key"

    def _may_repeat(self) -> bool:
        if self.method not in UNSAFE_METHODS or self.policy.retry_non_idempotent:
            return True
        return self._idempotent is not None and self._idempotent()

    def _finish(
        self, c: Classification | None, error: str | None, action: Action, reason: str
    ) -> Decision:
        self._record(c, error, reason)
        return Decision(action, reason=reason, classification=c, region=self.region)

    def _record(self, c: Classification | None, error: str | None, outcome: str) -> None:
        self.attempts.append(
            Attempt(
                number=len(self.attempts) + 1,
                status=c.status if c is not None else None,
                error=error,
                delay=self._pending_delay,
                region=self.region,
                classification=c,
                outcome=outcome,
            )
        )

    def _backoff(self) -> float:
        p = self.policy
        cap = nominal(p.steps, len(self.attempts), p.backoff_multiplier, p.backoff_max)
        delay = jittered(
            p.jitter,
            cap,
            initial=p.backoff_initial,
            maximum=p.backoff_max,
            previous=self._previous_backoff,
            uniform=self.uniform,
        )
        self._previous_backoff = delay
        return delay

    def _retry(self, c: Classification | None, error: str | None, now: float) -> Decision:
        p = self.policy
        number = len(self.attempts) + 1
        if number >= p.max_attempts:
            return self._finish(c, error, Action.GIVE_UP, "max_attempts reached")
        if not self.replayable:
            return self._finish(c, error, Action.GIVE_UP, "request body cannot be replayed")
        retry_after = c.retry_after if (c is not None and p.respect_retry_after) else None
        too_long = retry_after is not None and retry_after > p.retry_after_max
        next_region = self.region
        reason = "retry"
        category = c.category if c is not None else Category.TRANSIENT
        if category is Category.CAPACITY:
            if self._capacity_here < p.capacity_retries and not too_long:
                delay = retry_after if retry_after is not None else self.uniform(*CAPACITY_WAIT)
            else:
                # Another region does not wait, whatever this one asked.
                next_region = self._next_region()
                if next_region is None:
                    why = "no region left to fail over to"
                    return self._finish(c, error, Action.GIVE_UP, why)
                delay, reason = 0.0, "failover"
        elif too_long:
            assert retry_after is not None
            why = f"Retry-After {retry_after:g}s exceeds retry_after_max"
            return self._finish(c, error, Action.GIVE_UP, why)
        elif retry_after is not None:
            delay = retry_after
        elif category is Category.CONFLICT_PENDING:
            delay = max(self._backoff(), p.conflict_delay)
        else:
            delay = self._backoff()
        # Elapsed time counts the waits already asked for too, so that an
        # injected sleep that returns at once still meets the deadline.
        elapsed = max(now - self.started, self._waited)
        if p.deadline is not None and elapsed + delay > p.deadline:
            return self._finish(c, error, Action.GIVE_UP, "deadline would be crossed")
        if self.budget is not None and not self.budget.allows_retry():
            return self._finish(c, error, Action.GIVE_UP, "retry budget exhausted")
        self._record(c, error, reason)
        event = RetryEvent(
            attempt=number,
            delay=delay,
            classification=c,
            error=error,
            method=self.method,
            url=self.url,
            region=self.region,
            next_region=next_region,
            reason=reason,
        )
        if reason == "failover" and next_region is not None:
            self._capacity_here = 0
            self._tried.add(next_region)
        elif category is Category.CAPACITY:
            self._capacity_here += 1
        self.region = next_region
        self._pending_delay = delay
        self._waited += delay
        return Decision(Action.RETRY, delay, next_region, reason, c, event)

    def _next_region(self) -> str | None:
        for region in self.policy.regions or ():
            if region not in self._tried:
                return region
        return None
