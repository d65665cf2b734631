"""The HTTP/1.1 server under the simulator: threaded, keep-alive, loopback by default."""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from resilience.testing._wire import MAX_BODY, Response, dumps, phrase, status_line

HOST = "127.0.0.1"
"""The address the simulator listens on unless told otherwise."""

Dispatch = Callable[[str, str, str, dict[str, str], bytes], Response]
"""Turns ``(method, path, query, headers, body)`` into a response."""

_PIECE = 64 * 1024
_FILLER = (b"simulated oversized upstream error body " * (_PIECE // 40 + 1))[:_PIECE]
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_MAX_LINE = 65536
_REAP_MIN = 64
_JOIN_TIMEOUT = 2.0


class _BadRequest(Exception):
    """The request cannot be framed; answer 400 and close."""


class _Disconnected(Exception):
    """The client went away in the middle of a request."""


def _internal_error(exc: BaseException) -> Response:
    body = {"error": "simulator internal error", "detail": f"{type(exc).__name__}: {exc}"}
    return Response(500, dumps(body), close=True)


class _Handler(BaseHTTPRequestHandler):
    """Reads requests, hands them to the dispatcher and writes the answers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request the parser rejected with a JSON body and close.

        Args:
            code: HTTP status.
            message: Short message.
            explain: Longer explanation (unused).
        """
        self.close_connection = True
        self._write(Response(code, dumps({"error": message or phrase(code).lower()}), close=True))

    def handle_one_request(self) -> None:
        """Serve one request; never let an exception escape."""
        try:
            self._handle_one()
        except Exception:
            self.close_connection = True

    def _handle_one(self) -> None:
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            self.close_connection = True
            return
        if len(line) > _MAX_LINE:
            self.send_error(414)
            return
        self.raw_requestline = line
        if not self.parse_request():
            return
        method = self.command
        target = self.path
        if not target.startswith("/"):
            scheme, sep, rest = target.partition("://")
            if sep and scheme.lower() in ("http", "https"):
                target = "/" + rest.partition("/")[2]
        path, _, query = target.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = self._read_body(headers)
        except _BadRequest as exc:
            self.send_error(400, str(exc))
            return
        except _Disconnected:
            self.close_connection = True
            return
        try:
            response = self.server.dispatch(method, path, query, headers, body)
        except Exception as exc:
            response = _internal_error(exc)
        try:
            self._write(response, head_only=method == "HEAD")
        except OSError:
            self.close_connection = True

    def _read_body(self, headers: dict[str, str]) -> bytes:
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.rpartition(",")[2].strip().lower() != "chunked":
                raise _BadRequest("unsupported Transfer-Encoding")
            if "content-length" in headers:
                self.close_connection = True
            return self._read_chunked()
        length_text = headers.get("content-length")
        if length_text is None:
            return b""
        length_text = length_text.strip()
        if not (length_text.isascii() and length_text.isdigit()):
            raise _BadRequest("invalid Content-Length")
        return self._read_exact(int(length_text))

    def _read_exact(self, length: int) -> bytes:
        if length > MAX_BODY:
            kept = bytearray()
            self._read_into(length, kept)
            return bytes(kept)
        data = self.rfile.read(length)
        if len(data) < length:
            raise _Disconnected
        return data

    def _read_into(self, length: int, kept: bytearray) -> None:
        while length > 0:
            piece = self.rfile.read(min(length, _PIECE))
            if not piece:
                raise _Disconnected
            length -= len(piece)
            room = MAX_BODY - len(kept)
            if room > 0:
                kept += piece[:room]

    def _read_chunked(self) -> bytes:
        kept = bytearray()
        rfile = self.rfile
        while True:
            line = rfile.readline(_MAX_LINE + 1)
            if not line:
                raise _Disconnected
            if not line.endswith(b"\n"):
                raise _BadRequest("chunk size line too long")
            size_text = line.partition(b";")[0].strip()
            if not size_text or size_text.strip(_HEX_DIGITS):
                raise _BadRequest("invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            self._read_into(size, kept)
            if rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadRequest("chunk not followed by CRLF")
        while True:
            trailer = rfile.readline(_MAX_LINE + 1)
            if not trailer:
                raise _Disconnected
            if trailer in (b"\r\n", b"\n"):
                return bytes(kept)

    def _write(self, response: Response, *, head_only: bool = False) -> None:
        if response.drop:
            self.close_connection = True
            return
        status = response.status
        parts = [status_line(status)]
        bodiless = status in (204, 304) or status < 200
        if not bodiless:
            length = response.content_length
            if length is None:
                size = response.stream if response.stream >= 0 else len(response.body)
                length = str(size)
            parts.append(f"Content-Length: {length}\r\n")
            if response.content_type:
                parts.append(f"Content-Type: {response.content_type}\r\n")
        for name, value in response.headers:
            parts.append(f"{name}: {value}\r\n")
        if response.close or response.content_length is not None:
            self.close_connection = True
        if self.close_connection:
            parts.append("Connection: close\r\n")
        parts.append("\r\n")
        head = "".join(parts).encode("latin-1", "replace")
        write = self.wfile.write
        if head_only or bodiless:
            write(head)
        elif response.stream >= 0:
            write(head)
            remaining = response.stream
            while remaining >= _PIECE:
                write(_FILLER)
                remaining -= _PIECE
            if remaining:
                write(memoryview(_FILLER)[:remaining])
        else:
            write(head + response.body)


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server that knows its open connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, dispatch: Dispatch, host: str, port: int) -> None:
        self.dispatch = dispatch
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._reap_at = _REAP_MIN
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS look-up ``HTTPServer`` does."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.socket.getsockname()[1]

    def process_request(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: Any,
    ) -> None:
        """Remember the connection, then serve it on its own daemon thread.

        Args:
            request: The accepted connection.
            client_address: The peer address.
        """
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            daemon=True,
        )
        with self._connections_lock:
            if isinstance(request, socket.socket):
                self._connections.add(request)
            if len(self._workers) >= self._reap_at:
                self._workers = [known for known in self._workers if known.is_alive()]
                self._reap_at = max(_REAP_MIN, 2 * len(self._workers))
            self._workers.append(thread)
        try:
            thread.start()
        except BaseException:
            with self._connections_lock:
                self._workers.remove(thread)
            raise

    def _serve_connection(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: Any,
    ) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        """Forget the connection and close it.

        Args:
            request: The connection.
        """
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: Any,
    ) -> None:
        """Stay silent: errors of one connection never reach stderr.

        Args:
            request: The connection.
            client_address: The peer address.
        """

    def close_connections(self) -> None:
        """Shut down every open connection and wait for their threads to end."""
        with self._connections_lock:
            connections = list(self._connections)
            threads = self._workers
            self._workers = []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class SimulatorServer:
    """Runs :class:`_HTTPServer` with an accept loop that stops at once."""

    def __init__(self, dispatch: Dispatch, host: str = HOST, port: int = 0) -> None:
        """Bind the listening socket.

        Args:
            dispatch: Turns requests into responses.
            host: Address to listen on (an IPv6 address has a ``:`` in it).
            port: TCP port; ``0`` picks a free one.

        Raises:
            OSError: The address cannot be bound (the port is taken, ...).
        """
        self._server = _HTTPServer(dispatch, host, port)
        self._server.socket.setblocking(False)
        self.port: int = self._server.server_port
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(
            target=self._accept_loop,
            name=f"vendor-simulator-{self.port}",
            daemon=True,
        )

    def start(self) -> None:
        """Start accepting connections."""
        self._thread.start()

    def _accept_loop(self) -> None:
        server = self._server
        listener = server.socket
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                events = selector.select()
                if any(key.fileobj is self._wake_reader for key, _ in events):
                    return
                while True:
                    try:
                        connection, address = listener.accept()
                    except OSError:
                        break
                    try:
                        connection.setblocking(True)
                        server.process_request(connection, address)
                    except Exception:
                        server.shutdown_request(connection)

    def stop(self) -> None:
        """Stop accepting, close every connection and wait for their threads."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        if self._thread.is_alive():
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()
        self._wake_reader.close()
        self._wake_writer.close()
