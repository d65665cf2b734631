"""``attempts(response)``: the attempt history of the call that produced a response."""

from __future__ import annotations

from typing import Any

from resilience.core.records import Attempt
from resilience.errors import ResilienceError
from resilience.retry.flow import ATTEMPTS_KEY, ERROR_ATTEMPTS, Call

__all__ = ["attempts"]


def attempts(outcome: Any) -> list[Attempt]:
    """The :class:`Attempt` records of the call that produced ``outcome``.

    Args:
        outcome: a ``requests.Response`` or ``httpx.Response``; or the exception
            a call raised after its attempts (a network error that survived
            them, the client's timeout at the deadline, or an error of the
            event hooks).

    Returns:
        The records, first attempt first; ``[]`` for a response or an error
        that did not come through a resilient transport.
    """
    if isinstance(outcome, BaseException):
        found = getattr(outcome, ERROR_ATTEMPTS, None)
        if found is None and isinstance(outcome, ResilienceError):
            return list(outcome.attempts)
        return list(found) if isinstance(found, tuple) else []
    extensions = getattr(outcome, "extensions", None)
    if isinstance(extensions, dict):
        found = extensions.get(ATTEMPTS_KEY)
    else:
        found = getattr(outcome, "_resilience_attempts", None)
    if isinstance(found, Call):
        return list(found.resolve(getattr(outcome, "headers", None)))
    return list(found) if isinstance(found, tuple) else []
