"""Typed errors: what they say, what they hide, what survives pickling."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator

import httpx
import pytest
import requests
import responses

import resilience
from resilience import Category, Classification

AUTHORIZATION = "Bearer au7h-v4lue-never-shown"
API_KEY = "ap1-k3y-never-shown"
TOKEN = "t0k3n-never-shown"
PASSWORD = "pa55w0rd-never-shown"
SECRET_URL = f"https://alice:{PASSWORD}@api.example/v1/me?api_key={API_KEY}&token={TOKEN}&page=2"
SECRETS = (AUTHORIZATION, API_KEY, TOKEN, PASSWORD, "alice:")

RATE_LIMITED = Classification.of(
    "8bitedge",
    Category.RATE_LIMITED,
    429,
    code="rate_limit_exceeded",
    message="slow down",
    details={"limit": 100},
    trace_id="req-8b-1234",
    retry_after=1.0,
)


def _8bitedge_429(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        429,
        json={"error": {"code": "rate_limit_exceeded", "message": "slow down"}},
        headers={"X-Request-Id": "req-8b-1234", "Retry-After": "1"},
    )


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def httpx_error() -> resilience.ResilienceError:
    """The error the httpx hook raises for a request carrying every credential."""
    hooks = resilience.httpx_event_hooks()
    with (
        httpx.Client(transport=httpx.MockTransport(_8bitedge_429), event_hooks=hooks) as c,
        pytest.raises(resilience.RateLimited) as caught,
    ):
        c.get(SECRET_URL, headers={"Authorization": AUTHORIZATION})
    return caught.value


def requests_error(mock: responses.RequestsMock) -> resilience.ResilienceError:
    """The error the requests hook raises for a request carrying every credential."""
    mock.add(
        "GET",
        re.compile(r"https://.*"),
        status=429,
        json={"error": {"code": "rate_limit_exceeded", "message": "slow down"}},
        headers={"X-Request-Id": "req-8b-1234", "Retry-After": "1"},
    )
    with requests.Session() as s:
        s.hooks["response"].append(resilience.requests_response_hook())
        with pytest.raises(resilience.RateLimited) as caught:
            s.get(SECRET_URL, headers={"Authorization": AUTHORIZATION})
    return caught.value


def test_str_names_status_code_and_trace_id() -> None:
    text = str(resilience.RateLimited(RATE_LIMITED))
    assert "429" in text
    assert "rate_limit_exceeded" in text
    assert "req-8b-1234" in text


def test_repr_names_status_code_and_trace_id() -> None:
    text = repr(resilience.RateLimited(RATE_LIMITED))
    assert text.startswith("RateLimited(")
    assert "429" in text
    assert "rate_limit_exceeded" in text
    assert "req-8b-1234" in text


def test_shortcuts_read_the_classification() -> None:
    error = resilience.RateLimited(RATE_LIMITED)
    assert error.classification is RATE_LIMITED
    assert (error.status, error.vendor, error.code, error.message, error.trace_id) == (
        429,
        "8bitedge",
        "rate_limit_exceeded",
        "slow down",
        "req-8b-1234",
    )
    assert dict(error.details) == {"limit": 100}
    assert error.response is None
    assert error.attempts == []


@pytest.mark.parametrize(
    "error_class",
    [
        resilience.RateLimited,
        resilience.ServerError,
        resilience.Conflict,
        resilience.CapacityUnavailable,
        resilience.QuotaExhausted,
        resilience.Unauthorized,
        resilience.Forbidden,
        resilience.NotFound,
        resilience.SessionLost,
        resilience.InvalidRequest,
        resilience.NotImplementedByServer,
        resilience.BusinessRejected,
        resilience.ClientError,
    ],
)
def test_every_typed_error_is_a_resilience_error(error_class: type[Exception]) -> None:
    assert issubclass(error_class, resilience.ResilienceError)


def test_httpx_hook_error_str_and_repr_hide_credentials() -> None:
    error = httpx_error()
    for text in (str(error), repr(error)):
        for secret in SECRETS:
            assert secret not in text
    assert "api.example/v1/me" in str(error)


def test_requests_hook_error_str_and_repr_hide_credentials(
    mocked: responses.RequestsMock,
) -> None:
    error = requests_error(mocked)
    for text in (str(error), repr(error)):
        for secret in SECRETS:
            assert secret not in text
    assert "api.example/v1/me" in str(error)


def test_pickle_round_trip_keeps_the_classification() -> None:
    restored = pickle.loads(pickle.dumps(resilience.RateLimited(RATE_LIMITED)))
    assert type(restored) is resilience.RateLimited
    assert restored.classification == RATE_LIMITED
    assert str(restored) == str(resilience.RateLimited(RATE_LIMITED))


def test_pickle_round_trip_of_an_error_without_details_keeps_the_classification() -> None:
    bare = Classification.of("generic", Category.NOT_FOUND, 404)
    restored = pickle.loads(pickle.dumps(resilience.NotFound(bare)))
    assert restored.classification == bare


def test_pickle_round_trip_of_a_hook_error_keeps_the_classification() -> None:
    error = httpx_error()
    restored = pickle.loads(pickle.dumps(error))
    assert isinstance(restored, resilience.RateLimited)
    assert restored.classification == error.classification
