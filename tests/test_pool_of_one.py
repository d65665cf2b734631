"""With a pool of one connection, every response that is not returned must give
its connection back before the next attempt, or the call blocks for ever.

The loopback server answers 503 and 200 alternately, so each call retries once;
200 calls make 200 retries over the single pooled connection. The retry budget
is off: it would (rightly) stop retrying against a server failing half the time.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests

import resilience
from tests._loopback import Loopback, alternating
from tests.conftest import AsyncRecordingSleep, RecordingSleep

CALLS = 200


@pytest.fixture
def server() -> Iterator[Loopback]:
    with Loopback(alternating(503, 200)) as loopback:
        yield loopback


@pytest.mark.timeout(60)
def test_requests_pool_of_one_completes_200_retries(
    server: Loopback, sleep: RecordingSleep
) -> None:
    adapter = resilience.ResilientAdapter(
        pool_maxsize=1, pool_block=True, sleep=sleep, jitter="none", retry_budget=None
    )
    with requests.Session() as s:
        s.mount("http://", adapter)
        histories = []
        for _ in range(CALLS):
            response = s.get(server.url + "/x", timeout=10)
            assert response.status_code == 200
            histories.append([a.status for a in resilience.attempts(response)])
    assert histories == [[503, 200]] * CALLS
    assert sleep.calls == [0.5] * CALLS
    assert len(server.seen) == 2 * CALLS
    assert len(server.connections) == 1


@pytest.mark.timeout(60)
def test_httpx_pool_of_one_completes_200_retries(server: Loopback, sleep: RecordingSleep) -> None:
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    transport = resilience.ResilientTransport(inner, sleep=sleep, jitter="none", retry_budget=None)
    with httpx.Client(transport=transport, timeout=10) as c:
        histories = []
        for _ in range(CALLS):
            response = c.get(server.url + "/x")
            assert response.status_code == 200
            histories.append([a.status for a in resilience.attempts(response)])
    assert histories == [[503, 200]] * CALLS
    assert sleep.calls == [0.5] * CALLS
    assert len(server.seen) == 2 * CALLS
    assert len(server.connections) == 1


@pytest.mark.timeout(60)
async def test_async_httpx_pool_of_one_completes_200_retries(
    server: Loopback, async_sleep: AsyncRecordingSleep
) -> None:
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    transport = resilience.AsyncResilientTransport(
        inner, sleep=async_sleep, jitter="none", retry_budget=None
    )
    async with httpx.AsyncClient(transport=transport, timeout=10) as c:
        histories = []
        for _ in range(CALLS):
            response = await c.get(server.url + "/x")
            assert response.status_code == 200
            histories.append([a.status for a in resilience.attempts(response)])
    assert histories == [[503, 200]] * CALLS
    assert async_sleep.calls == [0.5] * CALLS
    assert len(server.seen) == 2 * CALLS
    assert len(server.connections) == 1
