"""The event hooks raise one typed error per category, for httpx and httpx2 (sync
and async, the ``lib`` fixture) and requests alike."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
import requests
import responses

import resilience
from resilience import Category
from tests._libs import shells_of
from tests.conftest import AsyncRecordingSleep, RecordingSleep

URL = "https://api.example/x"
ANY_URL = re.compile(r"https?://.*")


def _gameye(status: int, code: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "code": code,
        "message": "gameye says no",
        "identifier": "3bc545b7-4750-47e6-a918-c93debc58663",
        "path": "/session",
        "timestamp": "2026-03-05T12:00:00Z",
    }


def _8bitedge(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"8bitedge {code}"}}


def _playwave(code: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": f"playwave {code}"}}


# (status, JSON body or None, hook options, expected error class)
RAISING = {
    "8bitedge-429": (429, _8bitedge("rate_limit_exceeded"), {}, resilience.RateLimited),
    "generic-503": (503, None, {}, resilience.ServerError),
    "gameye-409": (409, _gameye(409, "CONFLICT"), {}, resilience.Conflict),
    "generic-409": (409, None, {}, resilience.Conflict),
    "gameye-420": (420, _gameye(420, "NO_CAPACITY"), {}, resilience.CapacityUnavailable),
    "gameye-403": (403, _gameye(403, "QUOTA"), {}, resilience.QuotaExhausted),
    "8bitedge-402": (402, _8bitedge("quota_exceeded"), {}, resilience.QuotaExhausted),
    "generic-401": (401, None, {}, resilience.Unauthorized),
    "8bitedge-403": (403, _8bitedge("account_inactive"), {}, resilience.Forbidden),
    "generic-404": (404, None, {}, resilience.NotFound),
    "playwave-410": (410, _playwave("SESSION_ENDED"), {}, resilience.SessionLost),
    "generic-400": (400, None, {}, resilience.InvalidRequest),
    "8bitedge-422": (422, _8bitedge("validation_failed"), {}, resilience.InvalidRequest),
    "8bitedge-501": (501, _8bitedge("not_implemented"), {}, resilience.NotImplementedByServer),
    "playwave-200-reason": (
        200,
        {"success": True, "reason": "OTT_EXPIRED"},
        {"vendor": "playwave"},
        resilience.BusinessRejected,
    ),
    "generic-418": (418, None, {}, resilience.ClientError),
}

# (status, JSON body or None, hook options)
PASSING = {
    "generic-200": (200, None, {}),
    "generic-204": (204, None, {}),
    "playwave-409-already-ended": (409, _playwave("ALREADY_ENDED"), {}),
    "playwave-heartbeat-ok": (200, {"success": True, "result": "OK"}, {"vendor": "playwave"}),
}

CHARGE_EXHAUSTED = {"success": True, "result": "CHARGE_EXHAUSTED", "message": "G-coin depleted"}


def _httpx_reply(lib: ModuleType, status: int, body: Any) -> Any:
    if body is None:
        return lib.MockTransport(lambda request: lib.Response(status))
    return lib.MockTransport(lambda request: lib.Response(status, json=body))


def httpx_client(lib: ModuleType, status: int, body: Any = None, **options: Any) -> httpx.Client:
    """A client of ``lib`` (httpx or httpx2) with the event hooks for it."""
    return lib.Client(  # type: ignore[no-any-return]
        transport=_httpx_reply(lib, status, body),
        event_hooks=shells_of(lib).httpx_event_hooks(**options),
    )


def async_client(
    lib: ModuleType, status: int, body: Any = None, **options: Any
) -> httpx.AsyncClient:
    """An async client of ``lib`` (httpx or httpx2) with the event hooks for it."""
    return lib.AsyncClient(  # type: ignore[no-any-return]
        transport=_httpx_reply(lib, status, body),
        event_hooks=shells_of(lib).async_httpx_event_hooks(**options),
    )


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def requests_session(
    mock: responses.RequestsMock, status: int, body: Any = None, **options: Any
) -> requests.Session:
    if body is None:
        mock.add("GET", ANY_URL, status=status)
    else:
        mock.add("GET", ANY_URL, status=status, json=body)
    s = requests.Session()
    s.hooks["response"].append(resilience.requests_response_hook(**options))
    return s


# -- httpx ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "options", "error"), RAISING.values(), ids=RAISING)
def test_httpx_hook_raises_the_error_of_the_category(
    lib: ModuleType, status: int, body: Any, options: dict[str, Any], error: type[Exception]
) -> None:
    with httpx_client(lib, status, body, **options) as c, pytest.raises(error) as caught:
        c.get(URL)
    assert caught.value.status == status  # type: ignore[attr-defined]


def test_httpx_hook_error_is_an_httpx_status_error(lib: ModuleType) -> None:
    with httpx_client(lib, 404) as c:
        try:
            c.get(URL)
        except lib.HTTPStatusError as exc:
            caught = exc
    assert isinstance(caught, resilience.NotFound)
    assert caught.response.status_code == 404
    assert caught.request.url == URL


@pytest.mark.parametrize(("status", "body", "options"), PASSING.values(), ids=PASSING)
def test_httpx_hook_passes_ok_and_already_done(
    lib: ModuleType, status: int, body: Any, options: dict[str, Any]
) -> None:
    with httpx_client(lib, status, body, **options) as c:
        assert c.get(URL).status_code == status


@pytest.mark.parametrize("ignored", [Category.NOT_FOUND, "not_found"], ids=["enum", "str"])
def test_httpx_hook_ignore_suppresses_the_category(
    lib: ModuleType, ignored: Category | str
) -> None:
    with httpx_client(lib, 404, ignore=[ignored]) as c:
        assert c.get(URL).status_code == 404


def test_httpx_hook_ignore_leaves_other_categories(lib: ModuleType) -> None:
    with (
        httpx_client(lib, 401, ignore=[Category.NOT_FOUND]) as c,
        pytest.raises(resilience.Unauthorized),
    ):
        c.get(URL)


def test_httpx_hook_business_codes_raise_for_charge_exhausted(lib: ModuleType) -> None:
    with (
        httpx_client(lib, 200, CHARGE_EXHAUSTED, vendor="playwave") as c,
        pytest.raises(resilience.BusinessRejected) as caught,
    ):
        c.get(URL)
    assert (caught.value.code, caught.value.message) == ("CHARGE_EXHAUSTED", "G-coin depleted")


def test_httpx_hook_business_codes_follow_vendor_hosts(lib: ModuleType) -> None:
    with (
        httpx_client(lib, 200, CHARGE_EXHAUSTED, vendor_hosts={"api.example": "playwave"}) as c,
        pytest.raises(resilience.BusinessRejected),
    ):
        c.get(URL)


def test_httpx_hook_business_codes_false_leaves_2xx_alone(lib: ModuleType) -> None:
    with httpx_client(lib, 200, CHARGE_EXHAUSTED, vendor="playwave", business_codes=False) as c:
        assert c.get(URL).status_code == 200


def test_httpx_hook_reads_no_2xx_body_of_an_unknown_vendor(lib: ModuleType) -> None:
    with httpx_client(lib, 200, CHARGE_EXHAUSTED) as c:
        assert c.get(URL).status_code == 200


def test_httpx_hook_error_carries_the_call(
    lib: ModuleType, shells: Any, sleep: RecordingSleep
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return lib.Response(
            503,
            json={"error": {"code": "server_error", "message": "later", "details": {"n": 1}}},
            headers={"X-Request-Id": "req-77"},
        )

    transport = shells.ResilientTransport(
        transport=lib.MockTransport(answer), sleep=sleep, jitter="none", max_attempts=2
    )
    hooks = shells.httpx_event_hooks()
    with (
        lib.Client(transport=transport, event_hooks=hooks) as c,
        pytest.raises(resilience.ServerError) as caught,
    ):
        c.get(URL)
    error = caught.value
    assert error.classification.category is Category.TRANSIENT
    assert error.response.status_code == 503
    assert [a.number for a in error.attempts] == [1, 2]
    assert (error.status, error.vendor, error.code, error.message) == (
        503,
        "8bitedge",
        "server_error",
        "later",
    )
    assert dict(error.details) == {"n": 1}
    assert error.trace_id == "req-77"


@pytest.mark.parametrize("status", [200, 500])
def test_httpx_hook_reads_at_most_64_kib_of_a_body_of_unknown_length(
    lib: ModuleType, shells: Any, status: int
) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(16_384)
            yield b" " * 16_384

    def answer(request: httpx.Request) -> httpx.Response:
        return lib.Response(status, headers={"Content-Type": "application/json"}, content=chunks())

    hooks = shells.httpx_event_hooks(vendor="playwave", ignore=[Category.TRANSIENT])
    with (
        lib.Client(transport=lib.MockTransport(answer), event_hooks=hooks) as c,
        c.stream("GET", URL) as response,
    ):
        assert sum(sent) <= 64 * 1024 + 16_384
        assert len(response.read()) == 64 * 16_384


# -- httpx async -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "options", "error"), RAISING.values(), ids=RAISING)
async def test_async_httpx_hook_raises_the_error_of_the_category(
    lib: ModuleType, status: int, body: Any, options: dict[str, Any], error: type[Exception]
) -> None:
    async with async_client(lib, status, body, **options) as c:
        with pytest.raises(error) as caught:
            await c.get(URL)
    assert caught.value.status == status  # type: ignore[attr-defined]


async def test_async_httpx_hook_error_is_an_httpx_status_error(lib: ModuleType) -> None:
    async with async_client(lib, 404) as c:
        try:
            await c.get(URL)
        except lib.HTTPStatusError as exc:
            caught = exc
    assert isinstance(caught, resilience.NotFound)
    assert caught.response.status_code == 404
    assert caught.request.url == URL


@pytest.mark.parametrize(("status", "body", "options"), PASSING.values(), ids=PASSING)
async def test_async_httpx_hook_passes_ok_and_already_done(
    lib: ModuleType, status: int, body: Any, options: dict[str, Any]
) -> None:
    async with async_client(lib, status, body, **options) as c:
        assert (await c.get(URL)).status_code == status


@pytest.mark.parametrize("ignored", [Category.NOT_FOUND, "not_found"], ids=["enum", "str"])
async def test_async_httpx_hook_ignore_suppresses_the_category(
    lib: ModuleType, ignored: Category | str
) -> None:
    async with async_client(lib, 404, ignore=[ignored]) as c:
        assert (await c.get(URL)).status_code == 404


async def test_async_httpx_hook_ignore_leaves_other_categories(lib: ModuleType) -> None:
    async with async_client(lib, 401, ignore=[Category.NOT_FOUND]) as c:
        with pytest.raises(resilience.Unauthorized):
            await c.get(URL)


async def test_async_httpx_hook_business_codes_raise_for_charge_exhausted(lib: ModuleType) -> None:
    async with async_client(lib, 200, CHARGE_EXHAUSTED, vendor="playwave") as c:
        with pytest.raises(resilience.BusinessRejected) as caught:
            await c.get(URL)
    assert (caught.value.code, caught.value.message) == ("CHARGE_EXHAUSTED", "G-coin depleted")


async def test_async_httpx_hook_business_codes_follow_vendor_hosts(lib: ModuleType) -> None:
    async with async_client(
        lib, 200, CHARGE_EXHAUSTED, vendor_hosts={"api.example": "playwave"}
    ) as c:
        with pytest.raises(resilience.BusinessRejected):
            await c.get(URL)


async def test_async_httpx_hook_business_codes_false_leaves_2xx_alone(lib: ModuleType) -> None:
    async with async_client(
        lib, 200, CHARGE_EXHAUSTED, vendor="playwave", business_codes=False
    ) as c:
        assert (await c.get(URL)).status_code == 200


async def test_async_httpx_hook_reads_no_2xx_body_of_an_unknown_vendor(lib: ModuleType) -> None:
    async with async_client(lib, 200, CHARGE_EXHAUSTED) as c:
        assert (await c.get(URL)).status_code == 200


async def test_async_httpx_hook_error_carries_the_call(
    lib: ModuleType, shells: Any, async_sleep: AsyncRecordingSleep
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return lib.Response(
            503,
            json={"error": {"code": "server_error", "message": "later", "details": {"n": 1}}},
            headers={"X-Request-Id": "req-77"},
        )

    transport = shells.AsyncResilientTransport(
        transport=lib.MockTransport(answer), sleep=async_sleep, jitter="none", max_attempts=2
    )
    hooks = shells.async_httpx_event_hooks()
    async with lib.AsyncClient(transport=transport, event_hooks=hooks) as c:
        with pytest.raises(resilience.ServerError) as caught:
            await c.get(URL)
    error = caught.value
    assert error.classification.category is Category.TRANSIENT
    assert error.response.status_code == 503
    assert [a.number for a in error.attempts] == [1, 2]
    assert (error.status, error.vendor, error.code, error.message) == (
        503,
        "8bitedge",
        "server_error",
        "later",
    )
    assert dict(error.details) == {"n": 1}
    assert error.trace_id == "req-77"


@pytest.mark.parametrize("status", [200, 500])
async def test_async_httpx_hook_reads_at_most_64_kib_of_a_body_of_unknown_length(
    lib: ModuleType,
    shells: Any,
    status: int,
) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            sent.append(16_384)
            yield b" " * 16_384

    def answer(request: httpx.Request) -> httpx.Response:
        return lib.Response(status, headers={"Content-Type": "application/json"}, content=chunks())

    hooks = shells.async_httpx_event_hooks(vendor="playwave", ignore=[Category.TRANSIENT])
    async with (
        lib.AsyncClient(transport=lib.MockTransport(answer), event_hooks=hooks) as c,
        c.stream("GET", URL) as response,
    ):
        assert sum(sent) <= 64 * 1024 + 16_384
        assert len(await response.aread()) == 64 * 16_384


# -- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "options", "error"), RAISING.values(), ids=RAISING)
def test_requests_hook_raises_the_error_of_the_category(
    mocked: responses.RequestsMock,
    status: int,
    body: Any,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    with requests_session(mocked, status, body, **options) as s, pytest.raises(error) as caught:
        s.get(URL)
    assert caught.value.status == status  # type: ignore[attr-defined]


def test_requests_hook_error_is_a_requests_http_error(mocked: responses.RequestsMock) -> None:
    with requests_session(mocked, 404) as s:
        try:
            s.get(URL)
        except requests.HTTPError as exc:
            caught = exc
    assert isinstance(caught, resilience.NotFound)
    assert caught.response is not None
    assert caught.response.status_code == 404
    assert caught.request is not None
    assert caught.request.url == URL


@pytest.mark.parametrize(("status", "body", "options"), PASSING.values(), ids=PASSING)
def test_requests_hook_passes_ok_and_already_done(
    mocked: responses.RequestsMock, status: int, body: Any, options: dict[str, Any]
) -> None:
    with requests_session(mocked, status, body, **options) as s:
        assert s.get(URL).status_code == status


@pytest.mark.parametrize("ignored", [Category.NOT_FOUND, "not_found"], ids=["enum", "str"])
def test_requests_hook_ignore_suppresses_the_category(
    mocked: responses.RequestsMock, ignored: Category | str
) -> None:
    with requests_session(mocked, 404, ignore=[ignored]) as s:
        assert s.get(URL).status_code == 404


def test_requests_hook_ignore_leaves_other_categories(mocked: responses.RequestsMock) -> None:
    with (
        requests_session(mocked, 401, ignore=[Category.NOT_FOUND]) as s,
        pytest.raises(resilience.Unauthorized),
    ):
        s.get(URL)


def test_requests_hook_business_codes_raise_for_charge_exhausted(
    mocked: responses.RequestsMock,
) -> None:
    with (
        requests_session(mocked, 200, CHARGE_EXHAUSTED, vendor="playwave") as s,
        pytest.raises(resilience.BusinessRejected) as caught,
    ):
        s.get(URL)
    assert (caught.value.code, caught.value.message) == ("CHARGE_EXHAUSTED", "G-coin depleted")


def test_requests_hook_business_codes_follow_vendor_hosts(
    mocked: responses.RequestsMock,
) -> None:
    with (
        requests_session(
            mocked, 200, CHARGE_EXHAUSTED, vendor_hosts={"api.example": "playwave"}
        ) as s,
        pytest.raises(resilience.BusinessRejected),
    ):
        s.get(URL)


def test_requests_hook_business_codes_false_leaves_2xx_alone(
    mocked: responses.RequestsMock,
) -> None:
    with requests_session(
        mocked, 200, CHARGE_EXHAUSTED, vendor="playwave", business_codes=False
    ) as s:
        assert s.get(URL).status_code == 200


def test_requests_hook_reads_no_2xx_body_of_an_unknown_vendor(
    mocked: responses.RequestsMock,
) -> None:
    with requests_session(mocked, 200, CHARGE_EXHAUSTED) as s:
        response = s.get(URL, stream=True)
        assert response.raw.tell() == 0


def test_requests_hook_error_carries_the_call(
    mocked: responses.RequestsMock, sleep: RecordingSleep
) -> None:
    mocked.add(
        "GET",
        ANY_URL,
        status=503,
        json={"error": {"code": "server_error", "message": "later", "details": {"n": 1}}},
        headers={"X-Request-Id": "req-77"},
    )
    s = requests.Session()
    s.mount("https://", resilience.ResilientAdapter(sleep=sleep, jitter="none", max_attempts=2))
    s.hooks["response"].append(resilience.requests_response_hook())
    with s, pytest.raises(resilience.ServerError) as caught:
        s.get(URL)
    error = caught.value
    assert error.classification.category is Category.TRANSIENT
    assert error.response.status_code == 503
    assert [a.number for a in error.attempts] == [1, 2]
    assert (error.status, error.vendor, error.code, error.message) == (
        503,
        "8bitedge",
        "server_error",
        "later",
    )
    assert dict(error.details) == {"n": 1}
    assert error.trace_id == "req-77"


@pytest.mark.parametrize("status", [200, 500])
def test_requests_hook_reads_at_most_64_kib_of_a_body_of_unknown_length(
    mocked: responses.RequestsMock, status: int
) -> None:
    mocked.add(
        "GET", ANY_URL, status=status, body=b" " * (1024 * 1024), content_type="application/json"
    )
    s = requests.Session()
    s.hooks["response"].append(
        resilience.requests_response_hook(vendor="playwave", ignore=[Category.TRANSIENT])
    )
    with s:
        response = s.get(URL, stream=True)
        assert response.raw.tell() <= 64 * 1024 + 16_384
        assert len(response.content) == 1024 * 1024
