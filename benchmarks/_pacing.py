"""Calls sent on a fixed schedule, whoever makes them, each timed on its own (open loop).

Latency percentiles under a heavy tail need an open loop. Callers that each
wait for their answer before sending the next (a closed loop) send less while
they wait for late answers, so a client that waits for the tail runs its fast
calls almost alone, and one that cuts the tail short (hedging) runs them
alongside each other: the same machine then times the two at different loads.
Here the contenders compared are offered the same load, one call every
``1 / rate`` seconds, from a pool of threads (sync clients) or as tasks on an
event loop running in its own thread (async clients), and a late answer does
not hold back the calls after it. The rate must stay well below what the
client can send, or calls queue and the queue is what gets timed.

The schedule runs on from one block of calls to the next, so that contenders
can take turns without waiting for each other's late answers: a block's calls
are handed back as futures, collected when the scenario ends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Pacer", "Timed"]

T = TypeVar("T")

#: Threads of the pool that sync calls run on: enough that late answers never
#: hold back a call due (at 400 calls/s, 2% of them late by 0.4 s on average,
#: about 3 are in flight at a time).
THREADS = 64


@dataclass(frozen=True, slots=True)
class Timed(Generic[T]):
    """One call, timed from its start to its answer (or its exception).

    Attributes:
        seconds: the call's time.
        seen: what the caller's ``observe`` made of the answer (``None`` after an exception).
        error: the exception's class name, or ``None``.
        late: seconds the call started after it was due: a client that cannot
            keep up with the rate shows here (its calls queue, and the queue
            slows every await of the calls in flight).
    """

    seconds: float
    seen: T | None
    error: str | None = None
    late: float = 0.0


def _answered(due: float, start: float, response: Any, observe: Callable[[Any], T]) -> Timed[T]:
    seconds = time.perf_counter() - start  # before ``observe``, which is not the call's
    return Timed(seconds, observe(response), None, start - due)


def _raised(due: float, start: float, exc: Exception) -> Timed[Any]:
    return Timed(time.perf_counter() - start, None, type(exc).__name__, start - due)


def _call(get: Callable[[str], Any], url: str, observe: Callable[[Any], T], due: float) -> Timed[T]:
    start = time.perf_counter()
    try:
        response = get(url)
    except Exception as exc:
        return _raised(due, start, exc)
    return _answered(due, start, response, observe)


async def _acall(
    get: Callable[[str], Any], url: str, observe: Callable[[Any], T], due: float
) -> Timed[T]:
    start = time.perf_counter()
    try:
        response = await get(url)
    except Exception as exc:
        return _raised(due, start, exc)
    return _answered(due, start, response, observe)


class Pacer:
    """Sends calls on a schedule: sync ones on a thread pool, async ones on a loop.

    Use it as a context manager; on exit the loop and the pool stop.
    """

    def __init__(self, threads: int = THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bench-call")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._next = 0.0

    def __enter__(self) -> Pacer:
        """Start the event loop's thread."""
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the loop and the pool (calls still running end on their own)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)
        self._loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the pacer's loop (closing an async client, say) and wait."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _tick(self, interval: float) -> float:
        """Sleep until the next call is due and return when it was; a schedule fallen
        behind (a pause between turns) starts again from now."""
        now = time.perf_counter()
        if self._next < now - interval:
            self._next = now
        elif self._next > now:
            time.sleep(self._next - now)
        due = self._next
        self._next += interval
        return due

    def send(
        self,
        get: Callable[[str], Any],
        url: str,
        calls: int,
        observe: Callable[[Any], T],
        *,
        rate: float,
        is_async: bool,
    ) -> list[Future[Timed[T]]]:
        """Send ``calls`` calls of ``get(url)``, ``rate`` per second; their futures, at once.

        Args:
            get: the client's call (a coroutine function when ``is_async``).
            url: what to get.
            calls: how many.
            observe: reads what is wanted from an answer, after its call is timed.
            rate: calls per second (above 0).
            is_async: whether ``get`` is a coroutine function.
        """
        if not rate > 0:
            raise ValueError(f"rate must be above 0, got {rate}")
        futures: list[Future[Timed[T]]] = []
        for _ in range(calls):
            due = self._tick(1.0 / rate)
            if is_async:
                futures.append(
                    asyncio.run_coroutine_threadsafe(_acall(get, url, observe, due), self._loop)
                )
            else:
                futures.append(self._pool.submit(_call, get, url, observe, due))
        return futures
