"""``AsyncResilientTransport`` over ``MockTransport``: the async mirror of
``test_httpx_transport.py``, for httpx and httpx2 alike (the ``lib`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
import pytest

import resilience
from resilience import Category, RetryEvent
from tests._libs import derive, lib_of, shells_of
from tests.conftest import AsyncRecordingSleep
from tests.test_httpx_transport import (
    EIGHTBITEDGE_503,
    GAMEYE_409,
    PLAYWAVE_409,
    URL,
    Reply,
    Script,
    TeapotDetector,
    json_reply,
)


class AsyncRecordingStream:
    """A response body that logs when it is read and closed."""

    def __init__(self, name: str, chunks: list[bytes], log: list[str]) -> None:
        self.name, self.chunks, self.log = name, chunks, log

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.log.append(f"{self.name} read")
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.log.append(f"{self.name} closed")


class AsyncRecordingTransport:
    """An inner transport that counts ``aclose()`` calls."""

    def __init__(self) -> None:
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return lib_of(request).Response(200)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        self.closed += 1


def async_recording_stream(lib: ModuleType, name: str, chunks: list[bytes], log: list[str]) -> Any:
    """An :class:`AsyncRecordingStream` that is a ``lib.AsyncByteStream``."""
    return derive(AsyncRecordingStream, lib, "AsyncByteStream")(name, chunks, log)


def async_recording_transport(lib: ModuleType) -> Any:
    """An :class:`AsyncRecordingTransport` that is a ``lib.AsyncBaseTransport``."""
    return derive(AsyncRecordingTransport, lib, "AsyncBaseTransport")()


def client(script: Script, sleep: AsyncRecordingSleep, **policy: Any) -> httpx.AsyncClient:
    """An async client of the script's library whose resilient transport wraps
    ``script`` (exact backoff)."""
    lib = script.lib
    policy.setdefault("jitter", "none")
    transport = shells_of(lib).AsyncResilientTransport(
        transport=lib.MockTransport(script), sleep=sleep, **policy
    )
    return lib.AsyncClient(transport=transport)  # type: ignore[no-any-return]


# -- statuses ------------------------------------------------------------------


async def test_503_503_200_takes_three_calls_and_exact_backoff(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 503, 503, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert script.count == 3
    assert async_sleep.calls == [0.5, 1.0]


async def test_max_attempts_returns_the_last_response_without_raising(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, json_reply(503, {"n": "last"}))
    async with client(script, async_sleep, max_attempts=3) as c:
        response = await c.get(URL)
    assert response.status_code == 503
    assert response.json() == {"n": "last"}
    assert script.count == 3
    assert async_sleep.calls == [0.5, 1.0]


async def test_429_waits_exactly_retry_after(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, (429, {"Retry-After": "0.05"}), 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert script.count == 2
    assert async_sleep.calls == [0.05]


async def test_retry_after_over_retry_after_max_is_returned_at_once(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, (429, {"Retry-After": "120"}), 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 429
    assert script.count == 1
    assert async_sleep.calls == []


async def test_retry_after_equal_to_retry_after_max_is_waited(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, (429, {"Retry-After": "5"}), 200)
    async with client(script, async_sleep, retry_after_max=5.0) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert async_sleep.calls == [5.0]


async def test_respect_retry_after_false_uses_backoff(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, (429, {"Retry-After": "0.05"}), 200)
    async with client(script, async_sleep, respect_retry_after=False) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert async_sleep.calls == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
async def test_final_status_is_returned_after_one_call(
    lib: ModuleType, async_sleep: AsyncRecordingSleep, status: int
) -> None:
    script = Script(lib, status, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == status
    assert script.count == 1
    assert async_sleep.calls == []


async def test_generic_409_waits_conflict_delay_when_longer_than_backoff(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 409, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert script.count == 2
    assert async_sleep.calls == [2.0]


async def test_generic_409_waits_backoff_when_longer_than_conflict_delay(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 409, 200)
    async with client(script, async_sleep, conflict_delay=0.1) as c:
        await c.get(URL)
    assert async_sleep.calls == [0.5]


async def test_gameye_409_is_not_retried(lib: ModuleType, async_sleep: AsyncRecordingSleep) -> None:
    script = Script(lib, GAMEYE_409, 200)
    async with client(script, async_sleep) as c:
        response = await c.post("https://api.gameye.example/session", json={"id": "s-1"})
    assert response.status_code == 409
    assert script.count == 1
    assert async_sleep.calls == []


# -- deadline ------------------------------------------------------------------


async def test_deadline_stops_before_a_sleep_that_would_cross_it(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 503)
    async with client(script, async_sleep, deadline=1.0) as c:
        response = await c.get(URL)
    assert response.status_code == 503
    assert script.count == 2
    assert async_sleep.calls == [0.5]


async def test_deadline_counts_the_sleeps_already_taken(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    """0.5 s slept plus a 1.0 s wait would cross a 1.2 s deadline."""
    script = Script(lib, 503)
    async with client(script, async_sleep, deadline=1.2) as c:
        await c.get(URL)
    assert async_sleep.calls == [0.5]


# -- unsafe methods --------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_unsafe_method_is_not_retried_after_500_without_key(
    lib: ModuleType, async_sleep: AsyncRecordingSleep, method: str
) -> None:
    script = Script(lib, 500, 200)
    async with client(script, async_sleep) as c:
        response = await c.request(method, URL, json={"a": 1})
    assert response.status_code == 500
    assert script.count == 1
    assert async_sleep.calls == []


async def test_post_with_idempotency_key_header_is_retried_after_500(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 500, 200)
    async with client(script, async_sleep) as c:
        response = await c.post(URL, json={"a": 1}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200
    assert script.count == 2
    assert async_sleep.calls == [0.5]


async def test_post_is_retried_after_500_with_retry_non_idempotent(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 500, 200)
    async with client(script, async_sleep, retry_non_idempotent=True) as c:
        response = await c.post(URL, json={"a": 1})
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
async def test_post_is_always_retried_after_unprocessed_answers(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
    status: int,
    headers: dict[str, str],
    waits: list[float],
) -> None:
    script = Script(lib, (status, headers), 200)
    async with client(script, async_sleep) as c:
        response = await c.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert script.count == 2
    assert async_sleep.calls == waits


async def test_post_is_retried_after_connect_error(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, lib.ConnectError, 200)
    async with client(script, async_sleep) as c:
        response = await c.post(URL, json={"a": 1})
    assert response.status_code == 200
    assert script.count == 2
    assert async_sleep.calls == [0.5]


# -- idempotency_key=True ----------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_idempotency_key_is_added_once_and_reused_on_every_attempt(
    lib: ModuleType, async_sleep: AsyncRecordingSleep, method: str
) -> None:
    script = Script(lib, 500, 500, 200)
    async with client(script, async_sleep, idempotency_key=True) as c:
        response = await c.request(method, URL, json={"a": 1})
    assert response.status_code == 200
    keys = [h.get_list("Idempotency-Key") for h in script.headers]
    assert len(keys) == 3
    assert all(len(k) == 1 for k in keys)
    assert len({k[0] for k in keys}) == 1
    assert uuid.UUID(keys[0][0]).version == 4


async def test_idempotency_key_leaves_get_alone(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, 503, 200)
    async with client(script, async_sleep, idempotency_key=True) as c:
        await c.get(URL)
    assert all("idempotency-key" not in h for h in script.headers)


async def test_idempotency_key_keeps_an_existing_key(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, 500, 200)
    async with client(script, async_sleep, idempotency_key=True) as c:
        await c.post(URL, json={"a": 1}, headers={"Idempotency-Key": "mine"})
    assert [h.get_list("Idempotency-Key") for h in script.headers] == [
        ["mine"],
        ["mine"],
    ]


# -- vendors -------------------------------------------------------------------------


async def test_pinned_vendor_decides_the_answer(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    """A Playwave 409 is ALREADY_DONE, not the generic rule's retryable 409."""
    script = Script(lib, 409, 200)
    async with client(script, async_sleep, vendor="playwave") as c:
        response = await c.get(URL)
    assert response.status_code == 409
    assert script.count == 1
    assert resilience.attempts(response)[0].classification.category is Category.ALREADY_DONE


async def test_vendor_hosts_maps_a_host_to_its_vendor(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, 409, 200)
    async with client(script, async_sleep, vendor_hosts={"api.example": "playwave"}) as c:
        response = await c.get("https://api.example:8443/x")
    assert response.status_code == 409
    assert script.count == 1


async def test_vendor_hosts_leaves_other_hosts_to_the_generic_rule(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, 409, 200)
    async with client(script, async_sleep, vendor_hosts={"other.example": "playwave"}) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert script.count == 2


async def test_body_shape_picks_the_vendor(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, PLAYWAVE_409, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 409
    assert resilience.attempts(response)[0].classification.vendor == "playwave"


async def test_custom_detectors_replace_the_chain(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, json_reply(418, {"teapot": "brewing"}), 200)
    async with client(script, async_sleep, detectors=[TeapotDetector()]) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    first = resilience.attempts(response)[0].classification
    assert (first.vendor, first.category) == ("teapot", Category.TRANSIENT)


# -- on_retry ---------------------------------------------------------------------------


async def test_on_retry_receives_one_event_per_retry(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    events: list[RetryEvent] = []
    script = Script(lib, EIGHTBITEDGE_503, lib.ConnectError, 200)
    async with client(script, async_sleep, on_retry=events.append) as c:
        await c.get("https://user:pw@api.example/x?api_key=k3y&page=2")
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


async def test_coroutine_on_retry_is_awaited_before_the_sleep(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    seen: list[tuple[int, list[float]]] = []

    async def on_retry(event: RetryEvent) -> None:
        await asyncio.sleep(0)
        seen.append((event.attempt, list(async_sleep.calls)))

    script = Script(lib, 503, 503, 200)
    async with client(script, async_sleep, on_retry=on_retry) as c:
        await c.get(URL)
    assert seen == [(1, []), (2, [0.5])]


# -- network errors ---------------------------------------------------------------------


async def test_connect_error_is_retried_for_get(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, lib.ConnectError, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert script.count == 2
    assert async_sleep.calls == [0.5]


async def test_read_timeout_is_retried_for_get(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, lib.ReadTimeout, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    assert script.count == 2


async def test_read_timeout_is_not_retried_for_post_without_key(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, lib.ReadTimeout, 200)
    async with client(script, async_sleep) as c:
        with pytest.raises(lib.ReadTimeout):
            await c.post(URL, json={"a": 1})
    assert script.count == 1
    assert async_sleep.calls == []


async def test_persistent_connect_error_raises_httpx_own_exception(
    lib: ModuleType,
    async_sleep: AsyncRecordingSleep,
) -> None:
    script = Script(lib, lib.ConnectError)
    async with client(script, async_sleep) as c:
        with pytest.raises(lib.ConnectError) as caught:
            await c.get(URL)
    assert type(caught.value) is lib.ConnectError
    assert caught.value is script.errors[-1]
    assert script.count == 4
    assert async_sleep.calls == [0.5, 1.0, 2.0]


# -- bodies ------------------------------------------------------------------------------


async def _generator_body() -> AsyncIterator[bytes]:
    yield b"chunk-1;"
    yield b"chunk-2"


@pytest.mark.parametrize("reply", [503, httpx.ConnectError], ids=["503", "connect-error"])
async def test_non_replayable_body_is_sent_once(
    lib: ModuleType, async_sleep: AsyncRecordingSleep, reply: Reply
) -> None:
    script = Script(lib, reply, 200)
    async with client(script, async_sleep) as c:
        with contextlib.suppress(lib.ConnectError):
            await c.post(URL, content=_generator_body())
    assert script.count == 1
    assert script.requests[0].content == b"chunk-1;chunk-2"
    assert async_sleep.calls == []


# -- attempts() ----------------------------------------------------------------------------


async def test_attempts_reports_every_attempt(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    script = Script(lib, lib.ConnectError, EIGHTBITEDGE_503, 200)
    async with client(script, async_sleep) as c:
        response = await c.get(URL)
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


# -- closing and streams ------------------------------------------------------------------


async def test_aclose_closes_the_inner_transport(lib: ModuleType, shells: Any) -> None:
    inner = async_recording_transport(lib)
    await shells.AsyncResilientTransport(transport=inner).aclose()
    assert inner.closed == 1


async def test_closing_the_client_closes_the_inner_transport(lib: ModuleType, shells: Any) -> None:
    inner = async_recording_transport(lib)
    async with lib.AsyncClient(transport=shells.AsyncResilientTransport(transport=inner)) as c:
        await c.get(URL)
    assert inner.closed == 1


async def test_2xx_stream_is_left_for_the_caller(
    lib: ModuleType, async_sleep: AsyncRecordingSleep
) -> None:
    log: list[str] = []
    script = Script(
        lib,
        lambda r: lib.Response(200, stream=async_recording_stream(lib, "ok", [b"a", b"b"], log)),
    )
    async with client(script, async_sleep) as c, c.stream("GET", URL) as response:
        assert log == []
        assert not response.is_stream_consumed
        assert b"".join([chunk async for chunk in response.aiter_bytes()]) == b"ab"
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
async def test_response_not_returned_is_closed_before_the_next_attempt(
    lib: ModuleType, async_sleep: AsyncRecordingSleep, headers: dict[str, str], chunks: list[bytes]
) -> None:
    log: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        log.append("send")
        if log.count("send") == 1:
            stream = async_recording_stream(lib, "503", chunks, log)
            return lib.Response(503, headers=headers, stream=stream)
        return lib.Response(200)

    async with client(Script(lib, answer), async_sleep) as c:
        response = await c.get(URL)
    assert response.status_code == 200
    before_retry = log[: log.index("send", 1)]
    assert before_retry.count("503 closed") == 1


# -- logging ---------------------------------------------------------------------------------


async def test_each_retry_logs_one_warning(
    lib: ModuleType, async_sleep: AsyncRecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    script = Script(lib, EIGHTBITEDGE_503, 200)
    async with client(script, async_sleep) as c:
        await c.get("https://api.example/x?api_key=k3y-s3cret")
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
