"""Every configuration object is refused when built, or works in a call: never a third outcome.

For each class, keyword values are drawn from a wide mix (valid values, wrong
types, bools, ``"false"``, ``None``, huge ints, NaN and infinities, negatives,
zero, ``1e-300``, classes where instances belong). Either the constructor
raises ``TypeError``/``ValueError`` naming a field it was given, or the object
serves real calls through a transport without any other exception escaping.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resilience
from resilience import CircuitBreaker, RateLimit, ResilientTransport, RetryBudget
from resilience.core.backoff import JITTERS
from resilience.detectors import GenericDetector, registered_detectors
from resilience.regions import Header, HostMap, JsonField, QueryParam
from resilience.stores import MemoryStore, RedisStore
from tests._redis import running_redis

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# What a call may raise: the library's own errors (a refusal: circuit open,
# local rate limit) and the client's (a deadline is the client's timeout).
DOCUMENTED = (resilience.ResilienceError, httpx.HTTPError)

EU, US = "https://eu.api.example", "https://us.api.example"

# Values no keyword should take, and some that some keywords take.
wild: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["false", "true", "", "0", "1", "full", "\udcff", "eu-west"]),
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([10**400, -(10**400), 10**9, 10**9 + 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 5e-324, 0.0, -0.0, 1e9, 1e10, math.nan, math.inf, -math.inf]),
    st.sampled_from(
        [MemoryStore, RateLimit, CircuitBreaker, RetryBudget, JsonField, GenericDetector, object]
    ),
    st.builds(object),
    st.lists(st.sampled_from(["eu", "us", "", 5]), max_size=3),
    st.dictionaries(st.sampled_from(["eu", 5, ""]), st.sampled_from([EU, 5, "", "x"]), max_size=2),
    st.sampled_from([b"full", (), frozenset({"eu"}), {"eu", "us"}]),
)
not_callable = wild.filter(lambda v: not callable(v))


def no_sleep(seconds: float) -> None:
    """The injected sleep: nothing waits for real."""


small_seconds = st.floats(min_value=0.0, max_value=0.01)
limits = st.none() | st.floats(min_value=1e-300, max_value=5.0)

POLICY_VALID: dict[str, st.SearchStrategy[Any]] = {
    "max_attempts": st.integers(min_value=1, max_value=5),
    "backoff_initial": small_seconds,
    "backoff_multiplier": st.floats(min_value=1.0, max_value=10.0),
    "backoff_max": small_seconds,
    "jitter": st.sampled_from(sorted(JITTERS)),
    "respect_retry_after": st.booleans(),
    "retry_after_max": st.floats(min_value=0.0, max_value=60.0),
    "deadline": limits,
    "attempt_timeout": limits,
    "retry_non_idempotent": st.booleans(),
    "idempotency_key": st.booleans(),
    "regions": st.none() | st.lists(st.sampled_from(["eu", "us"]), unique=True),
    "region_locator": st.sampled_from(
        [None, Header("X-Region"), QueryParam("region"), JsonField("location")]
    )
    | st.just(HostMap({"eu": EU, "us": US})),
    "capacity_retries": st.integers(min_value=0, max_value=3),
    "conflict_delay": small_seconds,
    "vendor": st.sampled_from([None, "generic", "gameye", "playwave", "8bitedge"]),
    "vendor_hosts": st.none() | st.just({"eu.api.example": "generic"}),
    "detectors": st.none() | st.just(registered_detectors()) | st.just(()),
    "on_retry": st.sampled_from([None, print]),
    "sleep": st.just(no_sleep),
    "retry_budget": st.sampled_from([None, RetryBudget()]),
    "circuit_breaker": st.sampled_from([None, True, False, CircuitBreaker()]),
    "rate_limit": st.sampled_from([None, RateLimit(per_second=1000)]),
    "store": st.none() | st.builds(MemoryStore),
}


def _options(valid: dict[str, st.SearchStrategy[Any]], **wilder: st.SearchStrategy[Any]) -> Any:
    """A few keywords, each drawn valid or wild (``wilder`` narrows the wild mix per keyword)."""

    @st.composite
    def draw_options(draw: st.DrawFn) -> dict[str, Any]:
        names = draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=5))
        return {
            name: draw(valid[name] if draw(st.booleans()) else wilder.get(name, wild))
            for name in names
        }

    return draw_options()


class Server:
    """Answers each method ``500`` then ``200`` (then ``200``), counting requests per call."""

    def __init__(self, first: int = 500) -> None:
        self.first = first
        self.sent: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        earlier = [r for r in self.sent[:-1] if r.method == request.method]
        return httpx.Response(self.first if not earlier else 200)


def refused_naming_a_field(exc: Exception, fields: list[str]) -> None:
    assert isinstance(exc, (TypeError, ValueError))
    assert any(field in str(exc) for field in fields), (str(exc), fields)


def calls(
    server: Server, transport: httpx.BaseTransport, methods: tuple[str, ...] = ("GET", "POST")
) -> list[int]:
    """Send each method once through ``transport``: the requests each call sent."""
    sent: list[int] = []
    with httpx.Client(transport=transport, base_url=EU) as client:
        for method in methods:
            before = len(server.sent)
            with contextlib.suppress(*DOCUMENTED):
                client.request(method, "/sessions", json={"location": "eu"})
            sent.append(len(server.sent) - before)
    return sent


def build(server: Server, **options: Any) -> ResilientTransport:
    options.setdefault("sleep", no_sleep)
    return ResilientTransport(transport=httpx.MockTransport(server.handler), **options)


@SETTINGS
@given(options=_options(POLICY_VALID, sleep=not_callable, on_retry=not_callable))
def test_policy_keywords_are_refused_or_work_in_a_call(options: dict[str, Any]) -> None:
    server = Server()
    try:
        transport = build(server, **options)
    except Exception as exc:
        refused_naming_a_field(exc, list(options))
        return
    policy = transport.policy
    for sent in calls(server, transport):
        assert 1 <= sent <= policy.max_attempts


def _strategy_test(keyword: str, options: dict[str, Any], factory: Callable[..., Any]) -> None:
    try:
        config = factory(**options)
    except Exception as exc:
        refused_naming_a_field(exc, [f"{keyword}.{name}" for name in options] + [keyword])
        return
    for store in (None, MemoryStore()):
        server = Server()
        transport = build(server, **{keyword: config, "store": store})
        for sent in calls(server, transport, ("GET", "GET", "POST")):
            assert sent <= transport.policy.max_attempts


BREAKER_VALID = {
    "failure_ratio": st.floats(min_value=0.01, max_value=1.0),
    "min_calls": st.integers(min_value=1, max_value=5),
    "window": st.floats(min_value=1e-3, max_value=60.0),
    "open_for": st.floats(min_value=1e-3, max_value=60.0),
    "probes": st.integers(min_value=1, max_value=3),
}


@SETTINGS
@given(options=_options(BREAKER_VALID))
def test_circuit_breaker_fields_are_refused_or_work_in_a_call(options: dict[str, Any]) -> None:
    _strategy_test("circuit_breaker", options, CircuitBreaker)


RATE_VALID = {
    "per_second": st.none() | st.floats(min_value=1e-6, max_value=1e9),
    "per_minute": st.none() | st.floats(min_value=6e-5, max_value=1e9),
    "per_day": st.none() | st.floats(min_value=0.0865, max_value=1e9),
    "burst": st.none() | st.floats(min_value=1.0, max_value=1e9),
    "key": st.none() | st.sampled_from(["key-7f3a", "é"]),
    "adaptive": st.booleans(),
    "recovery": st.floats(min_value=1e-3, max_value=1e9),
}


@SETTINGS
@given(options=_options(RATE_VALID))
def test_rate_limit_fields_are_refused_or_work_in_a_call(options: dict[str, Any]) -> None:
    _strategy_test("rate_limit", options, RateLimit)


BUDGET_VALID = {
    "max_tokens": st.floats(min_value=1e-300, max_value=1e9),
    "token_ratio": st.floats(min_value=1e-300, max_value=1e9),
}


@SETTINGS
@given(options=_options(BUDGET_VALID))
def test_retry_budget_fields_are_refused_or_work_in_a_call(options: dict[str, Any]) -> None:
    _strategy_test("retry_budget", options, RetryBudget)


LOCATORS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "JsonField": (JsonField, "JsonField.name"),
    "Header": (Header, "Header.name"),
    "QueryParam": (QueryParam, "QueryParam.name"),
    "HostMap": (lambda bases: HostMap(bases), "HostMap"),
}


@SETTINGS
@given(
    kind=st.sampled_from(sorted(LOCATORS)),
    value=wild
    | st.sampled_from(["location", "X-Region", "region", "bad header", "a\nb"])
    | st.dictionaries(
        st.sampled_from(["eu", "us", "", "\udcff", 5]),
        st.sampled_from([EU, US, "ftp://x", "", "eu", 5]),
        max_size=2,
    ),
)
def test_region_locators_are_refused_or_fail_over_in_a_call(kind: str, value: Any) -> None:
    factory, field = LOCATORS[kind]
    try:
        locator = factory(value)
    except Exception as exc:
        refused_naming_a_field(exc, [field])
        return
    server = Server(first=420)  # CAPACITY: fail over to the next region
    try:
        transport = build(server, regions=["eu", "us"], region_locator=locator, capacity_retries=0)
    except Exception as exc:
        refused_naming_a_field(exc, ["regions", "region_locator"])
        return
    for sent in calls(server, transport):
        assert 1 <= sent <= 4


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as server:
        yield server.url


@SETTINGS
@given(data=st.data())
def test_redis_store_arguments_are_refused_or_work_in_a_call(
    redis_url: str, data: st.DataObject
) -> None:
    options = data.draw(
        _options(
            {
                "prefix": st.sampled_from(["", "test:", "é:"]),
                "timeout": st.floats(min_value=1e-300, max_value=2.0),
                "retry_interval": st.floats(min_value=0.0, max_value=60.0),
            }
        )
    )
    target = data.draw(
        st.sampled_from([redis_url, "http://127.0.0.1/", "redis://127.0.0.1:1/0"]) | wild
    )
    try:
        store = RedisStore(target, **options)
    except Exception as exc:
        refused_naming_a_field(exc, [*options, "url_or_client"])
        return
    server = Server()
    try:
        transport = build(server, store=store, rate_limit=RateLimit(per_second=1000))
        for sent in calls(server, transport):
            assert 1 <= sent <= 4
    finally:
        store.close()
