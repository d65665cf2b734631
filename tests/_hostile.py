"""Servers that misbehave on purpose, on 127.0.0.1, over raw sockets.

``Hostile(behaviour)`` accepts connections and lets ``behaviour(conn)`` do what
it likes with each (in a thread of its own). The behaviours below are the ones
a deadline must survive: silence, an answer that comes too late, and a body
that drips.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["Hostile", "drip_body", "late", "read_request", "silent"]

Behaviour = Callable[[socket.socket, threading.Event], None]


def read_request(conn: socket.socket) -> None:
    """Read one request's head (the body, if any, is left)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Accept, read the request, never answer."""
    read_request(conn)
    stop.wait(30)


def late(seconds: float, status: int = 200) -> Behaviour:
    """Answer ``status`` after ``seconds``."""

    def behave(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        if stop.wait(seconds):
            return
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
        stop.wait(30)

    return behave


def drip_body(status: int = 503, every: float = 0.05, length: int = 1000) -> Behaviour:
    """Send the status line and headers at once, then the body one byte every ``every`` s."""

    def behave(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {length}\r\n\r\n".encode())
        for _ in range(length):
            if stop.wait(every):
                return
            conn.sendall(b"x")

    return behave


class Hostile:
    """A TCP server on 127.0.0.1 running ``behaviour`` for each connection."""

    def __init__(self, behaviour: Behaviour, *, scheme: str = "http") -> None:
        self.behaviour = behaviour
        self.scheme = scheme
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.behaviour(conn, self._stop)

    def accepted(self, expected: int, within: float = 5.0) -> int:
        """The connections accepted, once ``expected`` are (or ``within`` seconds passed).

        A client may give up on a connection before this server's thread got
        round to accepting it (a silent server, a loaded machine): the count
        catches up, and is returned as soon as it reaches ``expected``.
        """
        deadline = time.monotonic() + within
        while self.connections < expected and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.connections

    def __enter__(self) -> Hostile:
        self._accepter.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._accepter.join(2)
        self._sock.close()
        for thread in self._threads:
            thread.join(2)


def elapsed(work: Callable[[], object]) -> float:
    """Seconds ``work()`` took."""
    started = time.monotonic()
    work()
    return time.monotonic() - started
