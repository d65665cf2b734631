"""A real ``redis-server`` for tests (the launcher of ``benchmarks/_redis.py``), and
a 3-node Redis Cluster (:func:`running_redis_cluster`).

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

from benchmarks._redis import MISSING, RedisServer, free_port
from benchmarks._redis import running_redis as _running_redis

__all__ = [
    "Cluster",
    "RedisServer",
    "free_port",
    "redis_server_binary",
    "running_redis",
    "running_redis_cluster",
]


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so the Redis tests must run", pytrace=False)
    pytest.skip(message)


def redis_server_binary() -> str:
    """The path of ``redis-server``; skips the test (fails it in CI) when there is none."""
    path = shutil.which("redis-server")
    if path is None:
        _missing(MISSING)
        raise AssertionError("unreachable")  # pragma: no cover
    return path


@contextlib.contextmanager
def running_redis(port: int | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` (skipped, or failed in CI, without one)."""
    with _running_redis(port, binary=redis_server_binary()) as server:
        yield server


@dataclass
class Cluster:
    """A running Redis Cluster on 127.0.0.1 (masters only, no replicas)."""

    nodes: list[RedisServer]

    @property
    def port(self) -> int:
        """The port of one node: enough for a cluster client to find the others."""
        return self.nodes[0].port

    def stop(self) -> None:
        """Kill every node at once (SIGKILL) and reap them."""
        for node in self.nodes:
            node.stop()


def _cluster_state(port: int) -> str:
    import redis

    client = redis.Redis(port=port, socket_timeout=1.0)
    try:
        state = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    finally:
        client.close()
    return state.decode() if isinstance(state, bytes) else str(state)


@contextlib.contextmanager
def running_redis_cluster(nodes: int = 3) -> Iterator[Cluster]:
    """A Redis Cluster of ``nodes`` masters that the test starts itself.

    ``redis-server --cluster-enabled yes`` on free loopback ports, then
    ``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``;
    yields once every node says ``cluster_state:ok``.
    """
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
        cluster = Cluster(
            [
                RedisServer(
                    binary,
                    Path(tmp),
                    port,
                    options=(
                        *("--cluster-enabled", "yes"),
                        *("--cluster-config-file", f"nodes-{port}.conf"),
                        *("--cluster-node-timeout", "2000"),
                    ),
                )
                for port in ports
            ]
        )
        try:
            for node in cluster.nodes:
                node.start()
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
                states = [_cluster_state(p) for p in ports]
                if all("cluster_state:ok" in s for s in states):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not become ready: {states}")
                time.sleep(0.05)
            yield cluster
        finally:
            cluster.stop()
