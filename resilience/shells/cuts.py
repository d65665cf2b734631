"""Connections whose blocking reads a hedge that won can cut short.

A sync shell sends the first copy of a raced attempt from the caller's own
thread (see :func:`resilience.retry.racing_threads.race_inline`); when a hedge answers
first, the caller must stop waiting for that copy. A blocking read cannot be
interrupted from another thread, but its socket can be shut down: the read
then returns at once, and the library fails the request and drops the
connection as it does for any connection the server closed.

The wrappers here arm that for the connections the shells make themselves:
httpcore's network streams (the httpx transport built by default) and
urllib3's connection classes (the requests adapter's pools). While a read
waits, each hedge that falls due meanwhile is sent from the waiting thread:
an httpcore stream reads with its timeout cut to the time a copy is due
(:meth:`~resilience.retry.racing_threads.Cut.read_by`: the socket's own wait,
no extra system call); a urllib3 connection first waits until its socket is
readable (:meth:`~resilience.retry.racing_threads.Cut.until_readable`), since
a timeout in the middle of ``http.client``'s buffered read would end it. A
send with no cut armed (:func:`~resilience.retry.racing_threads.armed`)
costs one thread-local read per network read.
"""

from __future__ import annotations

import socket
from typing import Any

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from resilience.retry.racing_threads import LEAST_TIMEOUT, armed

__all__ = ["CUT_POOL_CLASSES", "cut_network_backend"]


def _shut(sock: Any) -> None:
    """Shut ``sock`` down both ways (the plain socket's method, also for a TLS
    socket, whose own ``shutdown`` would tear its TLS state down under the
    reading thread)."""
    if sock is not None:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _CutStream:
    """An httpcore network stream whose reads a cut can end."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        cut = armed()
        if cut is None:
            data: bytes = self._stream.read(max_bytes, timeout)
            return data
        cut.watch(self._shut)
        try:
            # The stream's read sets the socket's timeout and reads: the socket
            # waits, up to the time a copy is due (httpcore's timeout error
            # is raised from the socket's TimeoutError).
            stream = self._stream
            read: bytes = cut.read_by(lambda seconds: stream.read(max_bytes, seconds), timeout)
            return read
        finally:
            cut.unwatch()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        cut = armed()
        if cut is not None:
            cut.check()
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> _CutStream:
        return _CutStream(self._stream.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def _shut(self) -> None:
        _shut(self._stream.get_extra_info("socket"))


class _CutBackend:
    """An httpcore network backend whose streams a cut can end."""

    __slots__ = ("_backend",)

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def connect_tcp(self, *args: Any, **kwargs: Any) -> _CutStream:
        return _CutStream(self._backend.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> _CutStream:
        return _CutStream(self._backend.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def cut_network_backend(transport: Any) -> bool:
    """Make the connections of an httpx ``HTTPTransport`` cuttable; ``False``
    when ``transport`` is not one whose connections are known (a mock, a
    router of proxies, a user's own transport)."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None or not hasattr(backend, "connect_tcp"):
        return False
    if not isinstance(backend, _CutBackend):
        pool._network_backend = _CutBackend(backend)  # type: ignore[union-attr]
    return True


class _CutConnection:
    """urllib3 connection behaviour: the wait for the response's head can be cut."""

    sock: Any
    timeout: Any

    def request(self, *args: Any, **kwargs: Any) -> Any:
        cut = armed()
        if cut is not None:
            cut.check()
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        cut = armed()
        if cut is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        cut.watch(self._shut)
        # The read timeout urllib3 set for this response: ``getresponse`` puts
        # it on the socket, so the wait is taken off it here.
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        try:
            waited = cut.until_readable(self.sock, timeout)
            if waited and timeout is not None:  # the read timeout counts the wait
                self.timeout = max(timeout - waited, LEAST_TIMEOUT)
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            cut.unwatch()

    def _shut(self) -> None:
        _shut(self.sock)


class _CutHTTPConnection(_CutConnection, urllib3.connection.HTTPConnection):
    pass


class _CutHTTPSConnection(_CutConnection, urllib3.connection.HTTPSConnection):
    pass


class _CutHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CutHTTPConnection


class _CutHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CutHTTPSConnection


#: ``PoolManager.pool_classes_by_scheme`` for pools whose connections can be cut.
CUT_POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": _CutHTTPPool,
    "https": _CutHTTPSPool,
}
