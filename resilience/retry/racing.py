"""Hedged sends: the decisions of one race (no I/O), and the runners that carry them out.

When the pipeline hedges (see :mod:`resilience.strategies.hedge`), an attempt
is sent as a race: copy 0 goes at once; whenever :meth:`Race.due` says a copy
is due and the pipeline permits one (:meth:`Race.hedge`), another copy of the
request goes. Each answer is handed to :meth:`Race.finished`: the first usable
one wins, an unusable one (a network error, 409, 420, 429 or a 5xx other than
501: what a retry might fix) waits for the copies still in flight, and the last
answer of all is the attempt's answer, which the retry flow then takes as it
takes any other (so a race of failures falls back to the normal retry rules).

Whatever did not win is closed: answers that lost are drained and closed as
they come, copies still in flight are cancelled (async), cut short (the first
copy of a sync shell over its own connections, see :class:`Cut`) or closed
when they answer (the other sync copies). The runners:

* :func:`race_inline`: a sync shell whose sends can be cut sends copy 0 from
  the caller's thread; a timer sends the hedges from a pool thread.
* :func:`race`: any other sync shell (a mock or a user's own transport) sends
  every copy from a pool thread while the caller waits.
* :func:`race_async`: under asyncio the caller sends copy 0 and a loop timer
  starts the hedges as tasks; under trio every copy is a task of a task group.

The flow learns the
race's copies from :attr:`Call.round <resilience.retry.flow.Call.round>` and
records them as attempts: hedges with reason ``"hedge"``, losers with outcome
``"cancelled"`` or ``"superseded"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from resilience.retry.rounds import Copy, Round, unusable

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "Contestant",
    "Cut",
    "HedgePool",
    "Race",
    "SendCut",
    "armed",
    "race",
    "race_async",
    "race_inline",
]

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
    """The bounded threads a sync transport sends raced copies from, and the
    timer that says when a copy is due.

    Threads start on first use and wait for the next copy on one queue (a
    copy handed to a waiting thread costs one queue put). A copy that finds
    every thread busy is not sent (a call whose first copy finds it so is sent
    unhedged from its own thread). The timer is one more thread, started on
    first use, running jobs at their time. The threads are daemons: a send
    that never ends does not hold up the interpreter's exit.
    """

    __slots__ = (
        "_closed",
        "_due",
        "_idle",
        "_jobs",
        "_lock",
        "_order",
        "_started",
        "_timer",
        "_wake",
        "threads",
    )

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job, none promised one
        self._started = 0
        self._closed = False
        # The timer's jobs: ``(monotonic time, order, job)``, earliest first.
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._timer: threading.Thread | None = None

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

    def after(self, seconds: float, job: Callable[[], None]) -> None:
        """Run ``job`` on the timer's thread ``seconds`` from now. There is no
        cancelling: a job whose moment has passed finds nothing to do."""
        when = time.monotonic() + seconds
        with self._lock:
            if self._closed:
                return
            earliest = self._due[0][0] if self._due else math.inf
            heapq.heappush(self._due, (when, next(self._order), job))
            if self._timer is None:
                self._timer = threading.Thread(
                    target=self._tick, name="resilience-hedge-timer", daemon=True
                )
                self._timer.start()
            elif when < earliest:
                self._wake.notify()  # it sleeps until a later time

    def _tick(self) -> None:
        due = self._due
        while True:
            with self._lock:
                while not self._closed:
                    wait = due[0][0] - time.monotonic() if due else None
                    if wait is not None and wait <= 0:
                        break
                    self._wake.wait(wait)
                if self._closed:
                    return
                _, _, job = heapq.heappop(due)
            try:
                job()
            except BaseException:  # a job reports its own outcome; never lose the timer
                _log.debug("a hedge timer's job failed", exc_info=True)

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
            self._due.clear()
            self._wake.notify_all()
        for _ in range(idle):
            self._jobs.put(None)


class Cut:
    """Lets another thread cut short the blocking send of the caller's thread.

    While a send runs with a cut armed (:func:`armed`), the shell's
    connections :meth:`watch` it around each blocking read and check it before
    each write; :meth:`fire` (a hedge won) shuts the watched socket down, so
    the read returns at once, and makes any later read or write of that send
    fail with :class:`SendCut`.
    """

    __slots__ = ("_close", "_lock", "fired")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._close: Callable[[], None] | None = None
        self.fired = False

    def watch(self, close: Callable[[], None]) -> None:
        """A blocking read is about to start; ``close`` would end it.

        Raises:
            SendCut: the cut has fired.
        """
        with self._lock:
            if self.fired:
                raise SendCut("a hedged copy answered first")
            self._close = close

    def unwatch(self) -> None:
        """The read ended."""
        self._close = None

    def check(self) -> None:
        """Raise :class:`SendCut` when the cut has fired (before a write)."""
        if self.fired:
            raise SendCut("a hedged copy answered first")

    def fire(self) -> None:
        """Cut the send short: its current read ends, later ones fail."""
        with self._lock:
            self.fired = True
            close, self._close = self._close, None
        if close is not None:
            with contextlib.suppress(OSError):  # already closed: nothing to cut
                close()


class SendCut(OSError):
    """A send cut short because a hedged copy answered first (never seen by
    callers: the race takes the copy's answer instead)."""


_armed = threading.local()


def armed() -> Cut | None:
    """The cut armed for the send running in this thread, if any."""
    cut: Cut | None = getattr(_armed, "cut", None)
    return cut


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


def race_inline(
    hedge_race: Race,
    pool: HedgePool,
    send: Callable[[Any, float | None], Any],
    discard: Callable[[Any], None],
    request: Any,
    copy_of: Callable[[Any], Any],
    budget: Callable[[float], float | None],
) -> Any:
    """Run ``hedge_race`` from a sync shell whose sends can be cut short
    (:class:`Cut`); return the answer that ended it (a response, or the
    exception a copy raised).

    Copy 0 is sent from the caller's own thread, so that a race that needs no
    hedge costs no thread switch. The pool's timer sends each hedge when it
    is due, from a pool thread; a hedge whose usable answer comes while copy
    0 is still running cuts copy 0 short and ends the race. Arguments as for
    :func:`race`.
    """
    answers: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
    lock = threading.Lock()
    cut = Cut()
    call = hedge_race.call
    clock = call.core.monotonic
    wire = call.wire
    first = [False]  # copy 0 is over (answered, or cut short)

    def usable(outcome: Any) -> bool:
        return not isinstance(outcome, BaseException) and unusable(wire.status(outcome)) is None

    def job(index: int, req: Any, seconds: float | None) -> Callable[[], None]:
        def run() -> None:
            try:
                outcome: Any = send(req, seconds)
            except Exception as exc:
                outcome = exc
            with lock:
                if not hedge_race.over:
                    answers.put((index, outcome))
                    if not first[0] and usable(outcome):
                        cut.fire()  # copy 0 lost: the caller takes this answer
                    return
            if not isinstance(outcome, BaseException):  # beaten: give the connection back
                _quietly(discard, outcome)

        return run

    context = contextvars.copy_context()  # hooks of a hedge see the caller's context

    def tick() -> None:
        with lock:
            if hedge_race.over:
                return
            now = clock()
            copy = hedge_race.timed_out(now)
            if copy is not None and not pool.submit(job(copy.index, copy_of(request), budget(now))):
                hedge_race.unsent(copy)
            wait = hedge_race.due(clock())
        if wait is not None:
            pool.after(wait, lambda: context.run(tick))

    wait = hedge_race.due(clock())
    if wait is not None:
        pool.after(wait, lambda: context.run(tick))
    outcome: Any = None
    outer, _armed.cut = armed(), cut  # a send may itself run a hedged call
    try:
        try:
            mine: Any = send(request, budget(hedge_race.copies[0].sent))
        except Exception as exc:
            mine = exc
    finally:
        _armed.cut = outer
    try:
        with lock:
            first[0] = True
            early = _drained(answers)
        # The hedges that answered while copy 0 ran are heard first, in order:
        # a usable one (it cut copy 0 short) wins, unusable ones are superseded.
        for at, (index, answer) in enumerate(early):
            with lock:
                ended = hedge_race.finished(index, answer, clock())
            if ended:
                outcome = answer
                for _, other in early[at + 1 :]:
                    if not isinstance(other, BaseException):
                        _quietly(discard, other)
                break
            if not isinstance(answer, BaseException):
                discard(answer)
        if outcome is None:
            with lock:
                if hedge_race.finished(0, mine, clock()):
                    outcome = mine
                    return outcome
        if not isinstance(mine, BaseException):
            discard(mine)  # beaten, or unusable while a hedge runs
        if outcome is not None:
            return outcome
        while True:  # a hedge ends the race: the first usable answer, or the last
            index, answer = answers.get()
            with lock:
                ended = hedge_race.finished(index, answer, clock())
            if ended:
                outcome = answer
                return outcome
            if not isinstance(answer, BaseException):
                discard(answer)
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


def _drained(answers: queue.SimpleQueue[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """The answers waiting in ``answers``, in order, taken out."""
    taken = []
    while True:
        try:
            taken.append(answers.get_nowait())
        except queue.Empty:
            return taken


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
