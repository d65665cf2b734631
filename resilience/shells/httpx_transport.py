"""httpx transports: ``ResilientTransport`` and ``AsyncResilientTransport``.

Each wraps an inner transport (``httpx.HTTPTransport()`` /
``httpx.AsyncHTTPTransport()`` unless one is given) and runs every request
through the one retry flow of :mod:`resilience.core.flow`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any

import anyio
import httpx
from typing_extensions import Unpack

from resilience.core.classification import Classification
from resilience.core.engine import ErrorKind
from resilience.core.flow import (
    ATTEMPTS_KEY,
    Core,
    History,
    drive,
    drive_async,
    refuse_coroutine_functions,
)
from resilience.core.healing import tls_failure
from resilience.core.policy import Policy, PolicyOptions
from resilience.core.response import MAX_BODY, ResponseView, bounded_decode, content_length
from resilience.core.testing_mode import real_async_sleep, real_sleep
from resilience.errors import ResilienceError, mixed_class
from resilience.regions import RequestParts

__all__ = ["AsyncResilientTransport", "ResilientTransport"]

# Errors raised before the request could reach the server.
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Errors after which the server may have processed the request.
_UNKNOWN_ERRORS = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


class _HttpxWire:
    """What the flow needs to know about httpx requests and responses."""

    def method(self, request: httpx.Request) -> str:
        return request.method

    def url(self, request: httpx.Request) -> str:
        return str(request.url)

    def host(self, request: httpx.Request) -> str | None:
        return request.url.host or None

    def header(self, request: httpx.Request, name: str) -> str | None:
        value: str | None = request.headers.get(name)
        return value

    def set_header(self, request: httpx.Request, name: str, value: str) -> None:
        request.headers[name] = value

    def replayable(self, request: httpx.Request) -> bool:
        # Bytes bodies are held in a ByteStream; generators and files are not.
        return isinstance(request.stream, httpx.ByteStream)

    def parts(self, request: httpx.Request) -> RequestParts:
        body = None
        if isinstance(request.stream, httpx.ByteStream):
            body = request.read() or None
        return RequestParts(
            method=request.method,
            url=str(request.url),
            headers=tuple(request.headers.multi_items()),
            body=body,
        )

    def rebuild(self, request: httpx.Request, parts: RequestParts) -> httpx.Request:
        return httpx.Request(
            parts.method,
            parts.url,
            headers=list(parts.headers),
            content=parts.body,
            extensions=request.extensions,
        )

    def status(self, response: httpx.Response) -> int:
        return response.status_code

    def response_header(self, response: httpx.Response, name: str) -> str | None:
        value: str | None = response.headers.get(name)
        return value

    def view(
        self, response: httpx.Response, body: bytes | None, request: httpx.Request
    ) -> ResponseView:
        request_body = None
        if isinstance(request.stream, httpx.ByteStream):
            request_body = request.read()
        return ResponseView(
            status=response.status_code,
            headers=response.headers,
            body=body,
            host=request.url.host or None,
            method=request.method,
            path=request.url.path,
            request_body=request_body if request_body and len(request_body) <= MAX_BODY else None,
        )

    def not_sent(
        self,
        request: httpx.Request,
        classification: Classification,
        base: type[ResilienceError],
    ) -> BaseException:
        error = mixed_class(base, httpx.ConnectError)(classification)
        error._request = request  # type: ignore[attr-defined]
        return error

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        if not isinstance(error, httpx.TransportError):
            return None
        if isinstance(error, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
            return ErrorKind.FATAL  # the same request meets the same refusal
        if tls_failure(error):
            return ErrorKind.FATAL
        if isinstance(error, _CONNECT_ERRORS):
            return ErrorKind.CONNECT
        if isinstance(error, _UNKNOWN_ERRORS):
            return ErrorKind.UNKNOWN
        return ErrorKind.FATAL

    def response_headers(self, response: httpx.Response) -> httpx.Headers:
        return response.headers

    def attach(self, response: httpx.Response, history: History) -> None:
        response.extensions[ATTEMPTS_KEY] = history


_WIRE = _HttpxWire()


class _ChainedStream(httpx.SyncByteStream):
    """The chunks already read, then the rest of the original stream."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], original: Any) -> None:
        self._head, self._rest, self._original = head, rest, original

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        self._head = []
        yield from self._rest

    def close(self) -> None:
        self._original.close()


class _AsyncChainedStream(httpx.AsyncByteStream):
    """The chunks already read, then the rest of the original stream."""

    def __init__(self, head: list[bytes], rest: AsyncIterator[bytes], original: Any) -> None:
        self._head, self._rest, self._original = head, rest, original

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        self._head = []
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._original.aclose()


def _replacement(response: httpx.Response, stream: Any) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=response.extensions,
    )


def _whole(response: httpx.Response, head: list[bytes]) -> tuple[httpx.Response, bytes | None]:
    """The response rebuilt over the raw bytes read, and their bounded decoding."""
    raw = b"".join(head)
    body = bounded_decode(raw, response.headers.get("content-encoding"))
    return _replacement(response, httpx.ByteStream(raw)), body


_ORIGINAL_TIMEOUT = "resilience.timeout"


def _cut_timeouts(request: httpx.Request, budget: float) -> None:
    """Cut the request's connect/read/write/pool timeouts to ``budget`` seconds
    (from the timeouts it came with, kept aside for the next attempt)."""
    extensions = request.extensions
    original = extensions.get(_ORIGINAL_TIMEOUT)
    if original is None:
        timeout = extensions.get("timeout") or {}
        if len(timeout) == 4 and all(v is not None and v <= budget for v in timeout.values()):
            return  # the client's own timeouts already fit (a 5 s timeout, 30 s left)
        original = extensions[_ORIGINAL_TIMEOUT] = dict(timeout)
    extensions["timeout"] = {
        name: budget if original.get(name) is None else min(original[name], budget)
        for name in ("connect", "read", "write", "pool")
    }


def _deadline_error(what: str) -> httpx.ReadTimeout:
    # No request: the client attaches it as the error passes (request_context).
    return httpx.ReadTimeout(f"the call's time ran out while {what}")


def _complete(response: httpx.Response, size: int) -> bool:
    """Whether ``size`` bytes are the whole body (nothing more to wait for)."""
    if isinstance(response.stream, httpx.ByteStream):
        return True  # in memory: no network to wait on
    length = content_length(response.headers)
    return length is not None and size >= length


class _SyncIO:
    __slots__ = ("_transport",)

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def send(self, request: httpx.Request, budget: float | None) -> httpx.Response:
        # The wrapped transport's method is looked up on each call: test tools
        # (pytest-httpx, respx) patch it after a module-level client was built.
        if budget is not None:
            _cut_timeouts(request, budget)
        return self._transport.handle_request(request)

    def read(
        self, response: httpx.Response, until: float | None
    ) -> tuple[httpx.Response, bytes | None]:
        # Raw bytes only, at most 64 KiB of them: decoding is bounded apart, so
        # a small compressed body cannot inflate here. A failed read raises,
        # and the flow treats it as the network error it is.
        length = content_length(response.headers)
        if length is not None and length > MAX_BODY:
            return response, None
        head: list[bytes] = []
        size = 0
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        chunks = iter(stream)
        for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                return _replacement(response, _ChainedStream(head, chunks, stream)), None
            if until is not None and time.monotonic() >= until and not _complete(response, size):
                raise _deadline_error("its error body was read")
        stream.close()
        return _whole(response, head)

    def discard(self, response: httpx.Response) -> None:
        # A body already held in memory ties up no connection: leave it
        # readable, in case the call ends up returning this response after all
        # (a retry the circuit breaker or the rate limit then refuses).
        if not isinstance(response.stream, httpx.ByteStream):
            response.close()


class _AsyncIO:
    __slots__ = ("_transport",)

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    def send(self, request: httpx.Request, budget: float | None) -> Awaitable[httpx.Response]:
        # The wrapped transport's coroutine itself when there is no budget: no
        # coroutine of ours around each send (see _SyncIO.send for the lookup).
        if budget is None:
            return self._transport.handle_async_request(request)
        return self._send_within(request, budget)

    async def _send_within(self, request: httpx.Request, budget: float) -> httpx.Response:
        _cut_timeouts(request, budget)
        # The cut timeouts bound each socket operation; the cancel scope bounds
        # the whole attempt, whatever the server drips.
        with anyio.move_on_after(budget):
            return await self._transport.handle_async_request(request)
        raise _deadline_error("waiting for an answer")

    async def read(
        self, response: httpx.Response, until: float | None
    ) -> tuple[httpx.Response, bytes | None]:
        if until is None or isinstance(response.stream, httpx.ByteStream):
            return await self._read(response)  # no deadline, or nothing to wait on
        with anyio.move_on_after(until - time.monotonic()):
            return await self._read(response)
        raise _deadline_error("its error body was read")

    async def _read(self, response: httpx.Response) -> tuple[httpx.Response, bytes | None]:
        length = content_length(response.headers)  # see _SyncIO.read
        if length is not None and length > MAX_BODY:
            return response, None
        head: list[bytes] = []
        size = 0
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        chunks = stream.__aiter__()
        async for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                return _replacement(response, _AsyncChainedStream(head, chunks, stream)), None
        await stream.aclose()
        return _whole(response, head)

    async def discard(self, response: httpx.Response) -> None:
        if not isinstance(response.stream, httpx.ByteStream):  # see _SyncIO.discard
            await response.aclose()


class ResilientTransport(httpx.BaseTransport):
    """An httpx transport that retries what the vendors say to retry.

    Args:
        transport: the transport to wrap (``httpx.HTTPTransport()`` by default;
            any ``httpx.BaseTransport``, ``httpx.MockTransport`` included).
        policy: a :class:`~resilience.Policy`; keyword arguments override it.
        **options: the keywords of :class:`~resilience.Policy`, typed by
            :class:`~resilience.PolicyOptions`.

    ``sleep`` defaults to :func:`time.sleep`. ``on_retry`` and ``sleep`` must
    be plain functions (returning ``None``): a coroutine function is a type
    error, and a ``TypeError`` when the transport is built. Closing this
    transport closes the wrapped one.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        policy: Policy | None = None,
        **options: Unpack[PolicyOptions[None]],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(
                "transport must be an httpx.BaseTransport (AsyncResilientTransport is for async)"
            )
        self.policy = Policy.from_kwargs(policy, options)
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        refuse_coroutine_functions(self.policy)
        self._core = Core(self.policy)
        self._io = _SyncIO(self._transport)
        self._sleep = self.policy.sleep or real_sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying per the policy; return the final response."""
        response: httpx.Response = drive(self._core, _WIRE, request, self._io, self._sleep)
        return response

    def __enter__(self) -> ResilientTransport:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._transport.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """The asyncio counterpart of :class:`ResilientTransport`.

    Args:
        transport: the async transport to wrap (``httpx.AsyncHTTPTransport()``
            by default; ``httpx.MockTransport`` works too).
        policy: a :class:`~resilience.Policy`; keyword arguments override it.
        **options: the keywords of :class:`~resilience.Policy`, typed by
            :class:`~resilience.PolicyOptions`.

    ``sleep`` should be an async callable (a plain one would block the event
    loop while it waits); it defaults to :func:`anyio.sleep`, which runs under
    asyncio and trio alike. ``on_retry`` may be a plain or a coroutine
    function.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        policy: Policy | None = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                "transport must be an httpx.AsyncBaseTransport (ResilientTransport is for sync)"
            )
        self.policy = Policy.from_kwargs(policy, options)
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._core = Core(self.policy)
        self._io = _AsyncIO(self._transport)
        # The flow awaits what the sleep returns when it is awaitable.
        sleep: Any = self.policy.sleep or real_async_sleep
        self._sleep: Callable[[float], Awaitable[Any]] = sleep

    def handle_async_request(self, request: httpx.Request) -> Coroutine[Any, Any, httpx.Response]:
        """Send ``request``, retrying per the policy; return the final response.

        Awaited like the base method: it hands back the coroutine of the retry
        loop itself, so each call runs in one coroutine of ours, not two (every
        time the wrapped transport waits on its socket and resumes, the resume
        passes through each coroutine above it).
        """
        return drive_async(self._core, _WIRE, request, self._io, self._sleep)

    async def __aenter__(self) -> AsyncResilientTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()
