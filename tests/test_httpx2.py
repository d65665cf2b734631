"""httpx2, httpx's successor: its clients take ``resilience.httpx2``'s transports,
and the rest of the API (``attempts``, ``classify``, the hooks' errors, the
errors of calls not sent) speaks httpx2 as it speaks httpx.

The behaviours the two libraries share are tested over both in
``test_httpx_transport.py``, ``test_async_transport.py`` and ``test_hooks.py``
(the ``lib`` fixture); here is what needs a real socket or httpx2 by name.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from types import ModuleType
from typing import Any

import httpx
import pytest

import resilience
from resilience import Category, CircuitBreaker, CircuitOpen, RateLimit, RateLimited
from resilience.core.records import ErrorKind
from resilience.core.response import view_of
from resilience.shells.httpx_transport import wire_for
from tests._libs import load
from tests._loopback import Loopback, Seen, sequence

httpx2 = load("httpx2")
import resilience.httpx2  # noqa: E402  (needs httpx2, loaded above or skipped)

NO_SLEEP: dict[str, Any] = {"sleep": lambda seconds: None}


async def no_sleep(seconds: float) -> None:
    pass


# -- clients over a real socket ------------------------------------------------------


def test_an_httpx2_client_takes_the_transport_and_retries_a_503() -> None:
    with (
        Loopback(sequence(503, 200)) as server,
        httpx2.Client(transport=resilience.httpx2.ResilientTransport(**NO_SLEEP)) as client,
    ):
        response = client.get(f"{server.url}/x")
    assert isinstance(response, httpx2.Response)
    assert response.status_code == 200
    assert len(server.seen) == 2
    assert [(a.number, a.status) for a in resilience.attempts(response)] == [(1, 503), (2, 200)]


async def test_an_httpx2_async_client_takes_the_transport_and_retries_a_503() -> None:
    transport = resilience.httpx2.AsyncResilientTransport(sleep=no_sleep)
    with Loopback(sequence(503, 200)) as server:
        async with httpx2.AsyncClient(transport=transport) as client:
            response = await client.get(f"{server.url}/x")
    assert response.status_code == 200
    assert [a.status for a in resilience.attempts(response)] == [503, 200]


def test_an_httpx2_network_error_that_survives_is_httpx2_own() -> None:
    """Nothing listens on the port: four connect errors, the last one raised."""
    with Loopback(sequence(200)) as server:
        url = f"{server.url}/x"
    transport = resilience.httpx2.ResilientTransport(**NO_SLEEP)
    with httpx2.Client(transport=transport) as client, pytest.raises(httpx2.ConnectError) as caught:
        client.get(url)
    assert [a.error for a in resilience.attempts(caught.value)] == ["ConnectError"] * 4


def test_the_hooks_raise_an_httpx2_status_error_with_its_request_and_response() -> None:
    def answer(seen: Seen) -> Any:
        return 404, {"Content-Type": "application/json"}, b'{"error": {"code": "nope"}}'

    with (
        Loopback(answer) as server,
        httpx2.Client(
            transport=resilience.httpx2.ResilientTransport(**NO_SLEEP),
            event_hooks=resilience.httpx2.httpx_event_hooks(),
        ) as client,
        pytest.raises(httpx2.HTTPStatusError) as caught,
    ):
        client.get(f"{server.url}/x")
    error = caught.value
    assert isinstance(error, resilience.NotFound)
    assert not isinstance(error, httpx.HTTPStatusError)
    assert isinstance(error.request, httpx2.Request)
    assert isinstance(error.response, httpx2.Response)
    assert resilience.attempts(error)[0].status == 404


# -- the library is checked, not assumed ------------------------------------------------


def test_the_httpx_transport_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"httpx2\.BaseTransport"):
        resilience.httpx2.ResilientTransport(httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(TypeError, match=r"httpx2\.AsyncBaseTransport"):
        resilience.httpx2.AsyncResilientTransport(httpx.AsyncHTTPTransport())


def test_the_transports_are_the_library_own() -> None:
    assert issubclass(resilience.httpx2.ResilientTransport, httpx2.BaseTransport)
    assert issubclass(resilience.httpx2.AsyncResilientTransport, httpx2.AsyncBaseTransport)
    assert not issubclass(resilience.httpx2.ResilientTransport, httpx.BaseTransport)
    assert not issubclass(resilience.ResilientTransport, httpx2.BaseTransport)


def test_without_httpx2_the_import_says_how_to_get_it() -> None:
    code = (
        "import sys; sys.modules['httpx2'] = None\n"
        "try:\n    import resilience.httpx2\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert 'pip install "resilience-transports[httpx2]"' in done.stdout


# -- classify(), attempts() and the response view ------------------------------------------


def test_classify_takes_an_httpx2_response() -> None:
    request = httpx2.Request("POST", "https://api.gameye.example/session", json={"id": "s-1"})
    body = {"statusCode": 420, "code": "NO_CAPACITY", "message": "full", "identifier": "t-1"}
    response = httpx2.Response(420, json=body, request=request)
    c = resilience.classify(response)
    assert (c.vendor, c.category, c.code, c.trace_id) == (
        "gameye",
        Category.CAPACITY,
        "NO_CAPACITY",
        "t-1",
    )


def test_the_view_of_an_httpx2_response_holds_the_body_in_memory_only() -> None:
    request = httpx2.Request("PUT", "https://api.example/a/b", content=b"sent")
    read = view_of(httpx2.Response(503, content=b"{}", request=request))
    assert (read.body, read.host, read.method, read.path) == (b"{}", "api.example", "PUT", "/a/b")
    assert read.request_body == b"sent"
    streaming = httpx2.Response(503, stream=httpx2.ByteStream(b"{}"), request=request)
    assert view_of(streaming).body is None  # not read: never read here


def test_attempts_reads_the_history_an_httpx2_response_carries() -> None:
    answers = iter([httpx2.Response(503), httpx2.Response(200)])
    transport = resilience.httpx2.ResilientTransport(
        httpx2.MockTransport(lambda request: next(answers)), **NO_SLEEP
    )
    with httpx2.Client(transport=transport) as client:
        response = client.get("https://api.example/x")
    assert "resilience.attempts" in response.extensions
    assert [a.status for a in resilience.attempts(response)] == [503, 200]
    assert resilience.attempts(httpx2.Response(200)) == []


# -- errors on the wire, for both libraries --------------------------------------------------


KINDS = {
    ErrorKind.CONNECT: "ConnectError ConnectTimeout PoolTimeout ProxyError",
    ErrorKind.UNKNOWN: "ReadTimeout WriteTimeout ReadError WriteError RemoteProtocolError",
    ErrorKind.FATAL: "UnsupportedProtocol LocalProtocolError CloseError",
}


@pytest.mark.parametrize(
    ("name", "kind"), [(name, kind) for kind, names in KINDS.items() for name in names.split()]
)
def test_each_library_error_has_its_kind(lib: ModuleType, name: str, kind: ErrorKind) -> None:
    assert wire_for(lib).error_kind(getattr(lib, name)("scripted")) is kind


def test_a_tls_failure_is_fatal_and_an_error_of_another_library_is_not_ours(
    lib: ModuleType,
) -> None:
    refused = lib.ConnectError("verify failed")
    refused.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wire = wire_for(lib)
    assert wire.error_kind(refused) is ErrorKind.FATAL
    other = httpx2 if lib is httpx else httpx
    assert wire.error_kind(other.ConnectError("elsewhere")) is None


def test_a_call_the_open_circuit_refuses_is_the_library_connect_error(
    lib: ModuleType, shells: Any
) -> None:
    transport = shells.ResilientTransport(
        lib.MockTransport(lambda request: lib.Response(503)),
        circuit_breaker=CircuitBreaker(min_calls=4, open_for=60.0),
        retry_budget=None,
        max_attempts=1,
    )
    with lib.Client(transport=transport) as client:
        for _ in range(4):
            client.get("https://api.example/x")
        with pytest.raises(lib.ConnectError) as caught:
            client.get("https://api.example/x")
    assert isinstance(caught.value, CircuitOpen)
    assert isinstance(caught.value.request, lib.Request)


def test_a_call_the_local_rate_limit_refuses_is_the_library_connect_error(
    lib: ModuleType, shells: Any
) -> None:
    transport = shells.ResilientTransport(
        lib.MockTransport(lambda request: lib.Response(200)),
        rate_limit=RateLimit(per_minute=1),
        retry_after_max=5,
        **NO_SLEEP,
    )
    with lib.Client(transport=transport) as client:
        client.get("https://api.example/x")
        with pytest.raises(lib.ConnectError) as caught:
            client.get("https://api.example/x")
    assert isinstance(caught.value, RateLimited)
    assert caught.value.code == "local_rate_limit"


# -- the OpenAI SDK (built on httpx2) -------------------------------------------------------

MODELS = (200, {"Content-Type": "application/json"}, b'{"object": "list", "data": []}')


def _openai(server: Loopback, **policy: Any) -> Any:
    openai = pytest.importorskip("openai")
    transport = resilience.httpx2.ResilientTransport(**NO_SLEEP, **policy)
    return openai.OpenAI(
        api_key="sk-test",
        base_url=f"{server.url}/v1",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,  # the transport retries; the SDK's own retries would multiply them
    )


def test_the_openai_sdk_retries_through_the_transport() -> None:
    answers = iter([503])

    def answer(seen: Seen) -> Any:
        return next(answers, MODELS)

    with Loopback(answer) as server, _openai(server) as client:
        raw = client.models.with_raw_response.list()
    assert raw.http_response.status_code == 200
    assert [a.status for a in resilience.attempts(raw.http_response)] == [503, 200]
    assert [s.path for s in server.seen] == ["/v1/models", "/v1/models"]


def test_with_max_retries_0_the_openai_sdk_sends_max_attempts_requests() -> None:
    """Not the SDK's 3 tries times ours: ``max_attempts`` requests in all."""
    openai = pytest.importorskip("openai")
    with (
        Loopback(sequence(503)) as server,
        _openai(server, max_attempts=3) as client,
        pytest.raises(openai.InternalServerError),
    ):
        client.models.list()
    assert len(server.seen) == 3
