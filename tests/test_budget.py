"""The retry budget: retries add little load in an outage, yet lone failures are retried."""

from __future__ import annotations

import random
from typing import Any

import pytest

from resilience import Category, Classification, Policy, RetryBudget
from resilience.core.engine import Action, CallState, ErrorKind
from resilience.strategies.budget import BudgetState

NOW = 0.0
DOWN = Classification.of("generic", Category.TRANSIENT, 503)
OK = Classification.of("generic", Category.OK, 200)
NOT_FOUND = Classification.of("generic", Category.NOT_FOUND, 404)


def start(budget: BudgetState, policy: Policy | None = None) -> CallState:
    return CallState(
        policy or Policy(),
        method="GET",
        url="https://api.example.com/x",
        started=NOW,
        budget=budget,
        uniform=random.Random(7).uniform,
    )


def requests_sent(call: CallState, outcome: str) -> int:
    """Drive one logical call against a vendor that always fails; return requests sent."""
    sent = 0
    while True:
        sent += 1
        if outcome == "error":
            decision = call.on_error(ErrorKind.CONNECT, "ConnectError", NOW)
        else:
            decision = call.on_response(DOWN, NOW)
        if decision.action is not Action.RETRY:
            return sent


@pytest.mark.parametrize("outcome", ["503", "error"])
def test_full_outage_sends_at_most_1_25_requests_per_call(outcome: str) -> None:
    """100 calls through one transport while the vendor is down."""
    policy = Policy()
    assert policy.retry_budget is not None
    budget = policy.retry_budget.new_state()
    sent = sum(requests_sent(start(budget, policy), outcome) for _ in range(100))
    assert sent / 100 <= 1.25


def test_full_outage_without_a_budget_sends_max_attempts_per_call() -> None:
    """The contrast that makes the budget worth having."""
    policy = Policy(retry_budget=None)
    calls = [CallState(policy, method="GET", url="u", started=NOW) for _ in range(100)]
    sent = sum(requests_sent(call, "503") for call in calls)
    assert sent == 400


def test_lone_failure_among_successes_is_retried() -> None:
    budget = RetryBudget().new_state()
    for _ in range(50):
        start(budget).on_response(OK, NOW)
    assert start(budget).on_response(DOWN, NOW).action is Action.RETRY


def test_exhausted_budget_gives_up() -> None:
    budget = RetryBudget(max_tokens=2.0).new_state()
    budget.record_failure()
    decision = start(budget).on_response(DOWN, NOW)
    assert decision.action is Action.GIVE_UP
    assert "budget" in decision.reason


def test_retries_resume_once_successes_refill_the_budget() -> None:
    budget = RetryBudget(max_tokens=10.0, token_ratio=1.0).new_state()
    for _ in range(10):
        budget.record_failure()
    assert start(budget).on_response(DOWN, NOW).action is Action.GIVE_UP
    for _ in range(10):
        start(budget).on_response(OK, NOW)
    assert start(budget).on_response(DOWN, NOW).action is Action.RETRY


def test_non_retryable_answer_refills_the_budget() -> None:
    """A 404 is an answer: the vendor is up."""
    budget = RetryBudget(max_tokens=10.0, token_ratio=0.5).new_state()
    budget.record_failure()
    start(budget).on_response(NOT_FOUND, NOW)
    assert budget.tokens == 9.5


def test_new_state_starts_full() -> None:
    budget = RetryBudget(max_tokens=8.0).new_state()
    assert budget.tokens == 8.0
    assert budget.allows_retry()


def test_failure_takes_one_token() -> None:
    budget = RetryBudget(max_tokens=8.0).new_state()
    budget.record_failure()
    assert budget.tokens == 7.0


def test_tokens_never_go_below_zero() -> None:
    budget = RetryBudget(max_tokens=2.0).new_state()
    for _ in range(5):
        budget.record_failure()
    assert budget.tokens == 0.0


def test_success_gives_back_token_ratio() -> None:
    budget = RetryBudget(max_tokens=8.0, token_ratio=0.25).new_state()
    budget.record_failure()
    budget.record_success()
    assert budget.tokens == 7.25


def test_tokens_never_exceed_max_tokens() -> None:
    budget = RetryBudget(max_tokens=8.0, token_ratio=5.0).new_state()
    budget.record_failure()
    budget.record_success()
    assert budget.tokens == 8.0


def test_retry_allowed_only_above_half_the_bucket() -> None:
    budget = RetryBudget(max_tokens=4.0).new_state()
    budget.record_failure()
    assert budget.allows_retry()
    budget.record_failure()
    assert not budget.allows_retry()


def test_each_state_has_its_own_tokens() -> None:
    config = RetryBudget()
    first, second = config.new_state(), config.new_state()
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
