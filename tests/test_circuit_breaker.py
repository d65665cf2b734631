"""The circuit breaker: opens on a failure ratio, fails fast, probes, closes."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
import requests
import responses

import resilience
from resilience import CircuitBreaker, CircuitOpen
from resilience.stores import MemoryStore
from resilience.strategies.breaker import _NAMES_MAX, FLUSH_EVERY, REREAD
from tests._strategies import CircuitProbe

KEY = ("api.example", None)
URL = "https://api.example/v1/me"


def breaker(**kw: object) -> CircuitProbe:
    config = {"failure_ratio": 0.5, "min_calls": 4, "window": 10.0, "open_for": 5.0, **kw}
    return CircuitProbe(CircuitBreaker(**config))  # type: ignore[arg-type]


def test_stays_closed_below_min_calls_even_when_all_fail() -> None:
    state = breaker()
    for t in range(3):
        state.record(KEY, True, float(t))
    assert state.state(KEY, 3.0) == "closed"


def test_opens_when_the_failure_ratio_is_reached() -> None:
    state = breaker()
    for t, failed in enumerate([False, True, False, True]):
        state.record(KEY, failed, float(t))
    assert state.state(KEY, 4.0) == "open"
    assert not state.allow(KEY, 4.0)


def test_outcomes_close_together_across_a_bucket_edge_count_whole() -> None:
    # The window's buckets are 5 s wide here, with an edge at t=5: the older
    # bucket then counts for 99% of its outcomes, which must not leave 3.99 of 4.
    state = breaker()
    for t in (4.95, 4.96, 4.97, 5.05):
        state.record(KEY, True, t)
    assert state.state(KEY, 5.05) == "open"


def test_stays_closed_under_the_failure_ratio() -> None:
    state = breaker()
    for t, failed in enumerate([False, False, False, True, False]):
        state.record(KEY, failed, float(t))
    assert state.allow(KEY, 5.0)


def test_old_outcomes_leave_the_window() -> None:
    state = breaker()
    for t in range(3):
        state.record(KEY, True, float(t))
    state.record(KEY, True, 30.0)
    assert state.state(KEY, 30.0) == "closed"


def test_half_open_after_open_for_lets_one_probe_through() -> None:
    state = breaker()
    for t in range(4):
        state.record(KEY, True, float(t))
    assert not state.allow(KEY, 7.9)
    assert state.allow(KEY, 8.0)
    assert not state.allow(KEY, 8.0)


def test_a_successful_probe_closes_the_circuit() -> None:
    state = breaker()
    for t in range(4):
        state.record(KEY, True, float(t))
    assert state.allow(KEY, 9.0)
    state.record(KEY, False, 9.1)
    assert state.state(KEY, 9.2) == "closed"
    assert state.allow(KEY, 9.2)


def test_a_failed_probe_opens_it_again() -> None:
    state = breaker()
    for t in range(4):
        state.record(KEY, True, float(t))
    assert state.allow(KEY, 9.0)
    state.record(KEY, True, 9.1)
    assert not state.allow(KEY, 9.2)
    assert state.allow(KEY, 14.1)


def test_circuits_are_per_host_and_region() -> None:
    state = breaker()
    for t in range(4):
        state.record(("api.example", "eu-west"), True, float(t))
    assert not state.allow(("api.example", "eu-west"), 4.0)
    assert state.allow(("api.example", "us-east"), 4.0)
    assert state.allow(("other.example", "eu-west"), 4.0)


def test_concurrent_records_from_threads_count_every_outcome() -> None:
    state = breaker(min_calls=4000, failure_ratio=1.0)

    def fail_many() -> None:
        for _ in range(1000):
            state.record(KEY, True, 1.0)

    threads = [threading.Thread(target=fail_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state.state(KEY, 1.0) == "open"


@pytest.mark.parametrize(
    ("name", "value"),
    [("failure_ratio", 0), ("failure_ratio", 1.5), ("min_calls", 0), ("window", 0), ("probes", 0)],
)
def test_bad_settings_are_value_errors_naming_the_setting(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        CircuitBreaker(**{name: value})  # type: ignore[arg-type]


def test_true_means_the_default_breaker() -> None:
    assert resilience.Policy(circuit_breaker=True).circuit_breaker == CircuitBreaker()


def test_off_by_default() -> None:
    assert resilience.Policy().circuit_breaker is None


# -- through the transports -----------------------------------------------------------

POLICY = {
    "circuit_breaker": CircuitBreaker(min_calls=4, open_for=60.0),
    "retry_budget": None,
    "max_attempts": 1,
}


def _failing_handler(counter: list[int]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        counter.append(1)
        return httpx.Response(503)

    return httpx.MockTransport(answer)


def test_httpx_transport_fails_fast_once_open() -> None:
    sent: list[int] = []
    client = httpx.Client(transport=resilience.ResilientTransport(_failing_handler(sent), **POLICY))
    for _ in range(4):
        assert client.get(URL).status_code == 503
    with pytest.raises(CircuitOpen) as caught:
        client.get(URL)
    assert isinstance(caught.value, httpx.TransportError)
    assert caught.value.code == "circuit_open"
    assert len(sent) == 4


async def test_async_transport_fails_fast_once_open() -> None:
    sent: list[int] = []
    transport = resilience.AsyncResilientTransport(_failing_handler(sent), **POLICY)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(4):
            assert (await client.get(URL)).status_code == 503
        with pytest.raises(httpx.TransportError) as caught:
            await client.get(URL)
    assert isinstance(caught.value, CircuitOpen)
    assert len(sent) == 4


def test_requests_adapter_fails_fast_once_open() -> None:
    with responses.RequestsMock() as mocked, requests.Session() as session:
        mocked.add("GET", URL, status=503)
        session.mount("https://", resilience.ResilientAdapter(**POLICY))
        for _ in range(4):
            assert session.get(URL).status_code == 503
        with pytest.raises(requests.ConnectionError) as caught:
            session.get(URL)
        assert isinstance(caught.value, CircuitOpen)
        assert len(mocked.calls) == 4


def test_an_open_circuit_stops_the_retries_of_a_call_in_flight() -> None:
    sent: list[int] = []
    policy = {**POLICY, "max_attempts": 10, "sleep": lambda s: None}
    client = httpx.Client(transport=resilience.ResilientTransport(_failing_handler(sent), **policy))
    response = client.get(URL)
    assert response.status_code == 503
    assert len(sent) == 4
    assert len(resilience.attempts(response)) == 4


def test_client_errors_do_not_open_the_circuit() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    transport = resilience.ResilientTransport(httpx.MockTransport(answer), **POLICY)
    client = httpx.Client(transport=transport)
    for _ in range(20):
        assert client.get(URL).status_code == 404


def test_the_async_breaker_is_shared_by_concurrent_tasks() -> None:
    sent: list[int] = []

    async def run() -> list[BaseException | httpx.Response]:
        transport = resilience.AsyncResilientTransport(_failing_handler(sent), **POLICY)
        async with httpx.AsyncClient(transport=transport) as client:
            first = [await client.get(URL) for _ in range(4)]
            rest = await asyncio.gather(
                *(client.get(URL) for _ in range(50)), return_exceptions=True
            )
            return [*first, *rest]

    outcomes = asyncio.run(run())
    assert sum(isinstance(o, CircuitOpen) for o in outcomes) == 50
    assert len(sent) == 4


# -- successes counted locally, added to the store later -------------------------------


def test_a_success_of_a_closed_circuit_writes_nothing_to_the_store_at_once() -> None:
    store = MemoryStore()
    state = CircuitProbe(CircuitBreaker(), store)
    for _ in range(5):
        state.record(KEY, False, 0.0)
    assert len(store) == 0


def test_counted_successes_reach_a_shared_store_within_the_flush_interval() -> None:
    store = MemoryStore()
    config = CircuitBreaker(min_calls=4, failure_ratio=0.5, window=10.0)
    first, second = CircuitProbe(config, store), CircuitProbe(config, store)
    for _ in range(6):
        first.record(KEY, False, 0.0)
    first.record(KEY, False, FLUSH_EVERY)  # due: all seven go to the store
    for _ in range(4):
        second.record(KEY, True, FLUSH_EVERY)
    assert second.state(KEY, FLUSH_EVERY) == "closed"  # 4 failures of 11


def test_successes_counted_from_threads_are_all_judged() -> None:
    state = breaker(min_calls=10, failure_ratio=0.5)

    def succeed_many() -> None:
        for _ in range(1000):
            state.record(KEY, False, 1.0)

    threads = [threading.Thread(target=succeed_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(3999):
        state.record(KEY, True, 1.0)
    assert state.state(KEY, 1.0) == "closed"  # 3,999 of 7,999
    state.record(KEY, True, 1.0)
    assert state.state(KEY, 1.0) == "open"  # 4,000 of 8,000


def test_successes_of_a_circuit_leaving_the_cache_are_kept() -> None:
    state = breaker(min_calls=4, failure_ratio=0.6)
    for _ in range(4):
        state.record(KEY, False, 1.0)
    for i in range(_NAMES_MAX):  # the cache of circuits starts over
        state.record((f"host-{i}.example", None), False, 1.0)
    for _ in range(4):
        state.record(KEY, True, 1.0)
    assert state.state(KEY, 1.0) == "closed"  # 4 failures of 8: under 0.6


# -- a circuit read closed is not read again until the store changes ------------------


class _CountingStore(MemoryStore):
    """A MemoryStore that counts reads of many keys."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_many(self, keys, now):  # type: ignore[no-untyped-def]
        self.reads += 1
        return super().get_many(keys, now)


def test_a_closed_circuit_is_not_read_again_while_the_store_is_unchanged() -> None:
    store = _CountingStore()
    probe = CircuitProbe(CircuitBreaker(), store)
    for _ in range(10):
        assert probe.allow(KEY, 0.0)
    assert store.reads == 1


def test_a_closed_circuit_is_read_again_once_the_store_changed() -> None:
    store = _CountingStore()
    probe = CircuitProbe(CircuitBreaker(), store)
    probe.allow(KEY, 0.0)
    store.set("anything", 1.0, 10.0, 0.0)
    probe.allow(KEY, 0.0)
    assert store.reads == 2


def test_a_closed_circuit_is_read_again_after_a_while_however_quiet() -> None:
    store = _CountingStore()
    probe = CircuitProbe(CircuitBreaker(), store)
    probe.allow(KEY, 0.0)
    probe.allow(KEY, REREAD)
    assert store.reads == 2


def test_a_circuit_opened_by_another_transport_is_seen_at_once() -> None:
    store = MemoryStore()
    config = CircuitBreaker(min_calls=2, failure_ratio=0.5)
    here, there = CircuitProbe(config, store), CircuitProbe(config, store)
    assert here.allow(KEY, 0.0)
    there.record(KEY, True, 0.0)
    there.record(KEY, True, 0.0)
    assert not here.allow(KEY, 0.0)
