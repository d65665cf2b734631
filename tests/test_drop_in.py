"""Drop-in details: any async runtime, context managers, patched transports, error history."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import httpx
import pytest
import trio

import resilience
from tests._clients import SHELLS, Outcome

RUNNERS: dict[str, Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]] = {
    "asyncio": lambda main: asyncio.run(main()),
    "trio": trio.run,
}


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]:
    return RUNNERS[request.param]


def _flaky() -> httpx.MockTransport:
    answers = iter([503, 200])
    return httpx.MockTransport(lambda request: httpx.Response(next(answers)))


def test_the_async_transport_retries_with_its_default_sleep_under_any_runtime(
    run: Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any],
) -> None:
    async def main() -> int:
        transport = resilience.AsyncResilientTransport(_flaky(), backoff_initial=0.001)
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get("https://api.example/x")).status_code

    assert run(main) == 200


def test_the_async_deadline_works_under_any_runtime(
    run: Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any],
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        import anyio

        await anyio.sleep(5)
        return httpx.Response(200)

    async def main() -> BaseException | None:
        transport = resilience.AsyncResilientTransport(httpx.MockTransport(slow), deadline=0.05)
        async with httpx.AsyncClient(transport=transport) as client:
            try:
                await client.get("https://api.example/x")
            except httpx.TimeoutException as exc:
                return exc
        return None

    error = run(main)
    assert isinstance(error, httpx.ReadTimeout)
    assert len(resilience.attempts(error)) == 1


class Recording(httpx.MockTransport):
    """A mock transport that records being entered, exited and closed."""

    def __init__(self) -> None:
        super().__init__(lambda request: httpx.Response(200))
        self.events: list[str] = []

    def __enter__(self) -> Recording:
        self.events.append("enter")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.events.append("exit")

    async def __aenter__(self) -> Recording:
        self.events.append("aenter")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.events.append("aexit")


def test_the_transport_as_a_context_manager_enters_and_exits_the_one_it_wraps() -> None:
    inner = Recording()
    with httpx.Client(transport=resilience.ResilientTransport(inner)) as client:
        client.get("https://api.example/x")
    assert inner.events == ["enter", "exit"]


def test_the_async_transport_as_a_context_manager_enters_and_exits_the_one_it_wraps() -> None:
    inner = Recording()

    async def main() -> None:
        transport = resilience.AsyncResilientTransport(inner)
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("https://api.example/x")

    asyncio.run(main())
    assert inner.events == ["aenter", "aexit"]


def test_a_transport_patched_after_the_client_was_built_is_the_one_used() -> None:
    """As pytest-httpx and respx do to a module-level client."""
    inner = httpx.MockTransport(lambda request: httpx.Response(500))
    client = httpx.Client(transport=resilience.ResilientTransport(inner, max_attempts=1))
    inner.handle_request = lambda request: httpx.Response(204)  # type: ignore[method-assign]
    assert client.get("https://api.example/x").status_code == 204


def test_an_async_transport_patched_after_the_client_was_built_is_the_one_used() -> None:
    inner = httpx.MockTransport(lambda request: httpx.Response(500))

    async def patched(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    async def main() -> int:
        transport = resilience.AsyncResilientTransport(inner, max_attempts=1)
        async with httpx.AsyncClient(transport=transport) as client:
            inner.handle_async_request = patched  # type: ignore[method-assign]
            return (await client.get("https://api.example/x")).status_code

    assert asyncio.run(main()) == 204


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/x"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_attempts_of_the_network_error_a_call_raises(shell: str) -> None:
    out: Outcome = SHELLS[shell]("GET", _closed_port(), {"sleep": lambda s: None})
    assert out.error is not None
    assert resilience.attempts(out.error) == out.attempts
    assert [a.number for a in out.attempts] == [1, 2, 3, 4]
    assert all(a.error is not None for a in out.attempts)
