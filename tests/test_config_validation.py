"""Every configuration object checks every value when it is built, naming the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from resilience import CircuitBreaker, Policy, RateLimit, ResilientTransport, RetryBudget
from resilience.core import checks
from resilience.detectors import GenericDetector
from resilience.regions import Header, HostMap, JsonField, QueryParam
from resilience.stores import MemoryStore, RedisStore

HUGE = 10**400
URL = "redis://127.0.0.1:1/0"  # never reached: nothing is sent while building

# (what is built, the field its message must name, the error)
REFUSED: list[tuple[Callable[[], object], str, type[Exception]]] = [
    # Policy: flags
    (lambda: Policy(retry_non_idempotent="false"), "retry_non_idempotent", TypeError),
    (lambda: Policy(retry_non_idempotent=0), "retry_non_idempotent", TypeError),
    (lambda: Policy(idempotency_key=1), "idempotency_key", TypeError),
    (lambda: Policy(respect_retry_after=None), "respect_retry_after", TypeError),
    # Policy: counts
    (lambda: Policy(max_attempts=True), "max_attempts", TypeError),
    (lambda: Policy(max_attempts=HUGE), "max_attempts", ValueError),
    (lambda: Policy(capacity_retries=2.0), "capacity_retries", TypeError),
    # Policy: durations
    (lambda: Policy(backoff_initial=HUGE), "backoff_initial", ValueError),
    (lambda: Policy(backoff_max=-HUGE), "backoff_max", ValueError),
    (lambda: Policy(retry_after_max=float("inf")), "retry_after_max", ValueError),
    (lambda: Policy(conflict_delay=True), "conflict_delay", TypeError),
    (lambda: Policy(backoff_multiplier=HUGE), "backoff_multiplier", ValueError),
    (lambda: Policy(deadline=0), "deadline", ValueError),
    (lambda: Policy(deadline=-1.0), "deadline", ValueError),
    (lambda: Policy(deadline="10"), "deadline", TypeError),
    (lambda: Policy(attempt_timeout=0.0), "attempt_timeout", ValueError),
    (lambda: Policy(attempt_timeout=float("nan")), "attempt_timeout", ValueError),
    (lambda: Policy(attempt_timeout=False), "attempt_timeout", TypeError),
    # Policy: choices, names, objects
    (lambda: Policy(jitter=["full"]), "jitter", ValueError),
    (lambda: Policy(jitter=b"full"), "jitter", ValueError),
    (lambda: Policy(vendor=""), "vendor", ValueError),
    (lambda: Policy(vendor=5), "vendor", TypeError),
    (lambda: Policy(vendor_hosts={5: "gameye"}), "vendor_hosts", TypeError),
    (lambda: Policy(vendor_hosts={"api.example": None}), "vendor_hosts", TypeError),
    (lambda: Policy(vendor_hosts={"": "gameye"}), "vendor_hosts", ValueError),
    (lambda: Policy(vendor_hosts="api.example"), "vendor_hosts", TypeError),
    (lambda: Policy(detectors="gameye"), "detectors", TypeError),
    (lambda: Policy(detectors=[GenericDetector]), "detectors[0]", TypeError),
    (lambda: Policy(detectors=[object()]), "detectors[0]", TypeError),
    (lambda: Policy(detectors=5), "detectors", TypeError),
    (lambda: Policy(regions=["eu", "eu"]), "regions", ValueError),
    (lambda: Policy(regions={"eu", "us"}), "regions", TypeError),
    (lambda: Policy(regions=["eu", 5]), "regions[1]", TypeError),
    (lambda: Policy(regions=["eu\n"]), "regions[0]", ValueError),
    (lambda: Policy(regions=["\udcff"]), "regions[0]", ValueError),
    (lambda: Policy(region_locator=JsonField), "region_locator", TypeError),
    (
        lambda: Policy(regions=["eu", "us"], region_locator=HostMap({"eu": "https://eu.example"})),
        "regions",
        ValueError,
    ),
    (lambda: Policy(store=MemoryStore), "store", TypeError),
    (lambda: Policy(store=object()), "store", TypeError),
    (lambda: Policy(rate_limit=RateLimit), "rate_limit", TypeError),
    (lambda: Policy(circuit_breaker=CircuitBreaker), "circuit_breaker", TypeError),
    (lambda: Policy(circuit_breaker="true"), "circuit_breaker", TypeError),
    (lambda: Policy(retry_budget=RetryBudget), "retry_budget", TypeError),
    (lambda: Policy(sleep=5), "sleep", TypeError),
    (lambda: Policy(on_retry="print"), "on_retry", TypeError),
    # CircuitBreaker
    (lambda: CircuitBreaker(failure_ratio=True), "circuit_breaker.failure_ratio", TypeError),
    (lambda: CircuitBreaker(failure_ratio=HUGE), "circuit_breaker.failure_ratio", ValueError),
    (lambda: CircuitBreaker(window=1e-300), "circuit_breaker.window", ValueError),
    (lambda: CircuitBreaker(open_for=HUGE), "circuit_breaker.open_for", ValueError),
    (lambda: CircuitBreaker(min_calls=True), "circuit_breaker.min_calls", TypeError),
    (lambda: CircuitBreaker(probes=HUGE), "circuit_breaker.probes", ValueError),
    # RateLimit
    (lambda: RateLimit(per_second=HUGE), "rate_limit.per_second", ValueError),
    (lambda: RateLimit(per_day=1e-300), "rate_limit.per_day", ValueError),
    (lambda: RateLimit(per_second=1, burst=HUGE), "rate_limit.burst", ValueError),
    (lambda: RateLimit(per_second=1, recovery=1e-300), "rate_limit.recovery", ValueError),
    (lambda: RateLimit(per_second=1, adaptive="false"), "rate_limit.adaptive", TypeError),
    (lambda: RateLimit(per_second=1, key=5), "rate_limit.key", TypeError),
    (lambda: RateLimit(per_second=1, key="\udcff"), "rate_limit.key", ValueError),
    # RetryBudget
    (lambda: RetryBudget(max_tokens=HUGE), "retry_budget.max_tokens", ValueError),
    (lambda: RetryBudget(token_ratio=False), "retry_budget.token_ratio", TypeError),
    # Region locators
    (lambda: HostMap({"eu": 5}), "HostMap.bases['eu']", TypeError),
    (lambda: HostMap({5: "https://eu.example"}), "HostMap region", TypeError),
    (lambda: HostMap({"eu": "eu.example"}), "HostMap.bases['eu']", ValueError),
    (lambda: HostMap(["eu"]), "HostMap.bases", TypeError),
    (lambda: JsonField(5), "JsonField.name", TypeError),
    (lambda: JsonField(""), "JsonField.name", ValueError),
    (lambda: Header(b"X-Region"), "Header.name", TypeError),
    (lambda: Header("X Region"), "Header.name", ValueError),
    (lambda: QueryParam(None), "QueryParam.name", TypeError),
    # RedisStore
    (lambda: RedisStore(123), "url_or_client", TypeError),
    (lambda: RedisStore(MemoryStore), "url_or_client", TypeError),
    (lambda: RedisStore("http://127.0.0.1/"), "url_or_client", ValueError),
    (lambda: RedisStore(URL, prefix=5), "prefix", TypeError),
    (lambda: RedisStore(URL, prefix="\udcff"), "prefix", ValueError),
    (lambda: RedisStore(URL, timeout=True), "timeout", TypeError),
    (lambda: RedisStore(URL, timeout=0), "timeout", ValueError),
    (lambda: RedisStore(URL, retry_interval=HUGE), "retry_interval", ValueError),
    (lambda: RedisStore(URL, retry_interval="5"), "retry_interval", TypeError),
]


@pytest.mark.parametrize(
    ("build", "field", "error"), REFUSED, ids=[f"{f}-{e.__name__}" for _, f, e in REFUSED]
)
def test_nonsense_is_refused_naming_the_field(
    build: Callable[[], object], field: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=re.escape(field)):
        build()


def test_the_message_says_what_was_given() -> None:
    with pytest.raises(TypeError, match=r"^retry_non_idempotent must be a bool, not str$"):
        Policy(retry_non_idempotent="false")  # type: ignore[arg-type]


def test_a_class_where_an_instance_belongs_asks_for_an_instance() -> None:
    with pytest.raises(TypeError, match=r"not the class MemoryStore: pass an instance"):
        Policy(store=MemoryStore)  # type: ignore[arg-type]


def test_a_huge_int_is_a_value_error_not_an_overflow() -> None:
    with pytest.raises(ValueError, match="int of about 401 digits"):
        checks.number("n", HUGE)


@pytest.mark.parametrize(
    ("options", "name", "stored"),
    [
        ({"backoff_initial": 1}, "backoff_initial", 1.0),
        ({"deadline": 1e-300}, "deadline", 1e-300),
        ({"attempt_timeout": 2}, "attempt_timeout", 2.0),
        ({"regions": iter(["eu", "us"])}, "regions", ("eu", "us")),
        ({"circuit_breaker": True}, "circuit_breaker", CircuitBreaker()),
        ({"circuit_breaker": False}, "circuit_breaker", None),
    ],
)
def test_valid_values_are_kept_normalised(options: dict[str, Any], name: str, stored: Any) -> None:
    assert getattr(Policy(**options), name) == stored


def test_backoff_initial_above_backoff_max_is_capped_not_refused() -> None:
    """The cap wins: ``backoff_max=0`` means retries without waiting."""
    assert Policy(backoff_initial=5.0, backoff_max=0.0).steps == (0.0, 0.0, 0.0)


def test_a_hostmap_is_copied() -> None:
    bases = {"eu": "https://eu.example"}
    locator = HostMap(bases)
    bases["eu"] = "https://evil.example"
    assert locator.bases == {"eu": "https://eu.example"}


def test_an_unknown_vendor_in_vendor_hosts_is_refused_when_the_transport_is_built() -> None:
    """Detectors may be registered after the policy is made; the transport knows them."""
    with pytest.raises(ValueError, match=re.escape("vendor_hosts['api.example']")):
        ResilientTransport(
            transport=httpx.MockTransport(lambda r: httpx.Response(200)),
            vendor_hosts={"api.example": "nobody"},
        )
