"""A real ``redis-server`` for tests (:func:`resilience.testing.running_redis`).

When ``redis-server`` is not installed the test is skipped with a clear
message, except in CI (the ``CI`` environment variable is set), where a missing
server fails the test: CI must run the Redis tests, not skip them silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

from resilience.testing import RedisServer, free_port
from resilience.testing import running_redis as _running_redis

__all__ = ["RedisServer", "free_port", "redis_server_binary", "running_redis"]


def redis_server_binary() -> str:
    """The path of ``redis-server``; skips the test (fails it in CI) when there is none."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    message = (
        "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; "
        "macOS: brew install redis)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so the Redis tests must run", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def running_redis(port: int | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` (skipped, or failed in CI, without one)."""
    with _running_redis(port, binary=redis_server_binary()) as server:
        yield server
