"""Errors that cannot heal are not retried: certificates, protocols, URLs.

A real TLS server on 127.0.0.1 with trustme certificates; each test counts the
connections (so the TLS handshakes) one call costs.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest
import requests
import trustme

import resilience
from tests._hostile import Hostile, read_request
from tests._libs import load, shells_of

CA = trustme.CA()
SERVER_CERT = CA.issue_cert("127.0.0.1")
CLIENT_CERT = CA.issue_cert("client@example")


def tls_server(*, require_client_cert: bool = False) -> Hostile:
    """A loopback server answering 200 over TLS; optionally requiring a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    SERVER_CERT.configure_cert(context)
    if require_client_cert:
        CA.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED

    def answer(raw: socket.socket, stop: threading.Event) -> None:
        raw.settimeout(2)
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                read_request(conn)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except ssl.SSLError:
            pass  # the handshake the test expects to fail

    return Hostile(answer, scheme="https")


def _requests_get(url: str, *, trust: bool, cert: bool) -> BaseException | int:
    with requests.Session() as session:
        session.mount("https://", resilience.ResilientAdapter(sleep=lambda s: None))
        kwargs: dict[str, Any] = {"timeout": 5}
        if trust:
            kwargs["verify"] = _ca_file()
        if cert:
            kwargs["cert"] = _client_cert_file()
        try:
            return session.get(url, **kwargs).status_code
        except requests.RequestException as exc:
            return exc


def _context(*, trust: bool, cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if trust:
        CA.configure_trust(context)
    if cert:
        CLIENT_CERT.configure_cert(context)
    return context


def _httpx_get(url: str, *, trust: bool, cert: bool, name: str = "httpx") -> BaseException | int:
    lib = load(name)
    inner = lib.HTTPTransport(verify=_context(trust=trust, cert=cert))
    transport = shells_of(lib).ResilientTransport(inner, sleep=lambda s: None)
    with lib.Client(transport=transport) as client:
        try:
            return client.get(url).status_code  # type: ignore[no-any-return]
        except lib.HTTPError as exc:
            return exc


def _httpx_async_get(
    url: str, *, trust: bool, cert: bool, name: str = "httpx"
) -> BaseException | int:
    lib = load(name)

    async def main() -> BaseException | int:
        inner = lib.AsyncHTTPTransport(verify=_context(trust=trust, cert=cert))

        async def no_sleep(seconds: float) -> None:
            pass

        transport = shells_of(lib).AsyncResilientTransport(inner, sleep=no_sleep)
        async with lib.AsyncClient(transport=transport) as client:
            try:
                return (await client.get(url)).status_code  # type: ignore[no-any-return]
            except (lib.HTTPError, ssl.SSLError) as exc:
                # Under asyncio a TLS alert may surface unwrapped (httpcore leaves
                # it so): not a network error of httpx's, so never retried either.
                return exc

    return asyncio.run(main())


_FILES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _pem_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("pem")
    ca = folder / "ca.pem"
    CA.cert_pem.write_to_path(str(ca))
    client = folder / "client.pem"
    CLIENT_CERT.private_key_and_cert_chain_pem.write_to_path(str(client))
    _FILES.update(ca=str(ca), client=str(client))
    return


def _ca_file() -> str:
    return _FILES["ca"]


def _client_cert_file() -> str:
    return _FILES["client"]


GETS: dict[str, Callable[..., BaseException | int]] = {
    "requests": _requests_get,
    "httpx": _httpx_get,
    "httpx-async": _httpx_async_get,
    "httpx2": functools.partial(_httpx_get, name="httpx2"),
    "httpx2-async": functools.partial(_httpx_async_get, name="httpx2"),
}


@pytest.fixture(params=sorted(GETS))
def get(request: pytest.FixtureRequest) -> Callable[..., BaseException | int]:
    return GETS[request.param]


def test_a_trusted_certificate_gets_its_answer(get: Callable[..., Any]) -> None:
    with tls_server() as server:
        assert get(server.url, trust=True, cert=False) == 200


def test_an_untrusted_certificate_costs_one_handshake(get: Callable[..., Any]) -> None:
    with tls_server() as server:
        outcome = get(server.url, trust=False, cert=False)
        connections = server.connections
    assert isinstance(outcome, BaseException)
    assert connections == 1
    assert len(resilience.attempts(outcome)) == 1


def test_a_missing_client_certificate_costs_one_handshake(get: Callable[..., Any]) -> None:
    with tls_server(require_client_cert=True) as server:
        outcome = get(server.url, trust=True, cert=False)
        connections = server.connections
    assert isinstance(outcome, BaseException)
    assert connections == 1


def test_a_client_certificate_gets_its_answer(get: Callable[..., Any]) -> None:
    with tls_server(require_client_cert=True) as server:
        assert get(server.url, trust=True, cert=True) == 200


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "gopher://127.0.0.1/x"])
def test_an_unsupported_protocol_is_not_retried(lib: ModuleType, shells: Any, url: str) -> None:
    transport = shells.ResilientTransport(sleep=lambda s: None)
    with (
        lib.Client(transport=transport) as client,
        pytest.raises(lib.UnsupportedProtocol) as caught,
    ):
        client.get(url)
    assert len(resilience.attempts(caught.value)) == 1


def test_a_dropped_tls_handshake_may_heal() -> None:
    """An EOF in the middle of a handshake is a dropped connection, not a certificate."""
    from resilience.core.healing import tls_failure

    dropped = httpx.ConnectError("EOF")
    dropped.__cause__ = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    refused = httpx.ConnectError("verify failed")
    refused.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert not tls_failure(dropped)
    assert tls_failure(refused)
