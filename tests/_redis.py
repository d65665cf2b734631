"""A real ``redis-server`` for tests (:func:`resilience.testing.running_redis`), and a
3-node Redis Cluster (:func:`running_redis_cluster`).

When ``redis-server`` is not installed the test is skipped with a clear
message, except in CI (the ``CI`` environment variable is set), where a missing
server fails the test: CI must run the Redis tests, not skip them silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from resilience.testing import RedisServer, free_port
from resilience.testing import running_redis as _running_redis

__all__ = [
    "Cluster",
    "RedisServer",
    "free_port",
    "redis_server_binary",
    "running_redis",
    "running_redis_cluster",
]

_MISSING = (
    "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis)"
)


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so the Redis tests must run", pytrace=False)
    pytest.skip(message)


def redis_server_binary() -> str:
    """The path of ``redis-server``; skips the test (fails it in CI) when there is none."""
    path = shutil.which("redis-server")
    if path is None:
        _missing(_MISSING)
        raise AssertionError("unreachable")  # pragma: no cover
    return path


@contextlib.contextmanager
def running_redis(port: int | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` (skipped, or failed in CI, without one)."""
    with _running_redis(port, binary=redis_server_binary()) as server:
        yield server


@dataclass
class Cluster:
    """A running 3-node Redis Cluster on 127.0.0.1 (no replicas)."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]

    @property
    def port(self) -> int:
        """The port of one node: enough for a cluster client to find the others."""
        return self.ports[0]

    def stop(self) -> None:
        """Kill every node at once (SIGKILL) and reap them."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(timeout=10)


def _ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis_cluster(nodes: int = 3) -> Iterator[Cluster]:
    """A Redis Cluster of ``nodes`` masters that the test starts itself.

    ``redis-server --cluster-enabled yes`` on free loopback ports, then
    ``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``;
    yields once every node says ``cluster_state:ok``.
    """
    import redis

    binary = redis_server_binary()
    cli = shutil.which("redis-cli")
    if cli is None:
        _missing("redis-cli is not installed (it comes with redis-server, or redis-tools)")
        raise AssertionError("unreachable")  # pragma: no cover
    with tempfile.TemporaryDirectory(prefix="resilience-cluster-") as tmp:
        ports: list[int] = []
        while len(ports) < nodes:  # the bus port (port + 10000) must be free too
            port = free_port()
            if port + 10000 < 65536 and port not in ports:
                ports.append(port)
        processes: list[subprocess.Popen[bytes]] = []
        cluster = Cluster(ports, processes)
        try:
            for port in ports:
                log = (Path(tmp) / f"redis-{port}.log").open("ab")
                processes.append(
                    subprocess.Popen(
                        [
                            *(binary, "--port", str(port), "--bind", "127.0.0.1"),
                            *("--cluster-enabled", "yes"),
                            *("--cluster-config-file", f"nodes-{port}.conf"),
                            *("--cluster-node-timeout", "2000"),
                            *("--dir", tmp, "--save", "", "--appendonly", "no"),
                            *("--daemonize", "no", "--loglevel", "warning"),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=tmp,
                    )
                )
                log.close()
            deadline = time.monotonic() + 10.0
            while not all(_ping(p) for p in ports):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster's nodes did not start")
                time.sleep(0.02)
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in ports),
                    *("--cluster-replicas", "0", "--cluster-yes"),
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
            deadline = time.monotonic() + 20.0
            while True:
                states = []
                for p in ports:
                    client = redis.Redis(port=p, socket_timeout=1.0)
                    try:
                        states.append(client.execute_command("CLUSTER", "INFO"))  # type: ignore[no-untyped-call]
                    finally:
                        client.close()
                text = [s.decode() if isinstance(s, bytes) else str(s) for s in states]
                if all("cluster_state:ok" in s for s in text):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not become ready: {text}")
                time.sleep(0.05)
            yield cluster
        finally:
            cluster.stop()
