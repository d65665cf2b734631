"""Properties of the sans-IO core, checked over generated policies, outcomes and responses."""

from __future__ import annotations

import json
import math
import string
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from resilience import Category, Classification, Policy, classify
from resilience.core.backoff import JITTERS, nominal
from resilience.core.classification import RETRYABLE
from resilience.regions import JsonField, RequestParts
from resilience.retry.engine import Action, CallState, Decision, ErrorKind

# No time limits: a loaded machine generates and runs examples several times slower.
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STARTED = 500.0

seconds = st.floats(min_value=0.0, max_value=120.0, allow_nan=False, allow_infinity=False)
# A deadline is > 0: no call fits in none.
deadlines = st.floats(min_value=0.0, max_value=120.0, exclude_min=True)
fractions = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=16)


class CyclingUniform:
    """``uniform(a, b)`` drawing its fractions, in turn, from a generated list."""

    def __init__(self, fractions: list[float]) -> None:
        self.fractions = fractions
        self.index = 0

    def __call__(self, a: float, b: float) -> float:
        fraction = self.fractions[self.index % len(self.fractions)]
        self.index += 1
        return min(max(a + fraction * (b - a), a), b)


@st.composite
def policies(draw: st.DrawFn, /, **fixed: Any) -> Policy:
    options: dict[str, Any] = {
        "max_attempts": draw(st.integers(min_value=1, max_value=8)),
        # No subnormal delays (below 2.2e-308 s): there halving a float loses
        # its last bit, and no bound on a wait can be checked to the ulp.
        "backoff_initial": draw(st.floats(min_value=0.0, max_value=10.0, allow_subnormal=False)),
        "backoff_multiplier": draw(st.floats(min_value=1.0, max_value=5.0)),
        "backoff_max": draw(st.floats(min_value=0.0, max_value=60.0, allow_subnormal=False)),
        "jitter": draw(st.sampled_from(sorted(JITTERS))),
        "respect_retry_after": draw(st.booleans()),
        "retry_after_max": draw(seconds),
        "deadline": draw(st.none() | deadlines),
        "retry_non_idempotent": draw(st.booleans()),
        "regions": draw(
            st.none()
            | st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True).map(tuple)
        ),
        "capacity_retries": draw(st.integers(min_value=0, max_value=3)),
        "conflict_delay": draw(st.floats(min_value=0.0, max_value=10.0)),
        "retry_budget": None,
    }
    options.update(fixed)
    return Policy(**options)


classifications = st.builds(
    lambda category, status, retry_after: Classification.of(
        "generic", category, status, retry_after=retry_after
    ),
    st.sampled_from(list(Category)),
    st.integers(min_value=100, max_value=599),
    st.none() | seconds,
)
outcomes = st.lists(
    st.one_of(classifications, st.sampled_from(list(ErrorKind))), min_size=1, max_size=12
)


def run(
    call: CallState, script: list[Any], durations: list[float]
) -> Iterator[tuple[float, Decision]]:
    """Report ``script``'s outcomes (cycled) until the call ends; yield (now, decision)."""
    elapsed = 0.0
    for i in range(100):
        outcome = script[i % len(script)]
        elapsed += durations[i % len(durations)]
        now = STARTED + elapsed
        if isinstance(outcome, ErrorKind):
            decision = call.on_error(outcome, "SomeError", now)
        else:
            decision = call.on_response(outcome, now)
        yield now, decision
        if decision.action is not Action.RETRY:
            return
        elapsed += decision.delay
    raise AssertionError("the call never ended")


def new_call(policy: Policy, method: str, uniform: CyclingUniform) -> CallState:
    region = policy.regions[0] if policy.regions else None
    return CallState(
        policy,
        method=method,
        url="https://x.example/",
        started=STARTED,
        region=region,
        uniform=uniform,
    )


# -- the engine -------------------------------------------------------------------------


@SETTINGS
@given(
    policy=policies(deadline=None),
    draws=fractions,
    errors=st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_backoff_delays_stay_within_jitter_bounds_and_backoff_max(
    policy: Policy, draws: list[float], errors: list[bool]
) -> None:
    """Failures without Retry-After: every wait is the jitter of the schedule value."""
    script: list[Any] = [
        ErrorKind.CONNECT if e else Classification.of("generic", Category.TRANSIENT, 500)
        for e in errors
    ]
    call = new_call(policy, "GET", CyclingUniform(draws))
    for index, (_, decision) in enumerate(run(call, script, [0.0])):
        if decision.action is not Action.RETRY:
            break
        cap = nominal(policy.steps, index, policy.backoff_multiplier, policy.backoff_max)
        delay = decision.delay
        assert 0.0 <= delay <= policy.backoff_max
        if policy.jitter == "none":
            assert delay == cap
        elif policy.jitter == "full":
            assert delay <= cap
        elif policy.jitter == "equal":
            assert cap / 2 <= delay <= cap
        else:
            assert min(policy.backoff_initial, policy.backoff_max) <= delay


@SETTINGS
@given(
    policy=policies(),
    script=outcomes,
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH"]),
    draws=fractions,
)
def test_never_more_than_max_attempts(
    policy: Policy, script: list[Any], method: str, draws: list[float]
) -> None:
    call = new_call(policy, method, CyclingUniform(draws))
    sent = len(list(run(call, script, [0.0])))
    assert sent <= policy.max_attempts
    assert [a.number for a in call.attempts] == list(range(1, sent + 1))


@SETTINGS
@given(
    policy=policies(deadline=None).flatmap(
        lambda p: st.builds(lambda d: Policy.from_kwargs(p, {"deadline": d}), deadlines)
    ),
    script=outcomes,
    durations=st.lists(st.floats(min_value=0.0, max_value=20.0), min_size=1, max_size=8),
    draws=fractions,
)
def test_no_sleep_crosses_the_deadline(
    policy: Policy, script: list[Any], durations: list[float], draws: list[float]
) -> None:
    assert policy.deadline is not None
    call = new_call(policy, "GET", CyclingUniform(draws))
    for now, decision in run(call, script, durations):
        if decision.action is Action.RETRY:
            assert (now - STARTED) + decision.delay <= policy.deadline


@SETTINGS
@given(
    policy=policies(
        deadline=None,
        respect_retry_after=True,
        max_attempts=4,
        capacity_retries=1,
    ),
    retry_after=seconds,
    category=st.sampled_from(
        [Category.RATE_LIMITED, Category.TRANSIENT, Category.CONFLICT_PENDING, Category.CAPACITY]
    ),
    draws=fractions,
)
def test_retry_after_is_honoured_exactly_when_under_the_cap(
    policy: Policy, retry_after: float, category: Category, draws: list[float]
) -> None:
    call = new_call(policy, "GET", CyclingUniform(draws))
    answer = Classification.of("generic", category, 503, retry_after=retry_after)
    decision = call.on_response(answer, STARTED)
    if retry_after <= policy.retry_after_max:
        assert (decision.action, decision.delay) == (Action.RETRY, retry_after)
    elif category is Category.CAPACITY and policy.regions and len(set(policy.regions)) > 1:
        # Too long to wait here, but another region does not wait at all.
        assert (decision.action, decision.delay, decision.reason) == (
            Action.RETRY,
            0.0,
            "failover",
        )
    else:
        assert decision.action is Action.GIVE_UP


# -- classify ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)


def _shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys))


envelopes = st.one_of(
    _shaped(["statusCode", "code", "message", "identifier", "path", "timestamp"]),
    st.fixed_dictionaries(
        {"success": st.just(False), "error": _shaped(["code", "message", "timestamp"])}
    ),
    st.fixed_dictionaries({"error": _shaped(["code", "message", "details"])}),
    _shaped(["success", "reason", "result", "message", "requestId", "error"]),
    json_values,
)
bodies = st.one_of(st.binary(max_size=512), envelopes.map(lambda v: json.dumps(v).encode()))

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
header_names = st.sampled_from(["Retry-After", "X-Request-Id", "Content-Type"]) | st.text(
    alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=12
)
headers = st.dictionaries(
    header_names,
    header_text | st.sampled_from(["0.05", "-1", "NaN", "inf", "Sun, 06 Nov 1994 08:49:37 GMT"]),
    max_size=4,
)
urls = st.sampled_from(
    [
        "https://api.gameye.io/session",
        "https://api.8bitedge.com:8443/api/v1/games/batch",
        "https://pw.example/playwave/session/end",
        "http://127.0.0.1:9/x?y=1",
    ]
)
VENDOR_HOSTS = {"api.gameye.io": "gameye", "pw.example": "playwave"}


def build(library: str, status: int, hdrs: Mapping[str, str], body: bytes, url: str) -> Any:
    if library == "httpx":
        return httpx.Response(
            status, headers=dict(hdrs), content=body, request=httpx.Request("POST", url)
        )
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(hdrs)
    response._content = body
    response.request = requests.Request("POST", url).prepare()
    return response


@SETTINGS
@given(
    library=st.sampled_from(["requests", "httpx"]),
    status=st.integers(min_value=0, max_value=999),
    hdrs=headers,
    body=bodies,
    url=urls,
    vendor=st.sampled_from([None, "gameye", "8bitedge", "playwave", "generic"]),
    use_hosts=st.booleans(),
)
def test_classify_never_raises(
    library: str,
    status: int,
    hdrs: dict[str, str],
    body: bytes,
    url: str,
    vendor: str | None,
    use_hosts: bool,
) -> None:
    response = build(library, status, hdrs, body, url)
    c = classify(response, vendor=vendor, vendor_hosts=VENDOR_HOSTS if use_hosts else None)
    assert c.status == status
    assert isinstance(c.category, Category)
    assert c.retryable == (c.category in RETRYABLE)
    assert isinstance(c.details, Mapping)
    assert c.retry_after is None or (math.isfinite(c.retry_after) and c.retry_after >= 0)
    if vendor is not None:
        assert c.vendor == vendor


# -- regions -----------------------------------------------------------------------------

other_fields = st.dictionaries(
    st.text(max_size=10).filter(lambda key: key != "location"), json_values, max_size=5
)


@SETTINGS
@given(
    before=other_fields,
    after=other_fields,
    current=st.text(max_size=12),
    region=st.text(max_size=12),
    spacing=st.sampled_from([(", ", ": "), (",", ":"), (" ,\n ", " : ")]),
    ascii_only=st.booleans(),
)
def test_json_field_rewrite_changes_only_the_value_bytes(
    before: dict[str, Any],
    after: dict[str, Any],
    current: str,
    region: str,
    spacing: tuple[str, str],
    ascii_only: bool,
) -> None:
    comma, colon = spacing
    after = {k: v for k, v in after.items() if k not in before}

    def items(fields: dict[str, Any]) -> list[str]:
        return [
            json.dumps(k, ensure_ascii=ascii_only) + colon + json.dumps(v, ensure_ascii=ascii_only)
            for k, v in fields.items()
        ]

    head = "{" + "".join(item + comma for item in items(before)) + '"location"' + colon
    tail = "".join(comma + item for item in items(after)) + "}"
    body = (head + json.dumps(current, ensure_ascii=ascii_only) + tail).encode()
    parts = RequestParts("POST", "https://x/", (), body)
    rewritten = JsonField("location").with_region(parts, region)
    assert rewritten.body == head.encode() + json.dumps(region).encode() + tail.encode()
