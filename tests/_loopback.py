"""A tiny HTTP/1.1 keep-alive server on 127.0.0.1 for tests that need real sockets.

``Loopback(answer)`` serves every request with ``answer(seen)``, where ``seen``
is what arrived (method, path, headers, body, connection id); the answer is a
status, or ``(status, headers)``, or ``(status, headers, body)``. Every response
carries ``Content-Length`` so connections are kept alive and reused.
"""

from __future__ import annotations

import itertools
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Loopback", "Seen", "alternating", "fail_by_header", "sequence"]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


Answer = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]


def _read_chunked(rfile: Any) -> bytes:
    body = b""
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return body
        body += rfile.read(size)
        rfile.readline()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection_id = next(self.server.connection_ids)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            self.connection_id,
        )
        self.server.owner.record(seen)
        answer = self.server.owner.answer(seen)
        status, headers, content = _unpack(answer)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def _unpack(answer: Answer) -> tuple[int, dict[str, str], bytes]:
    if isinstance(answer, int):
        return answer, {}, b""
    if len(answer) == 2:
        return answer[0], answer[1], b""
    return answer  # type: ignore[return-value]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    owner: Loopback
    connection_ids: Iterable[int]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up before its answer (a copy that lost a race, a
        # read that timed out) is the test's doing, not the server's error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Loopback:
    """A threaded HTTP/1.1 server on ``127.0.0.1`` (port chosen by the OS).

    Args:
        answer: called (from server threads) with each :class:`Seen` request.
    """

    def __init__(
        self, answer: Callable[[Seen], Answer], *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.answer = answer
        self._scheme = "http" if tls is None else "https"
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:  # each connection's handshake on accept
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.connection_ids = itertools.count(1)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` over TLS)."""
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def connections(self) -> set[int]:
        """The connections requests arrived on."""
        with self._lock:
            return {s.connection for s in self.seen}

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def sequence(*statuses: int) -> Callable[[Seen], Answer]:
    """Answer with ``statuses`` in turn; the last one repeats."""
    lock = threading.Lock()
    index = itertools.count()

    def answer(seen: Seen) -> Answer:
        with lock:
            i = next(index)
        return statuses[min(i, len(statuses) - 1)]

    return answer


def alternating(*statuses: int) -> Callable[[Seen], Answer]:
    """Answer with ``statuses`` in a cycle (``503, 200``: 503, 200, 503, ...)."""
    lock = threading.Lock()
    cycle = itertools.cycle(statuses)

    def answer(seen: Seen) -> Answer:
        with lock:
            return next(cycle)

    return answer


def fail_by_header(status: int = 503) -> Callable[[Seen], Answer]:
    """Fail a request ``X-Fail: n`` times per ``X-Key``, then answer 200.

    The counters are per key and kept under a lock, so concurrent callers each
    see exactly their own script.
    """
    lock = threading.Lock()
    failures: dict[str, int] = {}

    def answer(seen: Seen) -> Answer:
        key = seen.headers.get("x-key", "")
        wanted = int(seen.headers.get("x-fail", "0"))
        with lock:
            done = failures.get(key, 0)
            if done < wanted:
                failures[key] = done + 1
                return status
        return 200, {"Content-Type": "text/plain"}, key.encode()

    return answer
