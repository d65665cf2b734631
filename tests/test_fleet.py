"""Four processes share one vendor key's limit through Redis, and all finish when Redis dies.

Each worker process paces itself with its own ``RateLimiter`` over its own
``RedisStore``, as four application instances would, and records when it
"sends" (no HTTP: the point is when requests would leave). Real time is used
here, and only here: the waits are the limiter's, tens of milliseconds each.

Each store leases its tokens (``LEASE`` seconds of the rate, at most the
burst), so the fleet may exceed the limit by one burst plus one lease per
process, and never by more. Every test runs on one ``redis-server`` and on a
3-node Redis Cluster started by the test.
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
from tests._redis import Cluster, RedisServer, running_redis, running_redis_cluster

RATE = 20.0  # N per second, shared by the fleet
BURST = 4
WORKERS = 4
PER_WORKER = 15
TIMEOUT = 30.0
LEASE = 0.1  # seconds of the rate each store leases at a time
LEASE_SIZE = max(1, min(BURST, int(RATE * LEASE)))  # tokens: 2
#: The most any window of one second may see: the limit, one burst, one lease per process.
BOUND = RATE + BURST + WORKERS * LEASE_SIZE


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


@dataclass(frozen=True)
class Target:
    """Where the fleet's Redis is: a URL, or one node of a cluster."""

    url: str | None = None
    cluster_port: int | None = None


def _store(target: Target) -> tuple[RedisStore, Any]:
    if target.url is not None:
        return RedisStore(target.url, retry_interval=60.0, lease=LEASE), None
    from redis.cluster import RedisCluster

    client = RedisCluster(
        host="127.0.0.1",
        port=target.cluster_port,
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
    )
    return RedisStore(client, retry_interval=60.0, lease=LEASE), client


def _worker(worker: int, target: Target, key: str, start: Any, reports: Any) -> None:
    """One application instance: acquire, wait what the limiter says, "send"."""
    warnings = _Count()
    logging.getLogger("resilience").addHandler(warnings)
    store, client = _store(target)
    limiter = RateLimit(per_second=RATE, burst=BURST, key=key).new_limiter(store)
    start.wait(TIMEOUT)
    sent = []
    for _ in range(PER_WORKER):
        wait = limiter.acquire(key, time.monotonic())
        time.sleep(wait)
        sent.append(time.time())  # wall clock: comparable between processes
    reports.put(Report(worker, sent, warnings.count))
    store.close()
    if client is not None:
        client.close()


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


@pytest.fixture(params=["node", "cluster"])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer | Cluster]:
    if request.param == "node":
        with running_redis() as started:
            yield started
    else:
        with running_redis_cluster() as cluster:
            yield cluster


@pytest.fixture
def fleet(server: RedisServer | Cluster) -> Iterator[Fleet]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS + 1)
    reports = ctx.Queue()
    key = f"fleet-{uuid.uuid4().hex}"
    if isinstance(server, Cluster):
        target = Target(cluster_port=server.port)
    else:
        target = Target(url=server.url)
    processes = [
        ctx.Process(target=_worker, args=(i, target, key, start, reports), daemon=True)
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


def test_the_fleet_never_exceeds_n_plus_a_burst_plus_a_lease_per_process(fleet: Fleet) -> None:
    started = fleet.go()
    reports = fleet.collect()
    assert len(reports) == WORKERS
    sent = sorted(t for r in reports for t in r.sent)
    assert len(sent) == WORKERS * PER_WORKER
    assert most_in_window(sent, 1.0) <= BOUND
    # shared, not four limits side by side: 60 sends at 20/s after the burst and the leases
    assert sent[-1] - started >= (len(sent) - BOUND + RATE) / RATE - 0.1
    assert all(r.warnings == 0 for r in reports)


def test_every_worker_completes_when_redis_is_killed_mid_run(
    fleet: Fleet, server: RedisServer | Cluster
) -> None:
    started = fleet.go()
    time.sleep(0.8)  # about 20 requests in, 40 to go
    killed = time.time()
    server.stop()
    reports = fleet.collect()

    assert sorted(r.worker for r in reports) == list(range(WORKERS))
    assert all(len(r.sent) == PER_WORKER for r in reports)
    assert all(p.exitcode == 0 for p in fleet.processes)
    before = [t for r in reports for t in r.sent if t < killed]
    assert len(before) >= 8
    assert most_in_window(before, 1.0) <= BOUND
    assert all(r.warnings == 1 for r in reports)  # each worker says it once
    assert max(t for r in reports for t in r.sent) - started < 10.0
