"""Hedged sends: the decisions of one race (no I/O), and the two shells that run it.

When the pipeline hedges (see :mod:`resilience.strategies.hedge`), an attempt
is sent as a race: copy 0 goes at once; whenever :meth:`Race.due` says a copy
is due and the pipeline permits one (:meth:`Race.hedge`), another copy of the
request goes. Each answer is handed to :meth:`Race.finished`: the first usable
one wins, an unusable one (a network error, 409, 420, 429 or a 5xx other than
501: what a retry might fix) waits for the copies still in flight, and the last
answer of all is the attempt's answer, which the retry flow then takes as it
takes any other (so a race of failures falls back to the normal retry rules).

Whatever did not win is closed: answers that lost are drained and closed as
they come, copies still in flight are cancelled (async) or closed when they
answer (sync: a blocking send cannot be interrupted). The flow learns the
race's copies from :attr:`Call.round <resilience.retry.flow.Call.round>` and
records them as attempts: hedges with reason ``"hedge"``, losers with outcome
``"cancelled"`` or ``"superseded"``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from resilience.retry.rounds import Copy, Round, unusable

if TYPE_CHECKING:
    import asyncio

__all__ = ["Contestant", "HedgePool", "Race", "race", "race_async"]

_log = logging.getLogger(__name__)


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
        ``None`` (woken before a copy was due, or the pipeline refused one)."""
        if self.due(now):
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


class HedgePool:
    """The bounded threads a sync transport sends raced copies from.

    Threads start on first use and wait for the next copy on one queue (a
    copy handed to a waiting thread costs one queue put: a raced call pays
    two thread switches and little else). A copy that finds every thread
    busy is not sent (a call whose first copy finds it so is sent unhedged
    from its own thread). The threads are daemons: a send that never ends
    does not hold up the interpreter's exit.
    """

    __slots__ = ("_closed", "_idle", "_jobs", "_lock", "_started", "threads")

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job, none promised one
        self._started = 0
        self._closed = False

    def submit(self, job: Callable[[], None]) -> bool:
        """Run ``job`` on a free thread; ``False`` (not run) when none is free
        or the pool was shut down."""
        with self._lock:
            if self._closed:
                return False
            if self._idle:
                self._idle -= 1  # that thread's next job is this one
            elif self._started < self.threads:
                self._started += 1
                threading.Thread(
                    target=self._work, name=f"resilience-hedge-{self._started}", daemon=True
                ).start()
            else:
                return False
        self._jobs.put(job)
        return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # a job reports its own outcome; never lose the thread
                _log.debug("a hedged copy's job failed", exc_info=True)
            with self._lock:
                if self._closed:
                    return
                self._idle += 1

    def shutdown(self) -> None:
        """Stop taking copies; idle threads end now, busy ones when their send does."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)


def race(
    hedge_race: Race,
    pool: HedgePool,
    send: Callable[[Any, float | None], Any],
    discard: Callable[[Any], None],
    request: Any,
    copy_of: Callable[[Any], Any],
    budget: Callable[[float], float | None],
) -> Any:
    """Run ``hedge_race`` from a sync shell; return the answer that ended it
    (a response, or the exception a copy raised).

    Args:
        hedge_race: the race, copy 0 already counted.
        pool: the transport's threads.
        send: ``send(request, budget)`` of the shell.
        discard: closes a response that will not be returned.
        request: the request of copy 0.
        copy_of: a copy of the request for a hedge (its own timeouts).
        budget: the time budget of a copy sent at a monotonic time.
    """
    answers: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
    lock = threading.Lock()
    clock = hedge_race.call.core.monotonic

    def job(index: int, req: Any, seconds: float | None) -> Callable[[], None]:
        def run() -> None:
            try:
                outcome: Any = send(req, seconds)
            except Exception as exc:
                outcome = exc
            with lock:
                if not hedge_race.over:
                    answers.put((index, outcome))
                    return
            if not isinstance(outcome, BaseException):  # beaten: give the connection back
                _quietly(discard, outcome)

        return run

    if not pool.submit(job(0, request, budget(hedge_race.copies[0].sent))):
        return send(request, budget(hedge_race.copies[0].sent))  # the pool is full: unhedged
    outcome: Any = None
    try:
        while True:
            wait = hedge_race.due(clock())
            try:
                index, outcome = answers.get(timeout=wait)
            except queue.Empty:
                now = clock()
                copy = hedge_race.timed_out(now)
                if copy is not None:
                    req = copy_of(request)
                    if not pool.submit(job(copy.index, req, budget(now))):
                        hedge_race.unsent(copy)
                continue
            if hedge_race.finished(index, outcome, clock()):
                return outcome
            if not isinstance(outcome, BaseException):
                discard(outcome)
    finally:
        with lock:
            hedge_race.over = True
        while True:  # answers that came in before the race was marked over
            try:
                _, late = answers.get_nowait()
            except queue.Empty:
                break
            if late is not outcome and not isinstance(late, BaseException):
                _quietly(discard, late)


async def race_async(
    hedge_race: Race,
    send: Callable[[Any, float | None], Awaitable[Any]],
    discard: Callable[[Any], Awaitable[None]],
    request: Any,
    copy_of: Callable[[Any], Any],
    budget: Callable[[float], float | None],
) -> Any:
    """Run ``hedge_race`` from an async shell; return the answer that ended it
    (a response, or the exception a copy raised).

    Under asyncio, copy 0 is sent by the caller itself and hedges are started
    by a timer of the loop (:func:`_race_on_asyncio`): a race that needs no
    hedge costs a timer and a cancel scope, not a task. Under any other anyio
    runtime (trio), each copy is a task of one task group
    (:func:`_race_in_task_group`).
    """
    import asyncio  # not at import: asyncio is slow to import, and sync users never need it

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio
        return await _race_in_task_group(hedge_race, send, discard, request, copy_of, budget)
    return await _race_on_asyncio(loop, hedge_race, send, discard, request, copy_of, budget)


async def _race_on_asyncio(
    loop: asyncio.AbstractEventLoop,
    hedge_race: Race,
    send: Callable[[Any, float | None], Awaitable[Any]],
    discard: Callable[[Any], Awaitable[None]],
    request: Any,
    copy_of: Callable[[Any], Any],
    budget: Callable[[float], float | None],
) -> Any:
    """The race under asyncio: the caller sends copy 0 inside a cancel scope;
    a timer of the loop starts each hedge as a task when it is due. The copy
    whose answer ends the race (copy 0, or a hedge) is the outcome; a hedge
    that ends it cancels the caller's scope, which cancels copy 0 (or the
    caller's wait for the hedges, when copy 0 answered unusably first). The
    hedges that did not win are cancelled, and awaited, when the race ends."""
    import asyncio

    import anyio

    clock = hedge_race.call.core.monotonic
    scope = anyio.CancelScope()
    hedges: list[asyncio.Task[None]] = []
    ended: list[Any] = []  # the answer of the hedge that ended the race
    timer: asyncio.TimerHandle | None = None

    async def run(index: int, req: Any, seconds: float | None) -> None:
        try:
            result: Any = await send(req, seconds)
        except Exception as exc:
            result = exc
        if not hedge_race.over and hedge_race.finished(index, result, clock()):
            ended.append(result)
            scope.cancel()
        elif not isinstance(result, BaseException):
            await _aquietly(discard, result)

    def fire() -> None:
        nonlocal timer
        timer = None
        if hedge_race.over:
            return
        try:
            now = clock()
            copy = hedge_race.timed_out(now)
            if copy is not None:
                hedges.append(loop.create_task(run(copy.index, copy_of(request), budget(now))))
            wait = hedge_race.due(clock())
        except Exception:  # a timer's error has nowhere to go: no more hedges
            _log.warning("sending a hedged copy failed", exc_info=True)
            return
        if wait is not None:
            timer = loop.call_later(wait, fire)

    first = hedge_race.due(clock())
    if first is not None:
        timer = loop.call_later(first, fire)
    outcome: Any = None
    try:
        with scope:
            try:
                result: Any = await send(request, budget(hedge_race.copies[0].sent))
            except Exception as exc:
                result = exc
            if hedge_race.over:  # a hedge won as copy 0 answered
                if not isinstance(result, BaseException):
                    await _aquietly(discard, result)
            elif hedge_race.finished(0, result, clock()):
                outcome = result
            else:  # unusable, hedges in flight: one of them ends the race
                if not isinstance(result, BaseException):
                    await _aquietly(discard, result)
                await anyio.sleep_forever()
        if ended:
            outcome = ended[0]
        return outcome
    finally:
        hedge_race.over = True
        if timer is not None:
            timer.cancel()
        pending = [task for task in hedges if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*pending, return_exceptions=True)


async def _race_in_task_group(
    hedge_race: Race,
    send: Callable[[Any, float | None], Awaitable[Any]],
    discard: Callable[[Any], Awaitable[None]],
    request: Any,
    copy_of: Callable[[Any], Any],
    budget: Callable[[float], float | None],
) -> Any:
    """The race under any anyio runtime: each copy is a task of one task
    group; the copies that did not win are cancelled when the race ends, and
    any answer they left behind is closed."""
    import anyio

    clock = hedge_race.call.core.monotonic
    outcome: Any = None
    # Answers as they come, and the event that wakes the race for them (an
    # event and a list cost half what a memory stream does per call).
    box: list[tuple[int, Any]] = []
    signal = [anyio.Event()]

    async def run(index: int, req: Any, seconds: float | None) -> None:
        try:
            result: Any = await send(req, seconds)
        except Exception as exc:
            result = exc
        box.append((index, result))
        signal[0].set()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run, 0, request, budget(hedge_race.copies[0].sent))
            while True:
                if not box:
                    wait = hedge_race.due(clock())
                    if wait is None:
                        await signal[0].wait()
                    else:
                        with anyio.move_on_after(wait):
                            await signal[0].wait()
                    if not box:
                        now = clock()
                        copy = hedge_race.timed_out(now)
                        if copy is not None:
                            tasks.start_soon(run, copy.index, copy_of(request), budget(now))
                        continue
                index, result = box.pop(0)
                if not box:
                    signal[0] = anyio.Event()  # an event cannot be cleared
                if hedge_race.finished(index, result, clock()):
                    outcome = result
                    tasks.cancel_scope.cancel()
                    break
                if not isinstance(result, BaseException):
                    await _aquietly(discard, result)
        return outcome
    finally:
        hedge_race.over = True
        for _, late in box:  # answers delivered but not taken
            if late is not outcome and not isinstance(late, BaseException):
                await _aquietly(discard, late)


def _quietly(discard: Callable[[Any], None], response: Any) -> None:
    try:
        discard(response)
    except Exception:
        _log.debug("closing a losing response failed", exc_info=True)


async def _aquietly(discard: Callable[[Any], Awaitable[None]], response: Any) -> None:
    import anyio

    try:
        with anyio.CancelScope(shield=True):
            await discard(response)
    except Exception:
        _log.debug("closing a losing response failed", exc_info=True)
