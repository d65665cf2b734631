"""CallState: one outcome in, one decision out (no clock, no sleep, no socket)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from resilience import Category, Classification, Policy
from resilience.detectors import GameyeDetector, VendorRules, rules_of
from resilience.retry.engine import Action, CallState, Decision, ErrorKind

URL = "https://api.gameye.io/session"
STARTED = 1000.0
NOW = STARTED + 1.0


class Uniform:
    """``uniform(a, b)`` answering ``a + fraction * (b - a)`` and recording its bounds."""

    def __init__(self, fraction: float = 1.0) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def __call__(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + self.fraction * (b - a)


GAMEYE = rules_of(GameyeDetector())


def policy(**options: Any) -> Policy:
    """A policy with deterministic backoff and no shared budget unless asked."""
    options.setdefault("jitter", "none")
    options.setdefault("retry_budget", None)
    return Policy(**options)


def start(
    p: Policy | None = None,
    *,
    method: str = "GET",
    region: str | None = None,
    replayable: bool = True,
    idempotent: Callable[[], bool] | None = None,
    uniform: Uniform | None = None,
) -> CallState:
    return CallState(
        p or policy(),
        method=method,
        url=URL,
        started=STARTED,
        region=region,
        replayable=replayable,
        idempotent=idempotent,
        uniform=uniform or Uniform(),
    )


def answer(
    category: Category, status: int, *, retry_after: float | None = None, vendor: str = "generic"
) -> Classification:
    return Classification.of(vendor, category, status, retry_after=retry_after)


OK = answer(Category.OK, 200)
SERVER_ERROR = answer(Category.TRANSIENT, 500)
UNAVAILABLE = answer(Category.TRANSIENT, 503)
RATE_LIMITED = answer(Category.RATE_LIMITED, 429)
CAPACITY = answer(Category.CAPACITY, 420, vendor="gameye")
GAMEYE_CONFLICT = answer(Category.CONFLICT, 409, vendor="gameye")
PENDING = answer(Category.CONFLICT_PENDING, 409, vendor="8bitedge")


def connect_error(call: CallState, now: float = NOW) -> Decision:
    return call.on_error(ErrorKind.CONNECT, "ConnectError", now)


def read_error(call: CallState, now: float = NOW) -> Decision:
    return call.on_error(ErrorKind.UNKNOWN, "ReadTimeout", now)


# -- return or retry -------------------------------------------------------------------


def test_ok_is_returned() -> None:
    decision = start().on_response(OK, NOW)
    assert decision.action is Action.RETURN
    assert decision.event is None


@pytest.mark.parametrize(
    "category",
    [
        Category.CONFLICT,
        Category.ALREADY_DONE,
        Category.QUOTA_EXHAUSTED,
        Category.UNAUTHORIZED,
        Category.FORBIDDEN,
        Category.NOT_FOUND,
        Category.SESSION_LOST,
        Category.INVALID_REQUEST,
        Category.NOT_IMPLEMENTED,
        Category.BUSINESS_REJECTED,
        Category.CLIENT_ERROR,
    ],
)
def test_non_retryable_answer_is_returned_at_once(category: Category) -> None:
    call = start()
    decision = call.on_response(answer(category, 400), NOW)
    assert (decision.action, decision.event) == (Action.RETURN, None)
    assert len(call.attempts) == 1


def test_transient_is_retried_after_backoff() -> None:
    decision = start().on_response(SERVER_ERROR, NOW)
    assert (decision.action, decision.delay, decision.reason) == (Action.RETRY, 0.5, "retry")


def test_backoff_grows_by_the_multiplier_between_retries() -> None:
    call = start(policy(max_attempts=5))
    assert [call.on_response(SERVER_ERROR, NOW).delay for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped_at_backoff_max() -> None:
    call = start(policy(backoff_initial=10.0, backoff_max=15.0, max_attempts=4))
    assert [call.on_response(SERVER_ERROR, NOW).delay for _ in range(3)] == [10.0, 15.0, 15.0]


def test_full_jitter_draws_from_the_injected_uniform() -> None:
    uniform = Uniform(0.5)
    decision = start(policy(jitter="full"), uniform=uniform).on_response(SERVER_ERROR, NOW)
    assert decision.delay == 0.25
    assert uniform.calls == [(0.0, 0.5)]


def test_decorrelated_jitter_grows_from_the_previous_delay() -> None:
    call = start(policy(jitter="decorrelated", max_attempts=4), uniform=Uniform(1.0))
    assert [call.on_response(SERVER_ERROR, NOW).delay for _ in range(3)] == [1.5, 4.5, 13.5]


def test_connect_error_is_retried_after_backoff() -> None:
    decision = connect_error(start())
    assert (decision.action, decision.delay) == (Action.RETRY, 0.5)


def test_fatal_error_is_never_retried() -> None:
    decision = start().on_error(ErrorKind.FATAL, "SSLError", NOW)
    assert decision.action is Action.GIVE_UP


def test_ok_after_retries_is_returned() -> None:
    call = start()
    call.on_response(SERVER_ERROR, NOW)
    assert call.on_response(OK, NOW).action is Action.RETURN


# -- Retry-After --------------------------------------------------------------------------


def test_retry_after_overrides_backoff() -> None:
    decision = start().on_response(answer(Category.TRANSIENT, 503, retry_after=7.0), NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 7.0)


def test_rate_limited_waits_retry_after() -> None:
    decision = start().on_response(answer(Category.RATE_LIMITED, 429, retry_after=0.05), NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 0.05)


def test_rate_limited_without_retry_after_uses_backoff() -> None:
    decision = start().on_response(RATE_LIMITED, NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 0.5)


def test_retry_after_longer_than_retry_after_max_gives_up() -> None:
    call = start(policy(retry_after_max=60.0))
    decision = call.on_response(answer(Category.RATE_LIMITED, 429, retry_after=60.5), NOW)
    assert decision.action is Action.GIVE_UP
    assert "retry_after_max" in decision.reason


def test_retry_after_equal_to_retry_after_max_is_waited() -> None:
    call = start(policy(retry_after_max=60.0))
    decision = call.on_response(answer(Category.RATE_LIMITED, 429, retry_after=60.0), NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 60.0)


def test_retry_after_is_ignored_when_not_respected() -> None:
    call = start(policy(respect_retry_after=False))
    decision = call.on_response(answer(Category.RATE_LIMITED, 429, retry_after=7.0), NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 0.5)


def test_unrespected_retry_after_over_the_cap_does_not_give_up() -> None:
    call = start(policy(respect_retry_after=False, retry_after_max=1.0))
    decision = call.on_response(answer(Category.TRANSIENT, 503, retry_after=600.0), NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 0.5)


def test_zero_retry_after_retries_at_once() -> None:
    decision = start().on_response(answer(Category.RATE_LIMITED, 429, retry_after=0.0), NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 0.0)


# -- CONFLICT_PENDING ---------------------------------------------------------------------


def test_conflict_pending_waits_at_least_conflict_delay() -> None:
    decision = start(policy(conflict_delay=2.0)).on_response(PENDING, NOW)
    assert (decision.action, decision.delay) == (Action.RETRY, 2.0)


def test_conflict_pending_waits_backoff_when_longer_than_conflict_delay() -> None:
    call = start(policy(backoff_initial=5.0, conflict_delay=2.0))
    assert call.on_response(PENDING, NOW).delay == 5.0


def test_conflict_pending_retry_after_wins_over_conflict_delay() -> None:
    pending = answer(Category.CONFLICT_PENDING, 409, retry_after=0.3)
    assert start(policy(conflict_delay=2.0)).on_response(pending, NOW).delay == 0.3


# -- CAPACITY and region failover ---------------------------------------------------------


def test_capacity_retries_the_same_region_after_two_to_five_seconds() -> None:
    uniform = Uniform(0.5)
    call = start(policy(regions=("eu-west", "us-east")), region="eu-west", uniform=uniform)
    decision = call.on_response(CAPACITY, NOW, GAMEYE)
    assert (decision.action, decision.delay, decision.region, decision.reason) == (
        Action.RETRY,
        3.5,
        "eu-west",
        "retry",
    )
    assert uniform.calls == [(2.0, 5.0)]


@pytest.mark.parametrize(("fraction", "delay"), [(0.0, 2.0), (1.0, 5.0)])
def test_capacity_wait_bounds(fraction: float, delay: float) -> None:
    call = start(uniform=Uniform(fraction))
    assert call.on_response(CAPACITY, NOW, GAMEYE).delay == delay


def test_capacity_retry_after_wins_over_the_capacity_wait() -> None:
    capacity = answer(Category.CAPACITY, 420, retry_after=0.5)
    assert start().on_response(capacity, NOW).delay == 0.5


def test_capacity_ignores_unrespected_retry_after() -> None:
    capacity = answer(Category.CAPACITY, 420, retry_after=0.5)
    call = start(policy(respect_retry_after=False), uniform=Uniform(0.0))
    assert call.on_response(capacity, NOW, GAMEYE).delay == 2.0


def test_capacity_fails_over_without_waiting_after_capacity_retries() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=1), region="eu-west")
    call.on_response(CAPACITY, NOW)
    decision = call.on_response(CAPACITY, NOW)
    assert (decision.action, decision.delay, decision.region, decision.reason) == (
        Action.RETRY,
        0.0,
        "us-east",
        "failover",
    )


def test_capacity_retries_zero_fails_over_at_once() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=0), region="eu-west")
    decision = call.on_response(CAPACITY, NOW)
    assert (decision.region, decision.reason, decision.delay) == ("us-east", "failover", 0.0)


def test_capacity_retries_two_retries_the_region_twice_first() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=2), region="eu-west")
    reasons = [call.on_response(CAPACITY, NOW).reason for _ in range(3)]
    assert reasons == ["retry", "retry", "failover"]


def test_failover_does_not_wait_for_retry_after() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=0), region="eu-west")
    decision = call.on_response(answer(Category.CAPACITY, 420, retry_after=10.0), NOW)
    assert (decision.reason, decision.delay) == ("failover", 0.0)


def test_capacity_with_overlong_retry_after_fails_over_when_a_region_is_left() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=0), region="eu-west")
    decision = call.on_response(answer(Category.CAPACITY, 420, retry_after=600.0), NOW)
    assert (decision.action, decision.region, decision.delay) == (Action.RETRY, "us-east", 0.0)


def test_capacity_with_overlong_retry_after_and_no_region_left_gives_up() -> None:
    call = start(policy(capacity_retries=1))
    decision = call.on_response(answer(Category.CAPACITY, 420, retry_after=600.0), NOW)
    assert decision.action is Action.GIVE_UP


def test_failover_goes_to_the_first_untried_region_in_order() -> None:
    call = start(
        policy(regions=("ap-south", "eu-west", "us-east"), capacity_retries=0),
        region="eu-west",
    )
    assert [call.on_response(CAPACITY, NOW).region for _ in range(2)] == ["ap-south", "us-east"]


def test_capacity_gives_up_when_no_region_is_left() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=0), region="eu-west")
    call.on_response(CAPACITY, NOW)
    decision = call.on_response(CAPACITY, NOW)
    assert decision.action is Action.GIVE_UP
    assert "region" in decision.reason


def test_capacity_without_regions_gives_up_after_the_same_region_retries() -> None:
    call = start(policy(capacity_retries=1))
    assert call.on_response(CAPACITY, NOW).action is Action.RETRY
    assert call.on_response(CAPACITY, NOW).action is Action.GIVE_UP


def test_failovers_count_toward_max_attempts() -> None:
    call = start(policy(regions=("a", "b", "c"), capacity_retries=0, max_attempts=2), region="a")
    assert call.on_response(CAPACITY, NOW).region == "b"
    decision = call.on_response(CAPACITY, NOW)
    assert decision.action is Action.GIVE_UP
    assert decision.reason == "max_attempts reached"


# -- limits: attempts, deadline, replayability -------------------------------------------


def test_max_attempts_reached_gives_up() -> None:
    call = start(policy(max_attempts=4))
    actions = [call.on_response(SERVER_ERROR, NOW).action for _ in range(4)]
    assert actions == [Action.RETRY, Action.RETRY, Action.RETRY, Action.GIVE_UP]
    assert len(call.attempts) == 4
    assert call.attempts[-1].outcome == "max_attempts reached"


def test_max_attempts_one_never_retries() -> None:
    assert start(policy(max_attempts=1)).on_response(UNAVAILABLE, NOW).action is Action.GIVE_UP


def test_sleep_that_would_cross_the_deadline_is_not_started() -> None:
    call = start(policy(deadline=10.0))
    decision = call.on_response(SERVER_ERROR, STARTED + 9.6)
    assert decision.action is Action.GIVE_UP
    assert "deadline" in decision.reason


def test_sleep_ending_exactly_at_the_deadline_is_started() -> None:
    call = start(policy(deadline=10.0))
    assert call.on_response(SERVER_ERROR, STARTED + 9.5).action is Action.RETRY


def test_deadline_counts_the_waits_already_asked_for() -> None:
    """A sleep that returns at once does not hand out fresh time."""
    call = start(policy(deadline=1.0))
    assert call.on_response(SERVER_ERROR, STARTED).action is Action.RETRY
    decision = call.on_response(SERVER_ERROR, STARTED)
    assert decision.action is Action.GIVE_UP
    assert "deadline" in decision.reason


def test_retry_after_that_would_cross_the_deadline_gives_up() -> None:
    call = start(policy(deadline=3.0))
    decision = call.on_response(answer(Category.RATE_LIMITED, 429, retry_after=5.0), NOW)
    assert decision.action is Action.GIVE_UP


def test_failover_after_the_deadline_is_not_made() -> None:
    call = start(policy(regions=("a", "b"), capacity_retries=0, deadline=1.0), region="a")
    assert call.on_response(CAPACITY, STARTED + 1.5).action is Action.GIVE_UP


@pytest.mark.parametrize(
    "outcome",
    [
        lambda call: call.on_response(UNAVAILABLE, NOW),
        lambda call: call.on_response(RATE_LIMITED, NOW),
        lambda call: call.on_response(CAPACITY, NOW),
        lambda call: call.on_response(PENDING, NOW),
        connect_error,
    ],
    ids=["503", "429", "420", "409-pending", "connect-error"],
)
def test_request_that_cannot_be_replayed_is_never_retried(
    outcome: Callable[[CallState], Decision],
) -> None:
    decision = outcome(start(replayable=False))
    assert decision.action is Action.GIVE_UP
    assert "replayed" in decision.reason


# -- POST and PATCH ---------------------------------------------------------------------

NOT_PROCESSED: list[Any] = [
    pytest.param(connect_error, id="connect-error"),
    pytest.param(lambda call: call.on_response(RATE_LIMITED, NOW), id="429"),
    pytest.param(lambda call: call.on_response(CAPACITY, NOW), id="420"),
    pytest.param(lambda call: call.on_response(UNAVAILABLE, NOW), id="503"),
]

MAYBE_PROCESSED: list[Any] = [
    pytest.param(lambda call: call.on_response(SERVER_ERROR, NOW), id="500"),
    pytest.param(lambda call: call.on_response(answer(Category.TRANSIENT, 502), NOW), id="502"),
    pytest.param(lambda call: call.on_response(answer(Category.TRANSIENT, 504), NOW), id="504"),
    pytest.param(read_error, id="read-error"),
]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("outcome", NOT_PROCESSED)
def test_unsafe_method_is_always_retried_when_the_request_was_not_processed(
    method: str, outcome: Callable[[CallState], Decision]
) -> None:
    assert outcome(start(method=method)).action is Action.RETRY


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("outcome", MAYBE_PROCESSED)
def test_unsafe_method_is_not_retried_when_it_may_have_been_processed(
    method: str, outcome: Callable[[CallState], Decision]
) -> None:
    decision = outcome(start(method=method))
    assert decision.action is Action.GIVE_UP
    assert "idempotency" in decision.reason


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("outcome", MAYBE_PROCESSED)
def test_unsafe_method_with_idempotency_key_is_retried(
    method: str, outcome: Callable[[CallState], Decision]
) -> None:
    assert outcome(start(method=method, idempotent=lambda rules: True)).action is Action.RETRY


@pytest.mark.parametrize("outcome", MAYBE_PROCESSED)
def test_unsafe_method_without_key_is_retried_with_retry_non_idempotent(
    outcome: Callable[[CallState], Decision],
) -> None:
    call = start(policy(retry_non_idempotent=True), method="POST")
    assert outcome(call).action is Action.RETRY


def test_idempotent_answering_false_is_not_retried() -> None:
    call = start(method="POST", idempotent=lambda rules: False)
    assert call.on_response(SERVER_ERROR, NOW).action is Action.GIVE_UP


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("outcome", MAYBE_PROCESSED)
def test_other_methods_are_retried_when_they_may_have_been_processed(
    method: str, outcome: Callable[[CallState], Decision]
) -> None:
    assert outcome(start(method=method)).action is Action.RETRY


def test_method_is_matched_case_insensitively() -> None:
    assert start(method="post").on_response(SERVER_ERROR, NOW).action is Action.GIVE_UP


def test_idempotency_is_asked_only_when_it_matters() -> None:
    """Not for GET, not after a 503; only for a POST that may have been processed."""
    asked: list[str] = []

    def idempotent(rules: VendorRules) -> bool:
        asked.append("asked")
        return True

    start(method="GET", idempotent=idempotent).on_response(SERVER_ERROR, NOW)
    start(method="POST", idempotent=idempotent).on_response(UNAVAILABLE, NOW)
    assert asked == []
    start(method="POST", idempotent=idempotent).on_response(SERVER_ERROR, NOW)
    assert asked == ["asked"]


# -- a conflict after an unknown outcome ---------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(read_error, id="read-error"),
        pytest.param(lambda call: call.on_response(SERVER_ERROR, NOW), id="500"),
        pytest.param(lambda call: call.on_response(answer(Category.TRANSIENT, 502), NOW), id="502"),
    ],
)
def test_conflict_after_an_unknown_outcome_of_a_post_is_already_done(
    first: Callable[[CallState], Decision],
) -> None:
    """The lost attempt created the session: "already exists" now means "done"."""
    call = start(method="POST", idempotent=lambda rules: True)
    assert first(call).action is Action.RETRY
    decision = call.on_response(GAMEYE_CONFLICT, NOW, GAMEYE)
    assert decision.action is Action.RETURN
    assert decision.classification is not None
    assert decision.classification.category is Category.ALREADY_DONE
    assert decision.classification.retryable is False
    assert decision.classification.vendor == "gameye"


def test_attempts_show_why_a_conflict_became_already_done() -> None:
    call = start(method="POST", idempotent=lambda rules: True)
    read_error(call)
    call.on_response(GAMEYE_CONFLICT, NOW, GAMEYE)
    last = call.attempts[-1]
    assert last.classification is not None
    assert last.classification.category is Category.ALREADY_DONE
    assert last.status == 409
    assert "earlier attempt" in last.outcome


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(connect_error, id="connect-error"),
        pytest.param(lambda call: call.on_response(UNAVAILABLE, NOW), id="503"),
        pytest.param(lambda call: call.on_response(RATE_LIMITED, NOW), id="429"),
    ],
)
def test_conflict_after_an_unprocessed_attempt_stays_a_conflict(
    first: Callable[[CallState], Decision],
) -> None:
    call = start(method="POST", idempotent=lambda rules: True)
    first(call)
    decision = call.on_response(GAMEYE_CONFLICT, NOW, GAMEYE)
    assert decision.classification is not None
    assert decision.classification.category is Category.CONFLICT


def test_conflict_on_the_first_attempt_stays_a_conflict() -> None:
    decision = start(method="POST").on_response(GAMEYE_CONFLICT, NOW, GAMEYE)
    assert decision.classification is not None
    assert decision.classification.category is Category.CONFLICT


# -- what is recorded --------------------------------------------------------------------


def test_attempts_record_number_status_error_delay_and_classification() -> None:
    call = start()
    connect_error(call)
    call.on_response(answer(Category.TRANSIENT, 503, retry_after=2.0), NOW)
    call.on_response(OK, NOW)
    summary = [(a.number, a.status, a.error, a.delay, a.classification) for a in call.attempts]
    assert summary == [
        (1, None, "ConnectError", 0.0, None),
        (2, 503, None, 0.5, answer(Category.TRANSIENT, 503, retry_after=2.0)),
        (3, 200, None, 2.0, OK),
    ]


def test_attempts_record_the_region_of_each_attempt() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=1), region="eu-west")
    call.on_response(CAPACITY, NOW, GAMEYE)
    call.on_response(CAPACITY, NOW, GAMEYE)
    call.on_response(OK, NOW)
    assert [(a.region, a.delay) for a in call.attempts] == [
        ("eu-west", 0.0),
        ("eu-west", 5.0),
        ("us-east", 0.0),
    ]


def test_the_attempt_that_gives_up_is_recorded() -> None:
    call = start(policy(max_attempts=1))
    call.on_response(UNAVAILABLE, NOW)
    assert [(a.number, a.status) for a in call.attempts] == [(1, 503)]


def test_retry_event_describes_the_failed_attempt_and_the_wait() -> None:
    call = start(policy(regions=("eu-west",)), method="post", region="eu-west")
    event = call.on_response(UNAVAILABLE, NOW).event
    assert event is not None
    assert (event.attempt, event.delay, event.classification, event.error) == (
        1,
        0.5,
        UNAVAILABLE,
        None,
    )
    assert (event.method, event.url) == ("POST", URL)
    assert (event.region, event.next_region, event.reason) == ("eu-west", "eu-west", "retry")


def test_retry_event_after_an_error_names_the_error() -> None:
    call = start()
    connect_error(call)
    event = connect_error(call).event
    assert event is not None
    assert (event.attempt, event.error, event.classification, event.delay) == (
        2,
        "ConnectError",
        None,
        1.0,
    )


def test_failover_event_names_both_regions() -> None:
    call = start(policy(regions=("eu-west", "us-east"), capacity_retries=0), region="eu-west")
    event = call.on_response(CAPACITY, NOW).event
    assert event is not None
    assert (event.region, event.next_region, event.reason, event.delay) == (
        "eu-west",
        "us-east",
        "failover",
        0.0,
    )


def test_decision_carries_the_classification() -> None:
    assert start().on_response(UNAVAILABLE, NOW).classification == UNAVAILABLE
