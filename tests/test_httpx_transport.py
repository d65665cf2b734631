"""``ResilientTransport`` over ``MockTransport``: what is retried, when, and how; for httpx
and httpx2 alike (the ``lib`` fixture)."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

import resilience
from resilience import Category, Classification, RetryEvent
from tests._libs import derive, lib_of, shells_of
from tests.conftest import AsyncRecordingSleep, RecordingSleep

URL = "https://api.example/x"

Reply = (
    int
    | tuple[int, dict[str, str]]
    | Callable[[httpx.Request], httpx.Response]
    | type[httpx.TransportError]
)


class Script:
    """A ``MockTransport`` handler answering ``replies`` in turn (the last repeats).

    A reply is a status, ``(status, headers)``, a function of the request, or an
    ``httpx.TransportError`` subclass to raise (as the class of the same name of
    ``lib``, the library the script answers for). Safe to share between threads.
    """

    def __init__(self, lib: ModuleType, *replies: Reply) -> None:
        self.lib = lib
        self.replies = replies
        self.requests: list[httpx.Request] = []
        self.headers: list[httpx.Headers] = []  # as each attempt was sent
        self.errors: list[httpx.TransportError] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        lib = self.lib
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
            self.headers.append(lib.Headers(request.headers.multi_items()))
        reply = self.replies[min(index, len(self.replies) - 1)]
        if isinstance(reply, type):
            error = getattr(lib, reply.__name__)("scripted failure", request=request)
            self.errors.append(error)
            raise error
        if isinstance(reply, int):
            return lib.Response(reply)  # type: ignore[no-any-return]
        if isinstance(reply, tuple):
            return lib.Response(reply[0], headers=reply[1])  # type: ignore[no-any-return]
        return reply(request)

    @property
    def count(self) -> int:
        return len(self.requests)


def json_reply(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """A reply with a JSON body (a response of the request's library)."""
    return lambda request: lib_of(request).Response(status, json=body, headers=headers)


GAMEYE_409 = json_reply(
    409,
    {
        "statusCode": 409,
        "code": "CONFLICT",
        "message": "A session with the provided id already exists.",
        "identifier": "3bc545b7-4750-47e6-a918-c93debc58663",
        "path": "/session",
        "timestamp": "2026-03-05T12:00:00Z",
    },
)
PLAYWAVE_409 = json_reply(
    409, {"success": False, "error": {"code": "ALREADY_ENDED", "message": "already ended"}}
)
EIGHTBITEDGE_503 = json_reply(
    503,
    {"error": {"code": "server_error", "message": "try later"}},
    headers={"X-Request-Id": "req-8b-42"},
)


class TeapotDetector:
    """A plugin vendor whose ``{"teapot": ...}`` answers are transient."""

    name = "teapot"
    success_body = False

    def matches(self, payload: Any) -> bool:
        return isinstance(payload, dict) and "teapot" in payload

    def classify(self, view: Any, payload: Any, retry_after: float | None) -> Classification:
        return Classification.of("teapot", Category.TRANSIENT, view.status, code="brewing")


class RecordingStream:
    """A response body that logs when it is read and closed."""

    def __init__(self, name: str, chunks: list[bytes], log: list[str]) -> None:
        self.name, self.chunks, self.log = name, chunks, log

    def __iter__(self) -> Iterator[bytes]:
        self.log.append(f"{self.name} read")
        yield from self.chunks

    def close(self) -> None:
        self.log.append(f"{self.name} closed")


class RecordingTransport:
    """An inner transport that counts ``close()`` calls."""

    def __init__(self) -> None:
        self.closed = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return lib_of(request).Response(200)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.closed += 1


def recording_stream(lib: ModuleType, name: str, chunks: list[bytes], log: list[str]) -> Any:
    """A :class:`RecordingStream` that is a ``lib.SyncByteStream``."""
    return derive(RecordingStream, lib, "SyncByteStream")(name, chunks, log)


def recording_transport(lib: ModuleType) -> Any:
    """A :class:`RecordingTransport` that is a ``lib.BaseTransport``."""
    return derive(RecordingTransport, lib, "BaseTransport")()


def client(script: Script, sleep: RecordingSleep, **policy: Any) -> httpx.Client:
    """A client of the script's library whose resilient transport wraps ``script``
    (exact backoff)."""
    lib = script.lib
    policy.setdefault("jitter", "none")
    transport = shells_of(lib).ResilientTransport(
        transport=lib.MockTransport(script), sleep=sleep, **policy
    )
    return lib.Client(transport=transport)  # type: ignore[no-any-return]


# -- statuses ------------------------------------------------------------------


def test_503_503_200_takes_three_calls_and_exact_backoff(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 503, 503, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert script.count == 3
    assert sleep.calls == [0.5, 1.0]


def test_max_attempts_returns_the_last_response_without_raising(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, json_reply(503, {"n": "last"}))
    with client(script, sleep, max_attempts=3) as c:
        response = c.get(URL)
    assert response.status_code == 503
    assert response.json() == {"n": "last"}
    assert script.count == 3
    assert sleep.calls == [0.5, 1.0]


def test_429_waits_exactly_retry_after(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, (429, {"Retry-After": "0.05"}), 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert script.count == 2
    assert sleep.calls == [0.05]


def test_retry_after_over_retry_after_max_is_returned_at_once(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, (429, {"Retry-After": "120"}), 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 429
    assert script.count == 1
    assert sleep.calls == []


def test_retry_after_equal_to_retry_after_max_is_waited(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, (429, {"Retry-After": "5"}), 200)
    with client(script, sleep, retry_after_max=5.0) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert sleep.calls == [5.0]


def test_respect_retry_after_false_uses_backoff(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, (429, {"Retry-After": "0.05"}), 200)
    with client(script, sleep, respect_retry_after=False) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert sleep.calls == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
def test_final_status_is_returned_after_one_call(
    lib: ModuleType, sleep: RecordingSleep, status: int
) -> None:
    script = Script(lib, status, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == status
    assert script.count == 1
    assert sleep.calls == []


def test_generic_409_waits_conflict_delay_when_longer_than_backoff(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 409, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert script.count == 2
    assert sleep.calls == [2.0]


def test_generic_409_waits_backoff_when_longer_than_conflict_delay(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 409, 200)
    with client(script, sleep, conflict_delay=0.1) as c:
        c.get(URL)
    assert sleep.calls == [0.5]


def test_gameye_409_is_not_retried(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, GAMEYE_409, 200)
    with client(script, sleep) as c:
        response = c.post("https://api.gameye.example/session", json={"id": "s-1"})
    assert response.status_code == 409
    assert script.count == 1
    assert sleep.calls == []


# -- deadline ------------------------------------------------------------------


def test_deadline_stops_before_a_sleep_that_would_cross_it(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 503)
    with client(script, sleep, deadline=1.0) as c:
        response = c.get(URL)
    assert response.status_code == 503
    assert script.count == 2
    assert sleep.calls == [0.5]


def test_deadline_counts_the_sleeps_already_taken(lib: ModuleType, sleep: RecordingSleep) -> None:
    """0.5 s slept plus a 1.0 s wait would cross a 1.2 s deadline."""
    script = Script(lib, 503)
    with client(script, sleep, deadline=1.2) as c:
        c.get(URL)
    assert sleep.calls == [0.5]


# -- unsafe methods --------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unsafe_method_is_not_retried_after_500_without_key(
    lib: ModuleType, sleep: RecordingSleep, method: str
) -> None:
    script = Script(lib, 500, 200)
    with client(script, sleep) as c:
        response = c.request(method, URL, json={"a": 1})
    assert response.status_code == 500
    assert script.count == 1
    assert sleep.calls == []


def test_post_with_idempotency_key_header_is_retried_after_500(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 500, 200)
    with client(script, sleep) as c:
        response = c.post(URL, json={"a": 1}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200
    assert script.count == 2
    assert sleep.calls == [0.5]


def test_post_is_retried_after_500_with_retry_non_idempotent(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 500, 200)
    with client(script, sleep, retry_non_idempotent=True) as c:
        response = c.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert script.count == 2


@pytest.mark.parametrize(
    ("status", "headers", "waits"),
    [
        (503, {}, [0.5]),
        (429, {"Retry-After": "0.01"}, [0.01]),
        (420, {"Retry-After": "0.01"}, [0.01]),
    ],
)
def test_post_is_always_retried_after_unprocessed_answers(
    lib: ModuleType, sleep: RecordingSleep, status: int, headers: dict[str, str], waits: list[float]
) -> None:
    script = Script(lib, (status, headers), 200)
    with client(script, sleep) as c:
        response = c.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert script.count == 2
    assert sleep.calls == waits


def test_post_is_retried_after_connect_error(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, lib.ConnectError, 200)
    with client(script, sleep) as c:
        response = c.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert script.count == 2
    assert sleep.calls == [0.5]


# -- idempotency_key=True ----------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_idempotency_key_is_added_once_and_reused_on_every_attempt(
    lib: ModuleType, sleep: RecordingSleep, method: str
) -> None:
    script = Script(lib, 500, 500, 200)
    with client(script, sleep, idempotency_key=True) as c:
        response = c.request(method, URL, json={"a": 1})
    assert response.status_code == 200
    keys = [h.get_list("Idempotency-Key") for h in script.headers]
    assert len(keys) == 3
    assert all(len(k) == 1 for k in keys)
    assert len({k[0] for k in keys}) == 1
    assert uuid.UUID(keys[0][0]).version == 4


def test_idempotency_key_leaves_get_alone(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, 503, 200)
    with client(script, sleep, idempotency_key=True) as c:
        c.get(URL)
    assert all("idempotency-key" not in h for h in script.headers)


def test_idempotency_key_keeps_an_existing_key(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, 500, 200)
    with client(script, sleep, idempotency_key=True) as c:
        c.post(URL, json={"a": 1}, headers={"Idempotency-Key": "mine"})
    assert [h.get_list("Idempotency-Key") for h in script.headers] == [
        ["mine"],
        ["mine"],
    ]


# -- vendors -------------------------------------------------------------------------


def test_pinned_vendor_decides_the_answer(lib: ModuleType, sleep: RecordingSleep) -> None:
    """A Playwave 409 is ALREADY_DONE, not the generic rule's retryable 409."""
    script = Script(lib, 409, 200)
    with client(script, sleep, vendor="playwave") as c:
        response = c.get(URL)
    assert response.status_code == 409
    assert script.count == 1
    assert resilience.attempts(response)[0].classification.category is Category.ALREADY_DONE


def test_vendor_hosts_maps_a_host_to_its_vendor(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, 409, 200)
    with client(script, sleep, vendor_hosts={"api.example": "playwave"}) as c:
        response = c.get("https://api.example:8443/x")
    assert response.status_code == 409
    assert script.count == 1


def test_vendor_hosts_leaves_other_hosts_to_the_generic_rule(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, 409, 200)
    with client(script, sleep, vendor_hosts={"other.example": "playwave"}) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert script.count == 2


def test_body_shape_picks_the_vendor(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, PLAYWAVE_409, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 409
    assert resilience.attempts(response)[0].classification.vendor == "playwave"


def test_custom_detectors_replace_the_chain(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, json_reply(418, {"teapot": "brewing"}), 200)
    with client(script, sleep, detectors=[TeapotDetector()]) as c:
        response = c.get(URL)
    assert response.status_code == 200
    first = resilience.attempts(response)[0].classification
    assert (first.vendor, first.category) == ("teapot", Category.TRANSIENT)


# -- on_retry ---------------------------------------------------------------------------


def test_on_retry_receives_one_event_per_retry(lib: ModuleType, sleep: RecordingSleep) -> None:
    events: list[RetryEvent] = []
    script = Script(lib, EIGHTBITEDGE_503, lib.ConnectError, 200)
    with client(script, sleep, on_retry=events.append) as c:
        c.get("https://user:pw@api.example/x?api_key=k3y&page=2")
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
    assert second.error == "ConnectError"
    assert (first.region, first.next_region) == (None, None)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_coroutine_on_retry_is_not_silently_dropped(lib: ModuleType, sleep: RecordingSleep) -> None:
    """A sync transport cannot await it: refuse it (TypeError) or run it, never skip it."""
    seen: list[RetryEvent] = []

    async def on_retry(event: RetryEvent) -> None:
        seen.append(event)

    try:
        with client(Script(lib, 503, 200), sleep, on_retry=on_retry) as c:
            c.get(URL)
    except TypeError:
        return
    assert len(seen) == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_async_sleep_is_not_silently_skipped(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    """A sync transport cannot await it: refuse it (TypeError) or run it, never skip it."""
    try:
        with client(Script(lib, 503, 200), async_sleep) as c:  # type: ignore[arg-type]
            c.get(URL)
    except TypeError:
        return
    assert async_sleep.calls == [0.5]


# -- network errors ---------------------------------------------------------------------


def test_connect_error_is_retried_for_get(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, lib.ConnectError, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert script.count == 2
    assert sleep.calls == [0.5]


def test_read_timeout_is_retried_for_get(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, lib.ReadTimeout, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    assert response.status_code == 200
    assert script.count == 2


def test_read_timeout_is_not_retried_for_post_without_key(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, lib.ReadTimeout, 200)
    with client(script, sleep) as c, pytest.raises(lib.ReadTimeout):
        c.post(URL, json={"a": 1})
    assert script.count == 1
    assert sleep.calls == []


def test_persistent_connect_error_raises_httpx_own_exception(
    lib: ModuleType, sleep: RecordingSleep
) -> None:
    script = Script(lib, lib.ConnectError)
    with client(script, sleep) as c, pytest.raises(lib.ConnectError) as caught:
        c.get(URL)
    assert type(caught.value) is lib.ConnectError
    assert caught.value is script.errors[-1]
    assert script.count == 4
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
@pytest.mark.parametrize("reply", [503, httpx.ConnectError], ids=["503", "connect-error"])
def test_non_replayable_body_is_sent_once(
    lib: ModuleType, sleep: RecordingSleep, body: Callable[[], Any], reply: Reply
) -> None:
    script = Script(lib, reply, 200)
    with client(script, sleep) as c, contextlib.suppress(lib.ConnectError):
        c.post(URL, content=body())
    assert script.count == 1
    assert script.requests[0].content == b"chunk-1;chunk-2"
    assert sleep.calls == []


# -- attempts() ----------------------------------------------------------------------------


def test_attempts_reports_every_attempt(lib: ModuleType, sleep: RecordingSleep) -> None:
    script = Script(lib, lib.ConnectError, EIGHTBITEDGE_503, 200)
    with client(script, sleep) as c:
        response = c.get(URL)
    history = resilience.attempts(response)
    assert [(a.number, a.status, a.error, a.delay, a.region) for a in history] == [
        (1, None, "ConnectError", 0.0, None),
        (2, 503, None, 0.5, None),
        (3, 200, None, 1.0, None),
    ]
    assert history[0].classification is None
    assert history[1].classification is not None
    assert history[1].classification.category is Category.TRANSIENT
    assert history[1].classification.trace_id == "req-8b-42"
    assert history[2].classification is not None
    assert history[2].classification.category is Category.OK


def test_attempts_of_a_response_from_elsewhere_is_empty(lib: ModuleType) -> None:
    assert resilience.attempts(lib.Response(200)) == []


# -- closing and streams ------------------------------------------------------------------


def test_close_closes_the_inner_transport(lib: ModuleType, shells: Any) -> None:
    inner = recording_transport(lib)
    shells.ResilientTransport(transport=inner).close()
    assert inner.closed == 1


def test_closing_the_client_closes_the_inner_transport(lib: ModuleType, shells: Any) -> None:
    inner = recording_transport(lib)
    with lib.Client(transport=shells.ResilientTransport(transport=inner)) as c:
        c.get(URL)
    assert inner.closed == 1


def test_2xx_stream_is_left_for_the_caller(lib: ModuleType, sleep: RecordingSleep) -> None:
    log: list[str] = []
    script = Script(
        lib, lambda r: lib.Response(200, stream=recording_stream(lib, "ok", [b"a", b"b"], log))
    )
    with client(script, sleep) as c, c.stream("GET", URL) as response:
        assert log == []
        assert not response.is_stream_consumed
        assert b"".join(response.iter_bytes()) == b"ab"
    assert log[0] == "ok read"


@pytest.mark.parametrize(
    ("headers", "chunks"),
    [
        ({"Content-Length": "5"}, [b"small"]),
        ({}, [b"no ", b"length"]),
        ({"Content-Length": str(100_000)}, [b"x" * 50_000, b"y" * 50_000]),
    ],
    ids=["known-small", "unknown-length", "known-large"],
)
def test_response_not_returned_is_closed_before_the_next_attempt(
    lib: ModuleType, sleep: RecordingSleep, headers: dict[str, str], chunks: list[bytes]
) -> None:
    log: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        log.append("send")
        if log.count("send") == 1:
            return lib.Response(
                503, headers=headers, stream=recording_stream(lib, "503", chunks, log)
            )
        return lib.Response(200)

    with client(Script(lib, answer), sleep) as c:
        response = c.get(URL)
    assert response.status_code == 200
    before_retry = log[: log.index("send", 1)]
    assert before_retry.count("503 closed") == 1


# -- logging ---------------------------------------------------------------------------------


def test_each_retry_logs_one_warning(
    lib: ModuleType, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    script = Script(lib, EIGHTBITEDGE_503, 200)
    with client(script, sleep) as c:
        c.get("https://api.example/x?api_key=k3y-s3cret")
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
