"""``ResilientAdapter``: a ``requests`` HTTPAdapter that retries per the policy.

requests runs no retry loop of its own: ``HTTPAdapter.send()`` hands
``max_retries`` to urllib3. This adapter pins that to ``Retry(0, read=False,
redirect=False)`` so nothing is retried twice, and runs each ``send`` through
the one retry flow of :mod:`resilience.retry.flow`. Everything else an HTTPAdapter
does (pooling, TLS, proxies, the timeouts requests passes) is untouched.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from typing_extensions import Unpack
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
)
from urllib3.util.retry import Retry

from resilience.core.classification import Classification
from resilience.core.healing import tls_failure
from resilience.core.response import MAX_BODY, ResponseView, content_length
from resilience.errors import ResilienceError, mixed_class
from resilience.regions import RequestParts
from resilience.retry.engine import ErrorKind
from resilience.retry.flow import Core, History, drive, refuse_coroutine_functions
from resilience.retry.policy import Policy, PolicyOptions
from resilience.retry.racing_threads import HedgePool
from resilience.retry.testing_mode import real_sleep
from resilience.shells.cuts import CUT_POOL_CLASSES

__all__ = ["ResilientAdapter"]

_ATTR = "_resilience_attempts"


def _connect_failure(error: requests.ConnectionError) -> bool:
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


class _RequestsWire:
    """What the flow needs to know about requests' prepared requests and responses."""

    def method(self, request: requests.PreparedRequest) -> str:
        return (request.method or "GET").upper()

    def url(self, request: requests.PreparedRequest) -> str:
        return request.url or ""

    def host(self, request: requests.PreparedRequest) -> str | None:
        try:
            return urlsplit(request.url or "").hostname
        except ValueError:
            return None

    def header(self, request: requests.PreparedRequest, name: str) -> str | None:
        value = request.headers.get(name)
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value

    def set_header(self, request: requests.PreparedRequest, name: str, value: str) -> None:
        request.headers[name] = value

    def replayable(self, request: requests.PreparedRequest) -> bool:
        return request.body is None or isinstance(request.body, (bytes, str))

    def parts(self, request: requests.PreparedRequest) -> RequestParts:
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = tuple(
            (k, v.decode("latin-1") if isinstance(v, bytes) else str(v))
            for k, v in request.headers.items()
        )
        return RequestParts(
            method=self.method(request),
            url=self.url(request),
            headers=headers,
            body=body if isinstance(body, bytes) else None,
        )

    def rebuild(
        self, request: requests.PreparedRequest, parts: RequestParts
    ) -> requests.PreparedRequest:
        new = request.copy()
        new.url = parts.url
        new.headers = requests.structures.CaseInsensitiveDict(parts.headers)
        new.body = parts.body
        return new

    def copy(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request.copy()

    def status(self, response: requests.Response) -> int:
        return response.status_code

    def response_header(self, response: requests.Response, name: str) -> str | None:
        return response.headers.get(name)

    def view(
        self, response: requests.Response, body: bytes | None, request: requests.PreparedRequest
    ) -> ResponseView:
        try:
            split = urlsplit(request.url or "")
            host, path = split.hostname, split.path or "/"
        except ValueError:
            host = path = None
        raw = request.body
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        return ResponseView(
            status=response.status_code,
            headers=response.headers,
            body=body,
            host=host,
            method=self.method(request),
            path=path,
            request_body=raw if isinstance(raw, bytes) and len(raw) <= MAX_BODY else None,
        )

    def not_sent(
        self,
        request: requests.PreparedRequest,
        classification: Classification,
        base: type[ResilienceError],
    ) -> BaseException:
        error = mixed_class(base, requests.ConnectionError)(classification)
        error.request = request  # type: ignore[attr-defined]
        return error

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        if isinstance(error, (requests.exceptions.SSLError, requests.exceptions.InvalidURL)):
            return ErrorKind.FATAL
        if isinstance(error, requests.exceptions.InvalidSchema):
            return ErrorKind.FATAL  # no adapter speaks it: the same request meets the same refusal
        if isinstance(error, requests.RequestException) and tls_failure(error):
            return ErrorKind.FATAL
        if isinstance(error, (requests.ConnectTimeout, requests.exceptions.ProxyError)):
            return ErrorKind.CONNECT
        if isinstance(error, requests.ConnectionError):
            return ErrorKind.CONNECT if _connect_failure(error) else ErrorKind.UNKNOWN
        if isinstance(error, (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError)):
            return ErrorKind.UNKNOWN
        if isinstance(error, requests.RequestException):
            return ErrorKind.FATAL
        return None

    def response_headers(self, response: requests.Response) -> Any:
        return response.headers

    def attach(self, response: requests.Response, history: History) -> None:
        setattr(response, _ATTR, history)


_WIRE = _RequestsWire()


class _PrefixedRaw(io.RawIOBase):
    """The bytes already read from a urllib3 response, then the rest of it."""

    def __init__(self, head: bytes, raw: Any) -> None:
        super().__init__()
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        if self._head:
            if amt is None or amt < 0:
                data, self._head = self._head + bytes(self._raw.read(decode_content=True)), b""
                return data
            data, self._head = self._head[:amt], self._head[amt:]
            return data
        return bytes(self._raw.read(amt, decode_content=True))

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        while True:
            data = self.read(amt)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._raw.close()
        super().close()

    def release_conn(self) -> None:
        self._raw.release_conn()


def _cut_timeout(timeout: Any, budget: float) -> tuple[float, float]:
    """requests' ``timeout`` (a number, ``(connect, read)``, a urllib3 ``Timeout``
    or ``None``) with each part cut to ``budget`` seconds."""
    if isinstance(timeout, urllib3.Timeout):
        parts: tuple[Any, Any] = (timeout.connect_timeout, timeout.read_timeout)
    elif isinstance(timeout, tuple) and len(timeout) == 2:
        parts = (timeout[0], timeout[1])
    else:
        parts = (timeout, timeout)
    return tuple(  # type: ignore[return-value]
        min(float(p), budget) if isinstance(p, (int, float)) and not isinstance(p, bool) else budget
        for p in parts
    )


def _read_head(raw: Any, until: float | None, response: requests.Response) -> bytes:
    """At most ``MAX_BODY + 1`` decoded bytes; with ``until``, one socket read at
    a time, stopping at that monotonic time (a body that drips holds no longer)."""
    if until is None:
        return bytes(raw.read(MAX_BODY + 1, decode_content=True))
    head = b""
    length = content_length(response.headers)
    while len(head) <= MAX_BODY:
        data = raw.read1(MAX_BODY + 1 - len(head), decode_content=True)
        if not data:
            break
        head += data
        whole = length is not None and len(head) >= length
        if not whole and time.monotonic() >= until:
            raise requests.exceptions.ReadTimeout(
                "the call's deadline passed while its error body was read", response=response
            )
    return head


class _RequestsIO:
    __slots__ = ("_adapter", "_kwargs")

    def __init__(self, adapter: ResilientAdapter, kwargs: Mapping[str, Any]) -> None:
        self._adapter = adapter
        self._kwargs = kwargs

    @property
    def cuts_sends(self) -> bool:
        """Whether a hedge that wins can cut a send short: over the adapter's
        own pools (see :mod:`.cuts`), not through a proxy's."""
        return self._adapter._cuts and not any((self._kwargs.get("proxies") or {}).values())

    def send(self, request: requests.PreparedRequest, budget: float | None) -> requests.Response:
        kwargs = self._kwargs
        if budget is not None:
            kwargs = {**kwargs, "timeout": _cut_timeout(kwargs.get("timeout"), budget)}
        return HTTPAdapter.send(self._adapter, request, **kwargs)

    def read(
        self, response: requests.Response, until: float | None
    ) -> tuple[requests.Response, bytes | None]:
        # At most 64 KiB, decoded: urllib3 bounds a decoded read(amt), so a
        # small compressed body cannot inflate here. A failed read raises the
        # error requests itself would raise, and the flow treats it as such.
        length = content_length(response.headers)
        if length is not None and length > MAX_BODY:
            return response, None
        raw = response.raw
        try:
            head = _read_head(raw, until, response)
        except urllib3.exceptions.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc, response=response) from exc
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ConnectionError(exc, response=response) from exc
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError) as exc:
            raise requests.exceptions.ChunkedEncodingError(exc, response=response) from exc
        if len(head) <= MAX_BODY:
            response._content = head
            response._content_consumed = True  # type: ignore[attr-defined]
            return response, head
        response.raw = _PrefixedRaw(head, raw)
        return response, None

    def discard(self, response: requests.Response) -> None:
        response.close()


class ResilientAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that retries what the vendors say to retry.

    Mount it on an existing session: ``session.mount("https://", ResilientAdapter())``.

    Args:
        policy: a :class:`~resilience.Policy`; keyword arguments override it.
        pool_connections: as for ``HTTPAdapter``.
        pool_maxsize: as for ``HTTPAdapter``.
        pool_block: as for ``HTTPAdapter``.
        **options: the keywords of :class:`~resilience.Policy`, typed by
            :class:`~resilience.PolicyOptions`; ``on_retry`` and ``sleep`` must
            be plain functions (returning ``None``), as for
            :class:`~resilience.ResilientTransport`.

    urllib3's own retries are off (``Retry(0, read=False, redirect=False)``):
    every retry is this adapter's, so nothing is retried twice.
    """

    __attrs__ = [*HTTPAdapter.__attrs__, "policy"]  # noqa: RUF012 (requests' convention)

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        pool_connections: int = requests.adapters.DEFAULT_POOLSIZE,
        pool_maxsize: int = requests.adapters.DEFAULT_POOLSIZE,
        pool_block: bool = requests.adapters.DEFAULT_POOLBLOCK,
        **options: Unpack[PolicyOptions[None]],
    ) -> None:
        self.policy = Policy.from_kwargs(policy, options)
        refuse_coroutine_functions(self.policy)
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=Retry(0, read=False, redirect=False),
            pool_block=pool_block,
        )
        self._setup()

    def _setup(self) -> None:
        self._core = Core(self.policy)
        self._sleep = self.policy.sleep or real_sleep
        hedge = self.policy.hedge
        self._pool = HedgePool(hedge.threads) if hedge is not None else None
        # Hedging sends a first copy from the caller's thread, over connections
        # that a hedge which wins can cut short.
        self._cuts = hedge is not None
        if self._cuts:
            self.poolmanager.pool_classes_by_scheme = dict(CUT_POOL_CLASSES)

    def close(self) -> None:
        """Close the connection pools (and stop the hedging threads)."""
        if self._pool is not None:
            self._pool.shutdown()
        super().close()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._setup()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        """Send ``request``, retrying per the policy; return the final response.

        Takes the keyword arguments of ``HTTPAdapter.send`` (``stream``,
        ``timeout``, ``verify``, ``cert``, ``proxies``) and passes them on.
        """
        io = _RequestsIO(self, kwargs)
        response: requests.Response = drive(self._core, _WIRE, request, io, self._sleep, self._pool)
        return response
