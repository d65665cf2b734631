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

from resilience.retry.closing import close_quietly
from resilience.retry.racing import Copies, Race
from resilience.retry.rounds import unusable

__all__ = ["Cut", "HedgePool", "SendCut", "armed", "race", "race_inline"]

_log = logging.getLogger(__name__)

#: The timer wakes at most once per this many seconds (see :meth:`HedgePool._tick`).
TIMER_GRAIN = 0.01

#: The least read timeout left after a wait (a zero timeout means "do not block").
LEAST_TIMEOUT = 0.001


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

    def _left(self) -> float | None:
        """Seconds until the next copy is due, each copy already due sent first
        (from this thread, if the pipeline permits); ``None``: no copy to wait
        for (none is due any more, or the cut has fired)."""
        while self.on_due is not None and not self.fired and (due := self.due) is not None:
            left = due - time.monotonic()
            if left > 0:
                return left
            self.on_due()  # sends a copy if the pipeline permits; moves ``due``
        return None

    def until_readable(self, sock: Any, within: float | None = None) -> float:
        """Wait until ``sock`` has something to read, sending each copy that
        falls due meanwhile (from the waiting thread: no timer needed while a
        read waits); the seconds waited.

        A connection calls it while watched, before its blocking read, so that
        a copy's win (which shuts ``sock`` down) ends the wait as well. The
        wait stops where the read's own timeout, ``within`` seconds, would
        end it before the next copy is due: the read then times out at its
        time, as without hedging.
        """
        start = time.monotonic()
        while (left := self._left()) is not None:
            if within is not None and within - (time.monotonic() - start) <= left:
                break
            pending = getattr(sock, "pending", None)  # bytes a TLS socket already holds
            if (pending is not None and pending()) or wait_for_read(sock, timeout=left):
                break
        return time.monotonic() - start

    def read_by(self, read: Callable[[float | None], Any], timeout: float | None) -> Any:
        """Read with ``read(seconds)``, a read of the shell's library bounded by
        ``seconds`` (``None``: unbounded) that raises the library's timeout
        error, caused by a :class:`TimeoutError`, when nothing came in time;
        ``timeout`` is the read's own bound.

        Each copy that falls due meanwhile is sent from the reading thread and
        the read resumes, so that a read over a socket with a timeout waits in
        the socket's own wait (one system call fewer per read than
        :meth:`until_readable` and a read). A connection calls it while watched.
        """
        while (left := self._left()) is not None:
            if timeout is not None and timeout <= left:
                break  # the read's own bound comes first: its timeout is the caller's
            start = time.monotonic()
            try:
                return read(left)
            except Exception as exc:
                cause = exc if isinstance(exc, TimeoutError) else exc.__cause__
                if self.fired or not isinstance(cause, TimeoutError):
                    raise
            if timeout is not None:  # nothing came before the copy was due
                timeout = max(timeout - (time.monotonic() - start), LEAST_TIMEOUT)
        return read(timeout)

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
    copies: Copies,
) -> Any:
    """Run ``hedge_race`` from a sync shell; return the answer that ended it
    (a response, or the exception a copy raised).

    Args:
        hedge_race: the race, copy 0 already counted.
        pool: the transport's threads.
        copies: how the copies are sent and closed.
    """
    request, send, discard, copy_of, budget = copies
    answers = _Answers(hedge_race, send, discard)
    clock = hedge_race.call.core.monotonic
    if not pool.submit(answers.job(0, request, budget(hedge_race.copies[0].sent))):
        return send(request, budget(hedge_race.copies[0].sent))  # the pool is full: unhedged
    outcome: Any = None
    try:
        while True:
            wait = hedge_race.due(clock())
            try:
                index, outcome = answers.get(wait)
            except queue.Empty:
                now = clock()
                copy = hedge_race.timed_out(now)
                if copy is not None:
                    req = copy_of(request)
                    if not pool.submit(answers.job(copy.index, req, budget(now))):
                        hedge_race.unsent(copy)
                continue
            if hedge_race.finished(index, outcome, clock()):
                return outcome
            if not isinstance(outcome, BaseException):
                discard(outcome)
    finally:
        answers.close(outcome)


def race_inline(
    hedge_race: Race,
    pool: HedgePool,
    copies: Copies,
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
    request, send, discard, copy_of, budget = copies
    cut = Cut()
    call = hedge_race.call
    clock = call.core.monotonic
    wire = call.wire
    first = [False]  # copy 0 is over (answered, or cut short)

    def heard(outcome: Any) -> None:  # a hedge's answer, under the answers' lock
        usable = not isinstance(outcome, BaseException) and unusable(wire.status(outcome)) is None
        if usable and not first[0]:
            cut.fire()  # copy 0 lost: the caller takes this answer

    answers = _Answers(hedge_race, send, discard, heard)
    lock = answers.lock

    context = contextvars.copy_context()  # hooks of a hedge see the caller's context

    def tick() -> float | None:
        """Send the copy now due, if any; seconds until the next one."""
        with lock:
            if hedge_race.over:
                cut.due = None
                return None
            now = clock()
            copy = hedge_race.timed_out(now)
            if copy is not None and not pool.submit(
                answers.job(copy.index, copy_of(request), budget(now))
            ):
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

    def hear(index: int, answer: Any) -> bool:
        """Whether ``answer`` ends the race; if not, it is closed."""
        with lock:
            ended = hedge_race.finished(index, answer, clock())
        if not ended and not isinstance(answer, BaseException):
            discard(answer)
        return ended

    try:
        with lock:
            first[0] = True
        # The hedges that answered while copy 0 ran are heard first, in order:
        # a usable one (it cut copy 0 short) wins, unusable ones are superseded.
        while (waiting := answers.waiting()) is not None:
            if hear(*waiting):
                outcome = waiting[1]
                if not isinstance(mine, BaseException):
                    discard(mine)
                return outcome
        if hear(0, mine):
            outcome = mine
            return outcome
        while True:  # a hedge ends the race: the first usable answer, or the last
            index, answer = answers.get(None)
            if hear(index, answer):
                outcome = answer
                return outcome
    finally:
        answers.close(outcome)


class _Answers:
    """The answers of one sync race, as the threads of its copies deliver them.

    Args:
        hedge_race: the race.
        send: ``send(request, budget)`` of the shell.
        discard: closes a response that will not be returned.
        heard: called with each answer delivered (under :attr:`lock`).
    """

    __slots__ = ("_discard", "_heard", "_queue", "_race", "_send", "lock")

    def __init__(
        self,
        hedge_race: Race,
        send: Callable[[Any, float | None], Any],
        discard: Callable[[Any], None],
        heard: Callable[[Any], None] | None = None,
    ) -> None:
        self._race = hedge_race
        self._send, self._discard, self._heard = send, discard, heard
        self._queue: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        #: Held while an answer is delivered and while the race decides.
        self.lock = threading.Lock()

    def job(self, index: int, request: Any, seconds: float | None) -> Callable[[], None]:
        """What a pool thread runs to send copy ``index`` and deliver its answer
        (or close it, once the race is over: beaten, it gives its connection back)."""

        def run() -> None:
            try:
                outcome: Any = self._send(request, seconds)
            except Exception as exc:
                outcome = exc
            with self.lock:
                if not self._race.over:
                    self._queue.put((index, outcome))
                    if self._heard is not None:
                        self._heard(outcome)
                    return
            if not isinstance(outcome, BaseException):
                close_quietly(self._discard, outcome)

        return run

    def get(self, timeout: float | None) -> tuple[int, Any]:
        """The next answer, waiting at most ``timeout`` seconds.

        Raises:
            queue.Empty: none came in time.
        """
        return self._queue.get(timeout=timeout)

    def waiting(self) -> tuple[int, Any] | None:
        """The next answer if one is waiting, else ``None`` (no wait)."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def close(self, outcome: Any) -> None:
        """End the race: every answer delivered but not ``outcome`` is closed,
        and answers still to come will be closed by their threads."""
        with self.lock:
            self._race.over = True
        while (waiting := self.waiting()) is not None:
            late = waiting[1]
            if late is not outcome and not isinstance(late, BaseException):
                close_quietly(self._discard, late)
