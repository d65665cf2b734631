"""The retry budget and the circuit breaker kept in a store (memory or a real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

import resilience
from resilience import CircuitBreaker, RetryBudget
from resilience.stores import MemoryStore, RedisStore, Store
from tests._redis import running_redis
from tests._strategies import BudgetProbe, CircuitProbe

KEY = ("api.example", None)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    redis_store = RedisStore(url, prefix=f"test:{uuid.uuid4().hex}:")
    yield redis_store
    redis_store.close()


def test_shared_budget_starts_full_and_allows_retries(store: Store) -> None:
    assert BudgetProbe(RetryBudget(max_tokens=10), store).allows_retry()


def test_shared_budget_stops_retries_after_half_the_tokens_fail(store: Store) -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=10), store)
    for _ in range(5):
        budget.record_failure()
    assert not budget.allows_retry()


def test_two_transports_on_one_store_share_one_budget(store: Store) -> None:
    first = BudgetProbe(RetryBudget(max_tokens=10), store)
    second = BudgetProbe(RetryBudget(max_tokens=10), store)
    for _ in range(5):
        first.record_failure()
    assert not second.allows_retry()


def test_shared_budget_refills_on_success_up_to_its_size(store: Store) -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=10, token_ratio=1.0), store)
    for _ in range(6):
        budget.record_failure()
    for _ in range(20):
        budget.record_success()
    assert budget.tokens == 10


def _tripped(store: Store) -> CircuitProbe:
    breaker = CircuitProbe(
        CircuitBreaker(min_calls=4, failure_ratio=0.5, window=10, open_for=1), store
    )
    for _ in range(4):
        breaker.record(KEY, True, 0.0)
    return breaker


def test_shared_breaker_opens_on_the_failure_ratio(store: Store) -> None:
    breaker = _tripped(store)
    assert breaker.state(KEY, 0.0) == "open"
    assert not breaker.allow(KEY, 0.0)


def test_shared_breaker_stays_closed_on_successes(store: Store) -> None:
    breaker = CircuitProbe(CircuitBreaker(min_calls=4), store)
    for _ in range(10):
        breaker.record(KEY, False, 0.0)
    assert breaker.allow(KEY, 0.0)


def test_a_second_process_sees_the_circuit_open(store: Store) -> None:
    _tripped(store)
    other = CircuitProbe(CircuitBreaker(min_calls=4, open_for=1), store)
    assert not other.allow(KEY, 0.0)


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_shared_breaker_half_opens_then_closes_on_a_good_probe(store: MemoryStore) -> None:
    breaker = _tripped(store)
    assert breaker.state(KEY, 1.5) == "half_open"
    assert breaker.allow(KEY, 1.5)
    assert not breaker.allow(KEY, 1.5)
    breaker.record(KEY, False, 1.6)
    assert breaker.state(KEY, 1.7) == "closed"


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_shared_breaker_reopens_on_a_failed_probe(store: MemoryStore) -> None:
    breaker = _tripped(store)
    assert breaker.allow(KEY, 1.5)
    breaker.record(KEY, True, 1.6)
    assert breaker.state(KEY, 1.7) == "open"


def test_transports_on_one_store_share_the_breaker(store: Store) -> None:
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(503)

    policy = {
        "circuit_breaker": CircuitBreaker(min_calls=4, open_for=60),
        "store": store,
        "max_attempts": 1,
    }
    first = httpx.Client(
        transport=resilience.ResilientTransport(httpx.MockTransport(answer), **policy)
    )
    second = httpx.Client(
        transport=resilience.ResilientTransport(httpx.MockTransport(answer), **policy)
    )
    for _ in range(4):
        first.get("https://api.example/x")
    with pytest.raises(resilience.CircuitOpen):
        second.get("https://api.example/x")
    assert len(sent) == 4
