"""The copies of a raced attempt, as values the loop records (see
:mod:`resilience.retry.racing`)."""

from __future__ import annotations

from dataclasses import dataclass

from resilience.core.records import Attempt
from resilience.strategies.base import Outcome

__all__ = ["Copy", "Round", "unusable"]


def unusable(status: int) -> Outcome | None:
    """What an answer of ``status`` tells the strategies when a retry might
    fix it (409, 420, 429, a 5xx other than 501), for any vendor; ``None``:
    a usable answer, which ends a race.

    A race judges its copies by status alone, before any body is read: the
    answer that ends it is then classified by the flow as any other.
    """
    if status == 429:
        return Outcome.THROTTLED
    if status >= 500 and status != 501:
        return Outcome.FAILURE
    if status in (409, 420):
        return Outcome.DEFERRED
    return None


@dataclass(slots=True)
class Copy:
    """One copy of the attempt in a race.

    Attributes:
        index: 0 for the attempt itself, then the hedges in the order sent.
        sent: monotonic time it was sent.
        delay: seconds after copy 0 it was sent (0 for copy 0).
        status: the status of its answer, once unusable (``None``: none).
        error: the class name of its error, once failed.
        outcome: ``"cancelled"`` while in flight or beaten; ``"superseded"``
            once it answered unusably while another copy was in flight.
    """

    index: int
    sent: float
    delay: float
    status: int | None = None
    error: str | None = None
    outcome: str = "cancelled"
    answered: bool = False

    def attempt(self, number: int, delay: float, region: str | None, reason: str) -> Attempt:
        """This losing copy as an attempt of the call's history."""
        return Attempt(number, self.status, self.error, delay, region, None, self.outcome, reason)


@dataclass(frozen=True, slots=True)
class Round:
    """The copies of one raced attempt and which of them won."""

    copies: tuple[Copy, ...]
    winner: int
