"""httpx transports: ``ResilientTransport`` and ``AsyncResilientTransport``.

Each wraps an inner transport (``httpx.HTTPTransport()`` /
``httpx.AsyncHTTPTransport()`` unless one is given) and runs every request
through the one retry flow of :mod:`resilience.core.flow`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

import httpx

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
from resilience.core.policy import Policy
from resilience.core.response import MAX_BODY, ResponseView, bounded_decode, content_length
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
        if isinstance(error, _CONNECT_ERRORS):
            return ErrorKind.CONNECT
        if isinstance(error, _UNKNOWN_ERRORS):
            return ErrorKind.UNKNOWN
        if isinstance(error, httpx.TransportError):
            return ErrorKind.FATAL
        return None

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


class _SyncIO:
    __slots__ = ("send",)

    def __init__(self, transport: httpx.BaseTransport) -> None:
        # The wrapped transport's own method: no frame of ours around each send.
        self.send: Callable[[httpx.Request], httpx.Response] = transport.handle_request

    def read(self, response: httpx.Response) -> tuple[httpx.Response, bytes | None]:
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
        stream.close()
        return _whole(response, head)

    def discard(self, response: httpx.Response) -> None:
        # A body already held in memory ties up no connection: leave it
        # readable, in case the call ends up returning this response after all
        # (a retry the circuit breaker or the rate limit then refuses).
        if not isinstance(response.stream, httpx.ByteStream):
            response.close()


class _AsyncIO:
    __slots__ = ("send",)

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        # The wrapped transport's own coroutine function (see _SyncIO).
        self.send: Callable[[httpx.Request], Awaitable[httpx.Response]] = (
            transport.handle_async_request
        )

    async def read(self, response: httpx.Response) -> tuple[httpx.Response, bytes | None]:
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
        **options: the keywords of :class:`~resilience.Policy`.

    ``sleep`` defaults to :func:`time.sleep`. Closing this transport closes the
    wrapped one.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        policy: Policy | None = None,
        **options: Any,
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
        self._sleep = self.policy.sleep or time.sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying per the policy; return the final response."""
        response: httpx.Response = drive(self._core, _WIRE, request, self._io, self._sleep)
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """The asyncio counterpart of :class:`ResilientTransport`.

    Args:
        transport: the async transport to wrap (``httpx.AsyncHTTPTransport()``
            by default; ``httpx.MockTransport`` works too).
        policy: a :class:`~resilience.Policy`; keyword arguments override it.
        **options: the keywords of :class:`~resilience.Policy`.

    ``sleep`` must be an async callable; it defaults to :func:`asyncio.sleep`.
    ``on_retry`` may be a plain or a coroutine function.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        policy: Policy | None = None,
        **options: Any,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                "transport must be an httpx.AsyncBaseTransport (ResilientTransport is for sync)"
            )
        self.policy = Policy.from_kwargs(policy, options)
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._core = Core(self.policy)
        self._io = _AsyncIO(self._transport)
        self._sleep = self.policy.sleep or asyncio.sleep

    def handle_async_request(self, request: httpx.Request) -> Coroutine[Any, Any, httpx.Response]:
        """Send ``request``, retrying per the policy; return the final response.

        Awaited like the base method: it hands back the coroutine of the retry
        loop itself, so each call runs in one coroutine of ours, not two (every
        time the wrapped transport waits on its socket and resumes, the resume
        passes through each coroutine above it).
        """
        return drive_async(self._core, _WIRE, request, self._io, self._sleep)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()
