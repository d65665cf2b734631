"""The sync runners of a race: copies sent from a small pool of threads, and the
first copy from the caller's own thread when a hedge can cut it short (see
:mod:`resilience.retry.racing`)."""

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
from collections.abc import Callable
from typing import Any

from urllib3.util.wait import wait_for_read

from resilience.retry.racing import Race
from resilience.retry.rounds import unusable

__all__ = ["Cut", "HedgePool", "SendCut", "armed", "race", "race_inline"]

_log = logging.getLogger(__name__)

#: The timer wakes at most once per this many seconds (see :meth:`HedgePool._tick`).
TIMER_GRAIN = 0.01


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
                    # At most one wake per grain: a busy transport's calls
                    # schedule a job each, and most find nothing to do.
                    self._wake.wait(None if wait is None else max(wait, TIMER_GRAIN))
                if self._closed:
                    return
                now = time.monotonic()
                jobs = []
                while due and due[0][0] <= now:
                    jobs.append(heapq.heappop(due)[2])
            for job in jobs:
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

    __slots__ = ("_close", "_lock", "due", "fired", "on_due")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._close: Callable[[], None] | None = None
        self.fired = False
        #: When (``time.monotonic``) a copy is due, and what sends it.
        self.due: float | None = None
        self.on_due: Callable[[], object] | None = None

    def until_readable(self, sock: Any) -> float:
        """Wait until ``sock`` has something to read, sending each copy that
        falls due meanwhile (from the waiting thread: no timer needed while a
        read waits); the seconds waited.

        A connection calls it while watched, before its blocking read, so that
        a copy's win (which shuts ``sock`` down) ends the wait as well.
        """
        start = time.monotonic()
        while self.on_due is not None and not self.fired:
            due = self.due
            if due is None:
                break
            left = due - time.monotonic()
            if left <= 0:
                self.on_due()  # sends a copy if the pipeline permits; moves ``due``
                continue
            pending = getattr(sock, "pending", None)  # bytes a TLS socket already holds
            if (pending is not None and pending()) or wait_for_read(sock, timeout=left):
                break
        return time.monotonic() - start

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

    def tick() -> float | None:
        """Send the copy now due, if any; seconds until the next one."""
        with lock:
            if hedge_race.over:
                cut.due = None
                return None
            now = clock()
            copy = hedge_race.timed_out(now)
            if copy is not None and not pool.submit(job(copy.index, copy_of(request), budget(now))):
                hedge_race.unsent(copy)
            wait = hedge_race.due(clock())
            cut.due = None if wait is None else time.monotonic() + wait
            return wait

    def on_timer() -> None:
        # While copy 0 waits to read, its own thread sends the copies due
        # (Cut.until_readable); the timer covers a send stuck before its read
        # (connecting, writing), a grain late at most.
        wait = context.run(tick)
        if wait is not None:
            pool.after(wait, on_timer)

    wait = hedge_race.due(clock())
    if wait is not None:
        cut.due = time.monotonic() + wait
        cut.on_due = tick
        pool.after(wait, on_timer)
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
