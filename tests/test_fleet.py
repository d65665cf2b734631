"""Four processes share one vendor key's limit through Redis, and all finish when Redis dies.

Each worker process paces itself with its own ``RateLimiter`` over its own
``RedisStore``, as four application instances would, and records when it
"sends" (no HTTP: the point is when requests would leave). Real time is used
here, and only here: the waits are the limiter's, tens of milliseconds each.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from resilience.stores import RedisStore
from resilience.strategies.rate_limit import RateLimit
from tests._redis import RedisServer, running_redis

RATE = 20.0  # N per second, shared by the fleet
BURST = 4
WORKERS = 4
PER_WORKER = 10
TIMEOUT = 30.0


@dataclass(frozen=True)
class Report:
    worker: int
    sent: list[float]
    warnings: int


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _worker(worker: int, url: str, key: str, start: Any, reports: Any) -> None:
    """One application instance: acquire, wait what the limiter says, "send"."""
    warnings = _Count()
    logging.getLogger("resilience").addHandler(warnings)
    store = RedisStore(url, retry_interval=60.0)
    limiter = RateLimit(per_second=RATE, burst=BURST, key=key).new_limiter(store)
    start.wait(TIMEOUT)
    sent = []
    for _ in range(PER_WORKER):
        wait = limiter.acquire(key, time.monotonic())
        time.sleep(wait)
        sent.append(time.time())  # wall clock: comparable between processes
    reports.put(Report(worker, sent, warnings.count))
    store.close()


def most_in_window(times: list[float], seconds: float) -> int:
    """The most times in any closed window ``[t, t + seconds]``."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] < t - seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


@dataclass
class Fleet:
    processes: list[Any]
    start: Any
    reports: Any

    def go(self) -> float:
        """Release the workers at once; returns the wall time they started."""
        self.start.wait(TIMEOUT)
        return time.time()

    def collect(self) -> list[Report]:
        out = []
        deadline = time.monotonic() + TIMEOUT
        for _ in self.processes:
            try:
                out.append(self.reports.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        return out


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with running_redis() as started:
        yield started


@pytest.fixture
def fleet(server: RedisServer) -> Iterator[Fleet]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS + 1)
    reports = ctx.Queue()
    key = f"fleet-{uuid.uuid4().hex}"
    processes = [
        ctx.Process(target=_worker, args=(i, server.url, key, start, reports), daemon=True)
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        yield Fleet(processes, start, reports)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(5)


def test_the_fleet_never_exceeds_n_plus_burst_in_any_second(fleet: Fleet) -> None:
    started = fleet.go()
    reports = fleet.collect()
    assert len(reports) == WORKERS
    sent = sorted(t for r in reports for t in r.sent)
    assert len(sent) == WORKERS * PER_WORKER
    assert most_in_window(sent, 1.0) <= RATE + BURST
    # shared, not four limits side by side: 40 sends at 20/s after a burst of 4
    assert sent[-1] - started >= (len(sent) - BURST) / RATE - 0.1
    assert all(r.warnings == 0 for r in reports)


def test_every_worker_completes_when_redis_is_killed_mid_run(
    fleet: Fleet, server: RedisServer
) -> None:
    started = fleet.go()
    time.sleep(0.8)  # about 20 requests in, 20 to go
    killed = time.time()
    server.stop()
    reports = fleet.collect()

    assert sorted(r.worker for r in reports) == list(range(WORKERS))
    assert all(len(r.sent) == PER_WORKER for r in reports)
    assert all(p.exitcode == 0 for p in fleet.processes)
    before = [t for r in reports for t in r.sent if t < killed]
    assert len(before) >= 8
    assert most_in_window(before, 1.0) <= RATE + BURST
    assert all(r.warnings == 1 for r in reports)  # each worker says it once
    assert max(t for r in reports for t in r.sent) - started < 10.0
