"""Credentials sent in every place never reach a log record, an error or an event.

Each call carries an ``Authorization`` header, ``api_key`` and ``token`` query
parameters and a password in the URL's userinfo, and is driven through the
failure paths: retries then giving up, a final error answer raised by the hook,
and connection errors that outlive every attempt.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import responses

import resilience
from resilience import RetryEvent

AUTHORIZATION = "Bearer au7h-v4lue-never-shown"
API_KEY = "ap1-k3y-never-shown"
TOKEN = "t0k3n-never-shown"
PASSWORD = "pa55w0rd-never-shown"
SECRETS = (
    AUTHORIZATION,
    "au7h-v4lue-never-shown",
    API_KEY,
    TOKEN,
    PASSWORD,
    "alice:",
    base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
)


def body(status: int) -> dict[str, Any]:
    """An 8bitedge error envelope for ``status``."""
    code = "server_error" if status >= 500 else "unauthorized"
    return {"error": {"code": code, "message": "vendor says no"}}


SHELLS = ["requests", "httpx", "httpx-async"]


def secret_url(base: str) -> str:
    scheme, rest = base.split("://", 1)
    return f"{scheme}://alice:{PASSWORD}@{rest}/v1/me?api_key={API_KEY}&token={TOKEN}&page=2"


@dataclass
class Seen:
    """Everything a call left behind that a user may print."""

    events: list[RetryEvent] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    error: BaseException | None = None


def _collect_error(seen: Seen, error: BaseException) -> None:
    seen.error = error
    if isinstance(error, resilience.ResilienceError):
        seen.texts += [str(error), repr(error)]


def _policy(seen: Seen, sleep: Any) -> dict[str, Any]:
    return {"sleep": sleep, "jitter": "none", "max_attempts": 3, "on_retry": seen.events.append}


def _via_requests(url: str, status: int | None) -> Seen:
    seen = Seen()
    s = requests.Session()
    s.mount("http://", resilience.ResilientAdapter(**_policy(seen, lambda _: None)))
    s.mount("https://", resilience.ResilientAdapter(**_policy(seen, lambda _: None)))
    s.hooks["response"].append(resilience.requests_response_hook())
    with s, contextlib.ExitStack() as stack:
        if status is not None:
            mock = stack.enter_context(responses.RequestsMock(assert_all_requests_are_fired=False))
            mock.add("GET", re.compile(r"https://.*"), status=status, json=body(status))
        try:
            s.get(url, headers={"Authorization": AUTHORIZATION}, timeout=5)
        except (requests.RequestException, resilience.ResilienceError) as exc:
            _collect_error(seen, exc)
    return seen


def _httpx_inner(status: int | None) -> httpx.MockTransport | None:
    if status is None:
        return None
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body(status)))


def _via_httpx(url: str, status: int | None) -> Seen:
    seen = Seen()
    transport = resilience.ResilientTransport(_httpx_inner(status), **_policy(seen, lambda _: None))
    hooks = resilience.httpx_event_hooks()
    with httpx.Client(transport=transport, event_hooks=hooks, timeout=5) as c:
        try:
            c.get(url, headers={"Authorization": AUTHORIZATION})
        except (httpx.HTTPError, resilience.ResilienceError) as exc:
            _collect_error(seen, exc)
    return seen


def _via_httpx_async(url: str, status: int | None) -> Seen:
    async def no_sleep(seconds: float) -> None:
        pass

    async def run() -> Seen:
        seen = Seen()
        transport = resilience.AsyncResilientTransport(
            _httpx_inner(status), **_policy(seen, no_sleep)
        )
        hooks = resilience.async_httpx_event_hooks()
        async with httpx.AsyncClient(transport=transport, event_hooks=hooks, timeout=5) as c:
            try:
                await c.get(url, headers={"Authorization": AUTHORIZATION})
            except (httpx.HTTPError, resilience.ResilienceError) as exc:
                _collect_error(seen, exc)
        return seen

    return asyncio.run(run())


CALLS = {"requests": _via_requests, "httpx": _via_httpx, "httpx-async": _via_httpx_async}


def _records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("resilience")]


def _assert_nothing_leaks(seen: Seen, logged: list[str]) -> None:
    shown = [*logged, *seen.texts, *(repr(e) for e in seen.events), *(e.url for e in seen.events)]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} shown in {text!r}"


@pytest.fixture
def refused_base() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("shell", SHELLS)
def test_retries_then_giving_up_show_no_credentials(
    shell: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilience")
    seen = CALLS[shell](secret_url("https://api.example"), 503)
    assert isinstance(seen.error, resilience.ServerError)
    assert len(seen.events) == 2
    logged = _records(caplog)
    assert len(logged) >= 3  # two retries and the give-up
    _assert_nothing_leaks(seen, logged)


@pytest.mark.parametrize("shell", SHELLS)
def test_hook_error_for_a_final_answer_shows_no_credentials(
    shell: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilience")
    seen = CALLS[shell](secret_url("https://api.example"), 401)
    assert isinstance(seen.error, resilience.Unauthorized)
    assert seen.events == []
    _assert_nothing_leaks(seen, _records(caplog))


@pytest.mark.parametrize(
    "shell",
    [
        "requests",
        "httpx",
        "httpx-async",
    ],
)
def test_connection_errors_show_no_credentials(
    shell: str, refused_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilience")
    seen = CALLS[shell](secret_url(refused_base), None)
    assert seen.error is not None
    assert not isinstance(seen.error, resilience.ResilienceError)
    assert [e.error for e in seen.events] == [type(seen.error).__name__] * 2
    logged = _records(caplog)
    assert len(logged) >= 3
    _assert_nothing_leaks(seen, logged)
