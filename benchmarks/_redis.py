"""A real ``redis-server`` for the benchmarks and the tests of ``RedisStore``:
127.0.0.1, a free port, a temporary directory, no persistence.

``running_redis()`` starts one and stops it afterwards; ``server.stop()`` kills
it early (to see what a fleet does when Redis dies). Not part of the library:
users bring their own Redis. The tests import it from here (``tests/_redis.py``
adds skipping when there is no ``redis-server``, and a Redis Cluster).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["MISSING", "RedisServer", "free_port", "running_redis"]

_START_TIMEOUT = 10.0
#: Why there is no server, and how to install one.
MISSING = (
    "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis)"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, without persistence.

    Args:
        binary: the ``redis-server`` executable.
        directory: its working directory (and where its log goes).
        port: the port to listen on (a free one by default).
        options: more command-line options (``--cluster-enabled yes``, ...).
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        port: int | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port() if port is None else port
        self.options = tuple(options)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers ``PING``.

        Raises:
            RuntimeError: it did not answer within 10 s (the end of its log is
                in the message).
        """
        log_path = self.directory / f"redis-{self.port}.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--dir", str(self.directory), "--save", "", "--appendonly", "no"),
                    *("--daemonize", "no", "--loglevel", "warning"),
                    *self.options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers_ping(self.port):
                return
            time.sleep(0.01)
        self.stop()
        text = log_path.read_text(errors="replace")
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text[-2000:]}")

    def stop(self) -> None:
        """Kill the server at once (SIGKILL: no goodbye to its clients) and reap it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def running_redis(port: int | None = None, *, binary: str | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped and its directory removed on exit.

    Args:
        port: the port to listen on; by default a free one (tried up to three
            times, as another process may take a free port before the server
            binds it).
        binary: the ``redis-server`` executable; by default the one on ``PATH``.

    Raises:
        FileNotFoundError: there is no ``redis-server``.
        RuntimeError: the server did not start.
    """
    binary = binary or shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(MISSING)
    with tempfile.TemporaryDirectory(prefix="resilience-redis-") as tmp:
        server = RedisServer(binary, Path(tmp), port)
        for attempt in range(3):
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2 or port is not None:
                    raise
                server = RedisServer(binary, Path(tmp))
        try:
            yield server
        finally:
            server.stop()
