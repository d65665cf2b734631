"""Hedged sends: the decisions of one race (no I/O); the runners that carry them
out live in :mod:`~resilience.retry.racing_threads` (sync) and
:mod:`~resilience.retry.racing_tasks` (async).

When the pipeline hedges (see :mod:`resilience.strategies.hedge`), an attempt
is sent as a race: copy 0 goes at once; whenever :meth:`Race.due` says a copy
is due and the pipeline permits one (:meth:`Race.hedge`), another copy of the
request goes. Each answer is handed to :meth:`Race.finished`: the first usable
one wins, an unusable one (a network error, 409, 420, 429 or a 5xx other than
501: what a retry might fix) waits for the copies still in flight, and the last
answer of all is the attempt's answer, which the retry flow then takes as it
takes any other (so a race of failures falls back to the normal retry rules).

Whatever did not win is closed: answers that lost are drained and closed as
they come; copies still in flight are cancelled (async), cut short (the first
copy of a sync shell over its own connections, see
:class:`~resilience.retry.racing_threads.Cut`) or closed when they answer (the
other sync copies). The runners:

* :func:`~resilience.retry.racing_threads.race_inline`: a sync shell whose
  sends can be cut sends copy 0 from the caller's thread; a timer sends the
  hedges from a pool thread.
* :func:`~resilience.retry.racing_threads.race`: any other sync shell (a mock
  or a user's own transport) sends every copy from a pool thread while the
  caller waits.
* :func:`~resilience.retry.racing_tasks.race_async`: under asyncio the caller
  sends copy 0 and a loop timer starts the hedges as tasks; under trio every
  copy is a task of a task group.

The flow learns the race's copies from
:attr:`Call.round <resilience.retry.flow.Call.round>` and records them as
attempts: hedges with reason ``"hedge"``, losers with outcome ``"cancelled"``
or ``"superseded"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from resilience.retry.rounds import Copy, Round, unusable

__all__ = ["Contestant", "Copies", "Race"]


class Copies(NamedTuple):
    """How a runner sends and closes the copies of one raced attempt.

    Attributes:
        request: the request of copy 0.
        send: ``send(request, budget)`` of the shell (a response, or for an
            async shell an awaitable of one).
        discard: closes a response that will not be returned (awaitable for
            an async shell).
        copy_of: a copy of the request for a hedge (its own timeouts).
        budget: the time budget of a copy sent at a monotonic time.
    """

    request: Any
    send: Callable[[Any, float | None], Any]
    discard: Callable[[Any], Any]
    copy_of: Callable[[Any], Any]
    budget: Callable[[float], float | None]


class Contestant(Protocol):
    """What a race reads and tells of the call it runs for (a
    :class:`~resilience.retry.flow.Call`)."""

    sent: float | None

    @property
    def core(self) -> Any:
        """The transport's shared state: ``pipeline`` and ``monotonic``."""

    @property
    def wire(self) -> Any:
        """The library adapter (``status`` of a response)."""

    def report_hedge(self, index: int, delay: float) -> None:
        """A hedged copy is being sent."""

    def heard_loser(self, outcome: Any, sent: float, now: float) -> None:
        """A copy answered unusably while another was in flight."""


class Race:
    """The decisions of one hedged attempt (no I/O, no sleeping).

    Args:
        call: the call.
        first_delay: seconds after copy 0 at which a copy is due.
        now: monotonic time copy 0 is sent.
        allowed: copies the call's ``max_attempts`` leaves for this attempt.
    """

    __slots__ = ("_due", "allowed", "call", "copies", "over", "winner")

    def __init__(self, call: Contestant, first_delay: float, now: float, allowed: int) -> None:
        self.call = call
        self.copies = [Copy(0, now, 0.0)]
        self.allowed = allowed
        self._due: float | None = now + first_delay if allowed > 1 else None
        self.winner: int | None = None
        self.over = False

    def due(self, now: float) -> float | None:
        """Seconds until another copy is due (``0.0``: now), ``None``: no more copies."""
        if self._due is None:
            return None
        return max(0.0, self._due - now)

    @property
    def in_flight(self) -> int:
        """Copies sent that have not answered."""
        return sum(1 for c in self.copies if not c.answered)

    def hedge(self, now: float) -> Copy | None:
        """The next copy to send now, or ``None`` when the pipeline refuses it
        (no more copies are due after a refusal)."""
        call = self.call
        pipeline = call.core.pipeline
        sent = len(self.copies)
        if sent >= self.allowed or not pipeline.permits_hedge(call, now):
            self._due = None
            return None
        copy = Copy(sent, now, now - self.copies[0].sent)
        self.copies.append(copy)
        call.report_hedge(copy.index, copy.delay)
        after = pipeline.hedge_delay(call, sent + 1)
        self._due = now + after if after is not None and sent + 1 < self.allowed else None
        return copy

    def timed_out(self, now: float) -> Copy | None:
        """The wait for an answer ended without one: the copy to send now, or
        ``None`` (woken before a copy was due, no more copies are due, or the
        pipeline refused one)."""
        wait = self.due(now)
        if wait is None or wait > 0:
            return None
        return self.hedge(now)

    def unsent(self, copy: Copy) -> None:
        """``copy`` could not be sent after all (no thread free): no more copies."""
        self.copies.remove(copy)
        self._due = None

    def finished(self, index: int, outcome: Any, now: float) -> bool:
        """Hear copy ``index``'s answer (a response or an exception); ``True``
        when it ends the race (it won: the caller takes it), ``False`` when it
        lost (the caller closes it)."""
        copy = self.copies[index]
        copy.answered = True
        call = self.call
        wire = call.wire
        if isinstance(outcome, BaseException):
            usable, status = False, None
        else:
            status = wire.status(outcome)
            usable = unusable(status) is None
        if usable or self.in_flight == 0:
            self.winner = index
            self.over = True
            call.sent = copy.sent
            return True
        # Unusable, and another copy may still answer: this one is superseded.
        copy.status, copy.outcome = status, "superseded"
        copy.error = type(outcome).__name__ if status is None else None
        call.heard_loser(outcome, copy.sent, now)
        return False

    def round(self) -> Round | None:
        """What the flow records, or ``None`` when copy 0 ran alone."""
        if len(self.copies) == 1 or self.winner is None:
            return None
        return Round(tuple(self.copies), self.winner)
