"""``ResilientAdapter`` through ``responses`` (and a refused loopback port for real
connection errors): the requests mirror of ``test_httpx_transport.py``."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses

import resilience
from resilience import Category, Classification, RetryEvent
from tests.conftest import AsyncRecordingSleep, RecordingSleep

URL = "https://api.example/x"
ANY_URL = re.compile(r"https?://.*")

GAMEYE_409 = {
    "json": {
        "statusCode": 409,
        "code": "CONFLICT",
        "message": "A session with the provided id already exists.",
        "identifier": "3bc545b7-4750-47e6-a918-c93debc58663",
        "path": "/session",
        "timestamp": "2026-03-05T12:00:00Z",
    },
}
PLAYWAVE_409 = {
    "json": {"success": False, "error": {"code": "ALREADY_ENDED", "message": "already ended"}},
}
EIGHTBITEDGE_503 = {
    "json": {"error": {"code": "server_error", "message": "try later"}},
    "headers": {"X-Request-Id": "req-8b-42"},
}


class TeapotDetector:
    """A plugin vendor whose ``{"teapot": ...}`` answers are transient."""

    name = "teapot"
    success_body = False

    def matches(self, payload: Any) -> bool:
        return isinstance(payload, dict) and "teapot" in payload

    def classify(self, view: Any, payload: Any, retry_after: float | None) -> Classification:
        return Classification.of("teapot", Category.TRANSIENT, view.status, code="brewing")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _refused_url() -> str:
    """A URL on 127.0.0.1 whose port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/x"


@pytest.fixture
def refused_url() -> str:
    return _refused_url()


@pytest.fixture(scope="module")
def refused() -> requests.ConnectionError:
    """The ``requests.ConnectionError`` a refused connection really raises.

    Module-scoped so that it is made before ``responses`` starts intercepting.
    """
    with requests.Session() as plain, pytest.raises(requests.ConnectionError) as caught:
        plain.get(_refused_url(), timeout=5)
    return caught.value


def script(
    mock: responses.RequestsMock, *replies: int | dict[str, Any] | Exception, method: str = "GET"
) -> None:
    """Answer ``replies`` in turn (the last repeats): a status, keywords of
    ``responses.add`` (``status`` defaults to the key ``"status"`` or 200), or an
    exception to raise."""
    for reply in replies:
        if isinstance(reply, int):
            mock.add(method, ANY_URL, status=reply)
        elif isinstance(reply, Exception):
            mock.add(method, ANY_URL, body=reply)
        else:
            mock.add(method, ANY_URL, **reply)


def session(sleep: RecordingSleep, **policy: Any) -> requests.Session:
    """A session with a resilient adapter on both schemes (exact backoff)."""
    policy.setdefault("jitter", "none")
    adapter = resilience.ResilientAdapter(sleep=sleep, **policy)
    s = requests.Session()
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


# -- statuses ------------------------------------------------------------------


def test_503_503_200_takes_three_calls_and_exact_backoff(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 503, 503, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert len(mocked.calls) == 3
    assert sleep.calls == [0.5, 1.0]


def test_max_attempts_returns_the_last_response_without_raising(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 503, "json": {"n": "last"}})
    with session(sleep, max_attempts=3) as s:
        response = s.get(URL)
    assert response.status_code == 503
    assert response.json() == {"n": "last"}
    assert len(mocked.calls) == 3
    assert sleep.calls == [0.5, 1.0]


def test_429_waits_exactly_retry_after(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 429, "headers": {"Retry-After": "0.05"}}, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert len(mocked.calls) == 2
    assert sleep.calls == [0.05]


def test_retry_after_over_retry_after_max_is_returned_at_once(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 429, "headers": {"Retry-After": "120"}}, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 429
    assert len(mocked.calls) == 1
    assert sleep.calls == []


def test_retry_after_equal_to_retry_after_max_is_waited(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 429, "headers": {"Retry-After": "5"}}, 200)
    with session(sleep, retry_after_max=5.0) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert sleep.calls == [5.0]


def test_respect_retry_after_false_uses_backoff(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 429, "headers": {"Retry-After": "0.05"}}, 200)
    with session(sleep, respect_retry_after=False) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert sleep.calls == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
def test_final_status_is_returned_after_one_call(
    mocked: responses.RequestsMock, sleep: RecordingSleep, status: int
) -> None:
    script(mocked, status, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == status
    assert len(mocked.calls) == 1
    assert sleep.calls == []


def test_generic_409_waits_conflict_delay_when_longer_than_backoff(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 409, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert len(mocked.calls) == 2
    assert sleep.calls == [2.0]


def test_generic_409_waits_backoff_when_longer_than_conflict_delay(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 409, 200)
    with session(sleep, conflict_delay=0.1) as s:
        s.get(URL)
    assert sleep.calls == [0.5]


def test_gameye_409_is_not_retried(mocked: responses.RequestsMock, sleep: RecordingSleep) -> None:
    script(mocked, {"status": 409, **GAMEYE_409}, 200, method="POST")
    with session(sleep) as s:
        response = s.post("https://api.gameye.example/session", json={"id": "s-1"})
    assert response.status_code == 409
    assert len(mocked.calls) == 1
    assert sleep.calls == []


# -- deadline ------------------------------------------------------------------


def test_deadline_stops_before_a_sleep_that_would_cross_it(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 503)
    with session(sleep, deadline=1.0) as s:
        response = s.get(URL)
    assert response.status_code == 503
    assert len(mocked.calls) == 2
    assert sleep.calls == [0.5]


def test_deadline_counts_the_sleeps_already_taken(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    """0.5 s slept plus a 1.0 s wait would cross a 1.2 s deadline."""
    script(mocked, 503)
    with session(sleep, deadline=1.2) as s:
        s.get(URL)
    assert sleep.calls == [0.5]


# -- unsafe methods --------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unsafe_method_is_not_retried_after_500_without_key(
    mocked: responses.RequestsMock, sleep: RecordingSleep, method: str
) -> None:
    script(mocked, 500, 200, method=method)
    with session(sleep) as s:
        response = s.request(method, URL, json={"a": 1})
    assert response.status_code == 500
    assert len(mocked.calls) == 1
    assert sleep.calls == []


def test_post_with_idempotency_key_header_is_retried_after_500(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 500, 200, method="POST")
    with session(sleep) as s:
        response = s.post(URL, json={"a": 1}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200
    assert len(mocked.calls) == 2
    assert sleep.calls == [0.5]


def test_post_is_retried_after_500_with_retry_non_idempotent(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 500, 200, method="POST")
    with session(sleep, retry_non_idempotent=True) as s:
        response = s.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert len(mocked.calls) == 2


@pytest.mark.parametrize(
    ("status", "headers", "waits"),
    [
        (503, {}, [0.5]),
        (429, {"Retry-After": "0.01"}, [0.01]),
        (420, {"Retry-After": "0.01"}, [0.01]),
    ],
)
def test_post_is_always_retried_after_unprocessed_answers(
    mocked: responses.RequestsMock,
    sleep: RecordingSleep,
    status: int,
    headers: dict[str, str],
    waits: list[float],
) -> None:
    script(mocked, {"status": status, "headers": headers}, 200, method="POST")
    with session(sleep) as s:
        response = s.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert len(mocked.calls) == 2
    assert sleep.calls == waits


def test_post_is_retried_after_connect_error(
    mocked: responses.RequestsMock, sleep: RecordingSleep, refused: requests.ConnectionError
) -> None:
    script(mocked, refused, 200, method="POST")
    with session(sleep) as s:
        response = s.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert len(mocked.calls) == 2
    assert sleep.calls == [0.5]


# -- idempotency_key=True ----------------------------------------------------------


def headers_sent(
    mock: responses.RequestsMock, *statuses: int, method: str = "GET"
) -> list[dict[str, str]]:
    """Answer ``statuses`` in turn (the last repeats); return the headers of each
    attempt as it was sent (the adapter sends one ``PreparedRequest`` throughout)."""
    sent: list[dict[str, str]] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        sent.append(dict(request.headers))
        return statuses[min(len(sent), len(statuses)) - 1], {}, b""

    mock.add_callback(method, ANY_URL, callback=answer)
    return sent


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_idempotency_key_is_added_once_and_reused_on_every_attempt(
    mocked: responses.RequestsMock, sleep: RecordingSleep, method: str
) -> None:
    sent = headers_sent(mocked, 500, 500, 200, method=method)
    with session(sleep, idempotency_key=True) as s:
        response = s.request(method, URL, json={"a": 1})
    assert response.status_code == 200
    keys = [headers.get("Idempotency-Key") for headers in sent]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert uuid.UUID(keys[0]).version == 4


def test_idempotency_key_leaves_get_alone(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    sent = headers_sent(mocked, 503, 200)
    with session(sleep, idempotency_key=True) as s:
        s.get(URL)
    assert len(sent) == 2
    assert all("Idempotency-Key" not in headers for headers in sent)


def test_idempotency_key_keeps_an_existing_key(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    sent = headers_sent(mocked, 500, 200, method="POST")
    with session(sleep, idempotency_key=True) as s:
        s.post(URL, json={"a": 1}, headers={"Idempotency-Key": "mine"})
    assert [headers["Idempotency-Key"] for headers in sent] == ["mine", "mine"]


# -- vendors -------------------------------------------------------------------------


def test_pinned_vendor_decides_the_answer(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    """A Playwave 409 is ALREADY_DONE, not the generic rule's retryable 409."""
    script(mocked, 409, 200)
    with session(sleep, vendor="playwave") as s:
        response = s.get(URL)
    assert response.status_code == 409
    assert len(mocked.calls) == 1
    assert resilience.attempts(response)[0].classification.category is Category.ALREADY_DONE


def test_vendor_hosts_maps_a_host_to_its_vendor(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 409, 200)
    with session(sleep, vendor_hosts={"api.example": "playwave"}) as s:
        response = s.get("https://api.example:8443/x")
    assert response.status_code == 409
    assert len(mocked.calls) == 1


def test_vendor_hosts_leaves_other_hosts_to_the_generic_rule(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, 409, 200)
    with session(sleep, vendor_hosts={"other.example": "playwave"}) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert len(mocked.calls) == 2


def test_body_shape_picks_the_vendor(mocked: responses.RequestsMock, sleep: RecordingSleep) -> None:
    script(mocked, {"status": 409, **PLAYWAVE_409}, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 409
    assert resilience.attempts(response)[0].classification.vendor == "playwave"


def test_custom_detectors_replace_the_chain(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 418, "json": {"teapot": "brewing"}}, 200)
    with session(sleep, detectors=[TeapotDetector()]) as s:
        response = s.get(URL)
    assert response.status_code == 200
    first = resilience.attempts(response)[0].classification
    assert (first.vendor, first.category) == ("teapot", Category.TRANSIENT)


# -- on_retry ---------------------------------------------------------------------------


def test_on_retry_receives_one_event_per_retry(
    mocked: responses.RequestsMock, sleep: RecordingSleep, refused: requests.ConnectionError
) -> None:
    events: list[RetryEvent] = []
    script(mocked, {"status": 503, **EIGHTBITEDGE_503}, refused, 200)
    with session(sleep, on_retry=events.append) as s:
        s.get("https://user:pw@api.example/x?api_key=k3y&page=2")
    assert [(e.attempt, e.delay, e.method, e.reason) for e in events] == [
        (1, 0.5, "GET", "retry"),
        (2, 1.0, "GET", "retry"),
    ]
    assert {e.url for e in events} == {"https://api.example/x?api_key=[redacted]&page=2"}
    first, second = events
    assert first.classification is not None
    assert (first.classification.status, first.classification.code) == (503, "server_error")
    assert first.error is None
    assert second.classification is None
    assert second.error == "ConnectionError"
    assert (first.region, first.next_region) == (None, None)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_coroutine_on_retry_is_not_silently_dropped(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    """The adapter cannot await it: refuse it (TypeError) or run it, never skip it."""
    seen: list[RetryEvent] = []

    async def on_retry(event: RetryEvent) -> None:
        seen.append(event)

    script(mocked, 503, 200)
    try:
        with session(sleep, on_retry=on_retry) as s:
            s.get(URL)
    except TypeError:
        return
    assert len(seen) == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_async_sleep_is_not_silently_skipped(
    mocked: responses.RequestsMock, async_sleep: AsyncRecordingSleep
) -> None:
    """The adapter cannot await it: refuse it (TypeError) or run it, never skip it."""
    script(mocked, 503, 200)
    try:
        with session(async_sleep) as s:  # type: ignore[arg-type]
            s.get(URL)
    except TypeError:
        return
    assert async_sleep.calls == [0.5]


# -- network errors ---------------------------------------------------------------------


def test_connect_error_is_retried_for_get(
    mocked: responses.RequestsMock, sleep: RecordingSleep, refused: requests.ConnectionError
) -> None:
    script(mocked, refused, 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert len(mocked.calls) == 2
    assert sleep.calls == [0.5]


def test_read_timeout_is_retried_for_get(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, requests.ReadTimeout("read timed out"), 200)
    with session(sleep) as s:
        response = s.get(URL)
    assert response.status_code == 200
    assert len(mocked.calls) == 2


def test_read_timeout_is_not_retried_for_post_without_key(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, requests.ReadTimeout("read timed out"), 200, method="POST")
    with session(sleep) as s, pytest.raises(requests.ReadTimeout):
        s.post(URL, json={"a": 1})
    assert len(mocked.calls) == 1
    assert sleep.calls == []


def test_refused_connection_is_retried_then_raises_requests_own_exception(
    sleep: RecordingSleep, refused_url: str
) -> None:
    events: list[RetryEvent] = []
    with (
        session(sleep, on_retry=events.append) as s,
        pytest.raises(requests.ConnectionError) as caught,
    ):
        s.get(refused_url, timeout=5)
    assert type(caught.value) is requests.ConnectionError
    assert sleep.calls == [0.5, 1.0, 2.0]
    assert [e.error for e in events] == ["ConnectionError"] * 3


def test_refused_connection_is_retried_for_post(sleep: RecordingSleep, refused_url: str) -> None:
    with session(sleep) as s, pytest.raises(requests.ConnectionError):
        s.post(refused_url, json={"a": 1}, timeout=5)
    assert sleep.calls == [0.5, 1.0, 2.0]


# -- bodies ------------------------------------------------------------------------------


def _generator_body() -> Iterator[bytes]:
    yield b"chunk-1;"
    yield b"chunk-2"


@pytest.mark.parametrize(
    "body",
    [_generator_body, lambda: io.BytesIO(b"chunk-1;chunk-2")],
    ids=["generator", "file"],
)
@pytest.mark.parametrize("reply", ["503", "connect-error"])
def test_non_replayable_body_is_sent_once(
    mocked: responses.RequestsMock,
    sleep: RecordingSleep,
    refused: requests.ConnectionError,
    body: Callable[[], Any],
    reply: str,
) -> None:
    script(mocked, 503 if reply == "503" else refused, 200, method="POST")
    with session(sleep) as s, contextlib.suppress(requests.ConnectionError):
        s.post(URL, data=body())
    assert len(mocked.calls) == 1
    assert sleep.calls == []


# -- attempts() ----------------------------------------------------------------------------


def test_attempts_reports_every_attempt(
    mocked: responses.RequestsMock, sleep: RecordingSleep, refused: requests.ConnectionError
) -> None:
    script(mocked, refused, {"status": 503, **EIGHTBITEDGE_503}, 200)
    with session(sleep) as s:
        response = s.get(URL)
    history = resilience.attempts(response)
    assert [(a.number, a.status, a.error, a.delay, a.region) for a in history] == [
        (1, None, "ConnectionError", 0.0, None),
        (2, 503, None, 0.5, None),
        (3, 200, None, 1.0, None),
    ]
    assert history[0].classification is None
    assert history[1].classification is not None
    assert history[1].classification.category is Category.TRANSIENT
    assert history[1].classification.trace_id == "req-8b-42"
    assert history[2].classification is not None
    assert history[2].classification.category is Category.OK


def test_attempts_of_a_response_from_elsewhere_is_empty() -> None:
    assert resilience.attempts(requests.Response()) == []


# -- streams ----------------------------------------------------------------------------------


def test_2xx_stream_is_left_for_the_caller(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    script(mocked, {"status": 200, "body": b"streamed body"})
    with session(sleep) as s:
        response = s.get(URL, stream=True)
        assert response.raw.tell() == 0
        assert b"".join(response.iter_content(4)) == b"streamed body"


# -- logging ---------------------------------------------------------------------------------


def test_each_retry_logs_one_warning(
    mocked: responses.RequestsMock, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    script(mocked, {"status": 503, **EIGHTBITEDGE_503}, 200)
    with session(sleep) as s:
        s.get("https://api.example/x?api_key=k3y-s3cret")
    records = [r for r in caplog.records if r.name.startswith("resilience")]
    assert [r.levelno for r in records] == [logging.WARNING]
    message = records[0].getMessage()
    for part in (
        "GET",
        "https://api.example/x?api_key=[redacted]",
        "503",
        "0.500",
        "server_error",
        "8bitedge",
        "req-8b-42",
    ):
        assert part in message
    assert "k3y-s3cret" not in message
