"""httpx transports: ``ResilientTransport`` and ``AsyncResilientTransport``.

One implementation serves httpx and its successor httpx2 (the same API under
another import name). Everything here that touches a library's objects reaches
them through the library module it was built for: :func:`wire_for` gives the
:class:`HttpxWire` of a module (cached per module), and the transports are
:class:`SyncShell` / :class:`AsyncShell` declared over the library's own
``BaseTransport`` / ``AsyncBaseTransport``, so each library's client accepts
them and type checkers see its types. This module declares them for httpx;
:mod:`resilience.httpx2` declares them for httpx2.

Each transport wraps an inner transport (the library's ``HTTPTransport()`` /
``AsyncHTTPTransport()``, through the environment's proxies as the library's
own client would, unless one is given) and runs every request through
the one retry flow of :mod:`resilience.retry.flow`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import ModuleType, TracebackType
from typing import Any, ClassVar, Generic, TypeVar

import anyio
import httpx
from typing_extensions import Self, Unpack

from resilience.core.classification import Classification
from resilience.core.healing import tls_failure
from resilience.core.response import MAX_BODY, ResponseView, bounded_decode, content_length
from resilience.errors import ResilienceError, mixed_class
from resilience.regions import RequestParts
from resilience.retry.engine import ErrorKind
from resilience.retry.flow import (
    ATTEMPTS_KEY,
    Core,
    History,
    drive,
    drive_async,
    refuse_coroutine_functions,
)
from resilience.retry.policy import Policy, PolicyOptions
from resilience.retry.racing_threads import HedgePool
from resilience.retry.testing_mode import real_async_sleep, real_sleep
from resilience.shells.cuts import cut_network_backend
from resilience.shells.proxies import default_transport

__all__ = [
    "AsyncResilientTransport",
    "AsyncShell",
    "HttpxWire",
    "ResilientTransport",
    "SyncShell",
    "wire_for",
]

Inner = TypeVar("Inner")  # the library's (async) base transport
Req = TypeVar("Req")  # its Request
Resp = TypeVar("Resp")  # its Response


class _Chained:
    """The chunks already read, then the rest of the original stream."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], original: Any) -> None:
        self._head, self._rest, self._original = head, rest, original

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        self._head = []
        yield from self._rest

    def close(self) -> None:
        self._original.close()


class _AsyncChained:
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


class HttpxWire:
    """What the flow needs to know about the requests and responses of one
    library of the httpx family (``httpx`` or ``httpx2``), given as its module.

    The annotations name httpx; the objects are those of ``lib``.
    """

    def __init__(self, lib: ModuleType) -> None:
        self.lib = lib
        # Errors raised before the request could reach the server.
        self.connect_errors: tuple[type[Exception], ...] = (
            lib.ConnectError,
            lib.ConnectTimeout,
            lib.PoolTimeout,
            lib.ProxyError,
        )
        # Errors after which the server may have processed the request.
        self.unknown_errors: tuple[type[Exception], ...] = (
            lib.ReadTimeout,
            lib.WriteTimeout,
            lib.ReadError,
            lib.WriteError,
            lib.RemoteProtocolError,
        )
        # The library checks a response's stream against its own base classes.
        self.chained: type[_Chained] = type("ChainedStream", (_Chained, lib.SyncByteStream), {})
        self.async_chained: type[_AsyncChained] = type(
            "AsyncChainedStream", (_AsyncChained, lib.AsyncByteStream), {}
        )

    def in_memory(self, stream: object) -> bool:
        """Whether ``stream`` holds its bytes (a replayable request body, a read response)."""
        return isinstance(stream, self.lib.ByteStream)

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
        return isinstance(request.stream, self.lib.ByteStream)

    def _request_body(self, request: httpx.Request) -> bytes | None:
        return request.read() if self.in_memory(request.stream) else None

    def parts(self, request: httpx.Request) -> RequestParts:
        return RequestParts(
            method=request.method,
            url=str(request.url),
            headers=tuple(request.headers.multi_items()),
            body=self._request_body(request) or None,
        )

    def rebuild(self, request: httpx.Request, parts: RequestParts) -> httpx.Request:
        rebuilt: httpx.Request = self.lib.Request(
            parts.method,
            parts.url,
            headers=list(parts.headers),
            content=parts.body,
            extensions=request.extensions,
        )
        return rebuilt

    def copy(self, request: httpx.Request) -> httpx.Request:
        # The same (replayable) body stream; its own extensions, so that the
        # copy's timeouts are cut apart from the original's.
        copied: httpx.Request = self.lib.Request(
            request.method,
            request.url,
            headers=request.headers,
            stream=request.stream,
            extensions={**request.extensions},
        )
        return copied

    def status(self, response: httpx.Response) -> int:
        return response.status_code

    def response_header(self, response: httpx.Response, name: str) -> str | None:
        value: str | None = response.headers.get(name)
        return value

    def view(
        self, response: httpx.Response, body: bytes | None, request: httpx.Request
    ) -> ResponseView:
        request_body = self._request_body(request)
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
        error = mixed_class(base, self.lib.ConnectError)(classification)
        error._request = request  # type: ignore[attr-defined]
        return error

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        lib = self.lib
        if not isinstance(error, lib.TransportError):
            return None
        if isinstance(error, (lib.UnsupportedProtocol, lib.LocalProtocolError)):
            return ErrorKind.FATAL  # the same request meets the same refusal
        if tls_failure(error):
            return ErrorKind.FATAL
        if isinstance(error, self.connect_errors):
            return ErrorKind.CONNECT
        if isinstance(error, self.unknown_errors):
            return ErrorKind.UNKNOWN
        return ErrorKind.FATAL

    def response_headers(self, response: httpx.Response) -> httpx.Headers:
        return response.headers

    def attach(self, response: httpx.Response, history: History) -> None:
        response.extensions[ATTEMPTS_KEY] = history

    # -- for the IO below --------------------------------------------------------

    def replacement(self, response: httpx.Response, stream: Any) -> httpx.Response:
        """``response`` over another stream."""
        replaced: httpx.Response = self.lib.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )
        return replaced

    def whole(
        self, response: httpx.Response, head: list[bytes]
    ) -> tuple[httpx.Response, bytes | None]:
        """The response rebuilt over the raw bytes read, and their bounded decoding."""
        raw = b"".join(head)
        body = bounded_decode(raw, response.headers.get("content-encoding"))
        return self.replacement(response, self.lib.ByteStream(raw)), body

    def deadline_error(self, what: str) -> Exception:
        # No request: the client attaches it as the error passes (request_context).
        error: Exception = self.lib.ReadTimeout(f"the call's time ran out while {what}")
        return error

    def complete(self, response: httpx.Response, size: int) -> bool:
        """Whether ``size`` bytes are the whole body (nothing more to wait for)."""
        if self.in_memory(response.stream):
            return True  # in memory: no network to wait on
        length = content_length(response.headers)
        return length is not None and size >= length


@functools.cache
def wire_for(lib: ModuleType) -> HttpxWire:
    """The :class:`HttpxWire` of the library module ``lib`` (one per module)."""
    return HttpxWire(lib)


_ORIGINAL_TIMEOUT = "resilience.timeout"


#: The last timeouts found to fit a budget as they were, and the longest of
#: them (``inf`` when one is ``None``: no limit): a client sends the same
#: timeouts on every request, so one comparison settles most calls. Replaced
#: whole (one assignment, safe between threads).
_fitted: tuple[dict[str, float | None], float] = ({}, 0.0)


def _cut_timeouts(request: httpx.Request, budget: float) -> None:
    """Cut the request's connect/read/write/pool timeouts to ``budget`` seconds
    (from the timeouts it came with, kept aside for the next attempt)."""
    global _fitted
    extensions = request.extensions
    original = extensions.get(_ORIGINAL_TIMEOUT)
    if original is None:
        timeout = extensions.get("timeout") or {}
        seen, longest = _fitted
        if longest <= budget and timeout == seen:
            return  # the client's own timeouts already fit (a 5 s timeout, 30 s left)
        if len(timeout) == 4:
            values = timeout.values()
            longest = math.inf if None in values else max(values)
            if longest <= budget:
                _fitted = (dict(timeout), longest)
                return
        original = extensions[_ORIGINAL_TIMEOUT] = dict(timeout)
    extensions["timeout"] = {
        name: budget if original.get(name) is None else min(original[name], budget)
        for name in ("connect", "read", "write", "pool")
    }


class _SyncIO:
    __slots__ = ("_transport", "_wire", "cuts_sends")

    def __init__(
        self, transport: httpx.BaseTransport, wire: HttpxWire, *, cuts_sends: bool = False
    ) -> None:
        self._transport, self._wire = transport, wire
        #: Whether a hedge that wins can cut a send short (see :mod:`.cuts`).
        self.cuts_sends = cuts_sends

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
        wire = self._wire
        head: list[bytes] = []
        size = 0
        stream: Any = response.stream  # the library's SyncByteStream
        chunks = iter(stream)
        for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                return wire.replacement(response, wire.chained(head, chunks, stream)), None
            if (
                until is not None
                and time.monotonic() >= until
                and not wire.complete(response, size)
            ):
                raise wire.deadline_error("its error body was read")
        stream.close()
        return wire.whole(response, head)

    def discard(self, response: httpx.Response) -> None:
        # A body already held in memory ties up no connection: leave it
        # readable, in case the call ends up returning this response after all
        # (a retry the circuit breaker or the rate limit then refuses).
        if not self._wire.in_memory(response.stream):
            response.close()


class _AsyncIO:
    __slots__ = ("_transport", "_wire")

    def __init__(self, transport: httpx.AsyncBaseTransport, wire: HttpxWire) -> None:
        self._transport, self._wire = transport, wire

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
        raise self._wire.deadline_error("waiting for an answer")

    async def read(
        self, response: httpx.Response, until: float | None
    ) -> tuple[httpx.Response, bytes | None]:
        if until is None or self._wire.in_memory(response.stream):
            return await self._read(response)  # no deadline, or nothing to wait on
        with anyio.move_on_after(until - time.monotonic()):
            return await self._read(response)
        raise self._wire.deadline_error("its error body was read")

    async def _read(self, response: httpx.Response) -> tuple[httpx.Response, bytes | None]:
        length = content_length(response.headers)  # see _SyncIO.read
        if length is not None and length > MAX_BODY:
            return response, None
        wire = self._wire
        head: list[bytes] = []
        size = 0
        stream: Any = response.stream  # the library's AsyncByteStream
        chunks = stream.__aiter__()
        async for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                return wire.replacement(response, wire.async_chained(head, chunks, stream)), None
        await stream.aclose()
        return wire.whole(response, head)

    async def discard(self, response: httpx.Response) -> None:
        if not self._wire.in_memory(response.stream):  # see _SyncIO.discard
            await response.aclose()


class SyncShell(Generic[Inner, Req, Resp]):
    """The synchronous transport of a library of the httpx family.

    A concrete transport derives from it and from its library's
    ``BaseTransport``, and names the library module in ``library``.
    """

    library: ClassVar[ModuleType]

    def __init__(
        self,
        transport: Inner | None = None,
        *,
        policy: Policy | None = None,
        **options: Unpack[PolicyOptions[None]],
    ) -> None:
        lib = self.library
        if transport is not None and not isinstance(transport, lib.BaseTransport):
            raise TypeError(
                f"transport must be an {lib.__name__}.BaseTransport"
                " (AsyncResilientTransport is for async)"
            )
        self.policy = Policy.from_kwargs(policy, options)
        self._transport: Any = (
            transport if transport is not None else default_transport(lib, asynchronous=False)
        )
        refuse_coroutine_functions(self.policy)
        self._core = Core(self.policy)
        self._wire = wire_for(lib)
        hedge = self.policy.hedge
        # Hedging sends a first copy from the caller's thread when a hedge can
        # cut it short: over the connections of the library's own transport.
        cuts = (
            hedge is not None
            and type(self._transport) is lib.HTTPTransport
            and cut_network_backend(self._transport)
        )
        self._io = _SyncIO(self._transport, self._wire, cuts_sends=cuts)
        self._sleep = self.policy.sleep or real_sleep
        self._pool = HedgePool(hedge.threads) if hedge is not None else None

    def handle_request(self, request: Req) -> Resp:
        """Send ``request``, retrying per the policy; return the final response."""
        response: Resp = drive(self._core, self._wire, request, self._io, self._sleep, self._pool)
        return response

    def __enter__(self) -> Self:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self._transport.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        """Close the wrapped transport (and stop the hedging threads)."""
        if self._pool is not None:
            self._pool.shutdown()
        self._transport.close()


class AsyncShell(Generic[Inner, Req, Resp]):
    """The asynchronous transport of a library of the httpx family (see :class:`SyncShell`)."""

    library: ClassVar[ModuleType]

    def __init__(
        self,
        transport: Inner | None = None,
        *,
        policy: Policy | None = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        lib = self.library
        if transport is not None and not isinstance(transport, lib.AsyncBaseTransport):
            raise TypeError(
                f"transport must be an {lib.__name__}.AsyncBaseTransport"
                " (ResilientTransport is for sync)"
            )
        self.policy = Policy.from_kwargs(policy, options)
        self._transport: Any = (
            transport if transport is not None else default_transport(lib, asynchronous=True)
        )
        self._core = Core(self.policy)
        self._wire = wire_for(lib)
        self._io = _AsyncIO(self._transport, self._wire)
        # The flow awaits what the sleep returns when it is awaitable.
        sleep: Any = self.policy.sleep or real_async_sleep
        self._sleep: Callable[[float], Awaitable[Any]] = sleep

    def handle_async_request(self, request: Req) -> Coroutine[Any, Any, Resp]:
        """Send ``request``, retrying per the policy; return the final response.

        Awaited like the base method: it hands back the coroutine of the retry
        loop itself, so each call runs in one coroutine of ours, not two (every
        time the wrapped transport waits on its socket and resumes, the resume
        passes through each coroutine above it).
        """
        return drive_async(self._core, self._wire, request, self._io, self._sleep)

    async def __aenter__(self) -> Self:
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


class ResilientTransport(
    SyncShell[httpx.BaseTransport, httpx.Request, httpx.Response], httpx.BaseTransport
):
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
    transport closes the wrapped one. For httpx2, use
    :class:`resilience.httpx2.ResilientTransport`.
    """

    library: ClassVar[ModuleType] = httpx


class AsyncResilientTransport(
    AsyncShell[httpx.AsyncBaseTransport, httpx.Request, httpx.Response], httpx.AsyncBaseTransport
):
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
    function. For httpx2, use :class:`resilience.httpx2.AsyncResilientTransport`.
    """

    library: ClassVar[ModuleType] = httpx
