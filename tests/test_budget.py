"""The retry budget: retries add little load in an outage, yet lone failures are retried."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import resilience
from resilience import RetryBudget
from resilience.stores import MemoryStore
from tests._strategies import BudgetProbe

SENT: list[int] = []


def transport(
    answers: Iterator[int | Exception], *, store: MemoryStore | None = None, **policy: Any
) -> httpx.Client:
    """A client whose every request gets the next of ``answers`` (a status or an error)."""

    def answer(request: httpx.Request) -> httpx.Response:
        SENT.append(1)
        outcome = next(answers)
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome)

    inner = httpx.MockTransport(answer)
    options: dict[str, Any] = {"sleep": lambda s: None, "store": store, **policy}
    return httpx.Client(transport=resilience.ResilientTransport(inner, **options))


@pytest.fixture(autouse=True)
def _count() -> None:
    SENT.clear()


@pytest.mark.parametrize("outcome", ["503", "error"])
def test_full_outage_sends_at_most_1_25_requests_per_call(outcome: str) -> None:
    """100 calls through one transport while the vendor is down."""
    down: int | Exception = 503 if outcome == "503" else httpx.ConnectError("refused")
    client = transport(itertools.repeat(down))
    for _ in range(100):
        with contextlib.suppress(httpx.ConnectError):
            client.get("https://api.example.com/x")
    assert len(SENT) / 100 <= 1.25


def test_full_outage_without_a_budget_sends_max_attempts_per_call() -> None:
    """The contrast that makes the budget worth having."""
    client = transport(itertools.repeat(503), retry_budget=None)
    for _ in range(100):
        client.get("https://api.example.com/x")
    assert len(SENT) == 400


def test_lone_failure_among_successes_is_retried() -> None:
    client = transport(itertools.chain([200] * 20, [503, 200]))
    for _ in range(20):
        client.get("https://api.example.com/x")
    assert client.get("https://api.example.com/x").status_code == 200
    assert len(SENT) == 22


def test_exhausted_budget_gives_up() -> None:
    client = transport(itertools.repeat(503), retry_budget=RetryBudget(max_tokens=2.0))
    response = client.get("https://api.example.com/x")
    assert len(SENT) == 1
    assert "budget" in resilience.attempts(response)[-1].outcome


def test_retries_resume_once_successes_refill_the_budget() -> None:
    budget = RetryBudget(max_tokens=10.0, token_ratio=1.0)
    client = transport(itertools.chain([503] * 5, [200] * 2, [503, 200]), retry_budget=budget)
    client.get("https://api.example.com/x")  # four failed attempts: 6 tokens left
    refused = client.get("https://api.example.com/x")  # 5 left: half the bucket
    assert len(resilience.attempts(refused)) == 1
    for _ in range(2):
        client.get("https://api.example.com/x")  # 7 left
    assert client.get("https://api.example.com/x").status_code == 200  # retried again


def test_non_retryable_answer_refills_the_budget() -> None:
    """A 404 is an answer: the server is up."""
    store = MemoryStore()
    budget = RetryBudget(max_tokens=10.0, token_ratio=0.5)
    client = transport(iter([503, 404, 404]), store=store, retry_budget=budget, max_attempts=1)
    client.get("https://api.example.com/x")
    assert BudgetProbe(budget, store).tokens == 9.0
    client.get("https://api.example.com/x")
    assert BudgetProbe(budget, store).tokens == 9.5


def test_new_state_starts_full() -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=8.0))
    assert budget.tokens == 8.0
    assert budget.allows_retry()


def test_failure_takes_one_token() -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=8.0))
    budget.record_failure()
    assert budget.tokens == 7.0


def test_tokens_never_go_below_zero() -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=2.0))
    for _ in range(5):
        budget.record_failure()
    assert budget.tokens == 0.0


def test_success_gives_back_token_ratio() -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=8.0, token_ratio=0.25))
    budget.record_failure()
    budget.record_success()
    assert budget.tokens == 7.25


def test_tokens_never_exceed_max_tokens() -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=8.0, token_ratio=5.0))
    budget.record_failure()
    budget.record_success()
    assert budget.tokens == 8.0


def test_retry_allowed_only_above_half_the_bucket() -> None:
    budget = BudgetProbe(RetryBudget(max_tokens=4.0))
    budget.record_failure()
    assert budget.allows_retry()
    budget.record_failure()
    assert not budget.allows_retry()


def test_each_state_has_its_own_tokens() -> None:
    config = RetryBudget()
    first, second = BudgetProbe(config), BudgetProbe(config)
    first.record_failure()
    assert second.tokens == config.max_tokens


@pytest.mark.parametrize("name", ["max_tokens", "token_ratio"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_bad_budget_value_is_a_value_error(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        RetryBudget(**{name: value})


@pytest.mark.parametrize("name", ["max_tokens", "token_ratio"])
@pytest.mark.parametrize("value", ["10", True, None])
def test_budget_value_of_the_wrong_type_is_a_type_error(name: str, value: Any) -> None:
    with pytest.raises(TypeError, match=name):
        RetryBudget(**{name: value})
