"""The default inner transport keeps the environment's proxies, as httpx's own client does.

The proxy is a loopback server that records what reaches it: an HTTP proxy
receives the absolute URL of the request (``GET http://host/path``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

import resilience
from resilience.shells.proxies import _bypassed
from tests._loopback import Loopback, Seen


def _answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/plain"}, b"via " + seen.path.encode()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    _bypassed.cache_clear()
    yield
    _bypassed.cache_clear()


def _sync_get(url: str) -> httpx.Response:
    with httpx.Client(transport=resilience.ResilientTransport()) as client:
        response = client.get(url)
        response.read()
        return response


def _async_get(url: str) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = resilience.AsyncResilientTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(url)
            await response.aread()
            return response

    return asyncio.run(main())


GETS: dict[str, Callable[[str], httpx.Response]] = {"httpx": _sync_get, "httpx-async": _async_get}


@pytest.fixture(params=sorted(GETS))
def get(request: pytest.FixtureRequest) -> Callable[[str], httpx.Response]:
    return GETS[request.param]


def test_requests_go_through_the_proxy_the_environment_names(
    get: Callable[[str], httpx.Response], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Loopback(_answer) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        response = get("http://vendor.example/v1/me")
    assert response.status_code == 200
    assert [s.path for s in proxy.seen] == ["http://vendor.example/v1/me"]


def test_no_proxy_hosts_are_reached_directly(
    get: Callable[[str], httpx.Response], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Loopback(_answer) as proxy, Loopback(_answer) as target:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        response = get(target.url + "/direct")
    assert response.text == "via /direct"
    assert proxy.seen == []


def test_without_proxies_in_the_environment_nothing_changes(
    get: Callable[[str], httpx.Response],
) -> None:
    with Loopback(_answer) as target:
        assert get(target.url + "/x").text == "via /x"


def test_a_transport_given_by_the_caller_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    with Loopback(_answer) as proxy, Loopback(_answer) as target:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport = resilience.ResilientTransport(httpx.HTTPTransport())
        with httpx.Client(transport=transport) as client:
            assert client.get(target.url + "/x").text == "via /x"
    assert proxy.seen == []
