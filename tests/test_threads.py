"""32 threads (or tasks) share one session / client: every call gets its own
retries, and exactly the attempts its own script asks for.

The loopback server fails each request ``X-Fail: n`` times per ``X-Key`` and then
answers 200 with the key as body, so a call that is handed another call's
response, or counts another call's attempts, is caught. The retry budget is off:
it is shared by design and would (rightly) stop retrying under this failure rate.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
import requests

import resilience
from tests._loopback import Loopback, fail_by_header
from tests.conftest import AsyncRecordingSleep, RecordingSleep

WORKERS = 32
FAILURES = (0, 1, 2, 3)  # each worker makes one call per entry; max_attempts is 4
BACKOFF = (0.5, 1.0, 2.0)


@pytest.fixture
def server() -> Iterator[Loopback]:
    with Loopback(fail_by_header(503)) as loopback:
        yield loopback


def _expected_sleeps() -> Counter[float]:
    per_worker = Counter(d for n in FAILURES for d in BACKOFF[:n])
    return Counter({d: c * WORKERS for d, c in per_worker.items()})


def _run_in_threads(call: Callable[[int], list[str]]) -> list[str]:
    """Run ``call(worker)`` in 32 threads started together; return the problems."""
    barrier = threading.Barrier(WORKERS)
    problems: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        barrier.wait()
        try:
            found = call(index)
        except Exception as exc:
            found = [f"worker {index}: {exc!r}"]
        with lock:
            problems.extend(found)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return problems


def _check(key: str, failures: int, status: int, body: bytes, history: list) -> list[str]:
    statuses = [a.status for a in history]
    delays = [a.delay for a in history]
    expected_statuses = [503] * failures + [200]
    expected_delays = [0.0, *BACKOFF[:failures]]
    if (status, body, statuses, delays) != (200, key.encode(), expected_statuses, expected_delays):
        return [f"{key} x{failures}: {status} {body!r} {statuses} {delays}"]
    return []


@pytest.mark.timeout(60)
def test_32_threads_share_one_requests_session(server: Loopback, sleep: RecordingSleep) -> None:
    adapter = resilience.ResilientAdapter(
        pool_maxsize=WORKERS, sleep=sleep, jitter="none", retry_budget=None
    )
    with requests.Session() as s:
        s.mount("http://", adapter)

        def call(index: int) -> list[str]:
            problems = []
            for failures in FAILURES:
                key = f"{index}-{uuid.uuid4().hex}"
                headers = {"X-Key": key, "X-Fail": str(failures)}
                response = s.get(server.url + "/x", headers=headers, timeout=10)
                problems += _check(
                    key,
                    failures,
                    response.status_code,
                    response.content,
                    resilience.attempts(response),
                )
            return problems

        assert _run_in_threads(call) == []
    assert Counter(sleep.calls) == _expected_sleeps()
    assert len(server.seen) == WORKERS * sum(n + 1 for n in FAILURES)


@pytest.mark.timeout(60)
def test_32_threads_share_one_httpx_client(server: Loopback, sleep: RecordingSleep) -> None:
    transport = resilience.ResilientTransport(sleep=sleep, jitter="none", retry_budget=None)
    with httpx.Client(transport=transport, timeout=10) as c:

        def call(index: int) -> list[str]:
            problems = []
            for failures in FAILURES:
                key = f"{index}-{uuid.uuid4().hex}"
                headers = {"X-Key": key, "X-Fail": str(failures)}
                response = c.get(server.url + "/x", headers=headers)
                problems += _check(
                    key,
                    failures,
                    response.status_code,
                    response.content,
                    resilience.attempts(response),
                )
            return problems

        assert _run_in_threads(call) == []
    assert Counter(sleep.calls) == _expected_sleeps()
    assert len(server.seen) == WORKERS * sum(n + 1 for n in FAILURES)


@pytest.mark.timeout(60)
async def test_32_tasks_share_one_async_httpx_client(
    server: Loopback, async_sleep: AsyncRecordingSleep
) -> None:
    transport = resilience.AsyncResilientTransport(
        sleep=async_sleep, jitter="none", retry_budget=None
    )
    async with httpx.AsyncClient(transport=transport, timeout=10) as c:

        async def call(index: int) -> list[str]:
            problems = []
            for failures in FAILURES:
                key = f"{index}-{uuid.uuid4().hex}"
                headers = {"X-Key": key, "X-Fail": str(failures)}
                response = await c.get(server.url + "/x", headers=headers)
                problems += _check(
                    key,
                    failures,
                    response.status_code,
                    response.content,
                    resilience.attempts(response),
                )
            return problems

        results = await asyncio.gather(*(call(i) for i in range(WORKERS)))
    assert [p for found in results for p in found] == []
    assert Counter(async_sleep.calls) == _expected_sleeps()
    assert len(server.seen) == WORKERS * sum(n + 1 for n in FAILURES)
