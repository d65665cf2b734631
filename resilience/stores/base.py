"""The store protocol and the token-bucket arithmetic every store shares."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from resilience.core import checks

__all__ = ["Bucket", "Store", "check_cost", "check_ttl", "full_at", "refill", "wait_for"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket: refills at ``rate`` tokens per second, holds at most ``capacity``.

    A bucket that does not exist yet, or has expired, is full.

    Attributes:
        key: the bucket's name in the store (a :class:`RedisStore` prepends its
            prefix). Buckets and values must not share a key.
        rate: tokens added per second, ``> 0``.
        capacity: the most tokens the bucket holds, ``> 0`` (the burst).
    """

    key: str
    rate: float
    capacity: float

    def __post_init__(self) -> None:
        if not isinstance(self.key, str):  # any str: a RedisStore escapes what UTF-8 cannot encode
            raise TypeError(f"Bucket.key must be a str, not {checks.kind(self.key)}")
        for name in ("rate", "capacity"):
            value = checks.number(f"Bucket.{name}", getattr(self, name), low_open=True)
            object.__setattr__(self, name, value)


@runtime_checkable
class Store(Protocol):
    """The atomic operations shared state needs.

    Every method is atomic on its own, safe to call from any thread, and returns
    promptly; ``now`` is the caller's monotonic clock in seconds (see the module
    docstring for how each store uses it).
    """

    def take(
        self, buckets: Sequence[Bucket], cost: float, now: float, max_wait: float = math.inf
    ) -> float:
        """Reserve ``cost`` tokens in every bucket, or say how long that would wait.

        Each bucket is first refilled: ``tokens = min(capacity, tokens +
        elapsed * rate)``. A request may go once every bucket holds
        ``min(cost, capacity)`` tokens, so its wait is the largest of
        ``max(0, min(cost, capacity) - tokens) / rate`` (plus any time still
        held, see :meth:`hold`). When that wait is at most ``max_wait``,
        ``cost`` is taken from every bucket at once: a bucket may go below zero,
        the debt being the requests already given a later slot. Otherwise
        nothing changes.

        Args:
            buckets: the buckets, all taken or none.
            cost: tokens to take from each, ``>= 0``.
            now: the caller's monotonic time in seconds.
            max_wait: the longest acceptable wait; a negative value only measures.

        Returns:
            Seconds to wait before sending (``0.0``: now); the tokens were taken
            if and only if this is ``<= max_wait``.
        """
        ...

    def hold(
        self, buckets: Sequence[Bucket], seconds: float, now: float, cost: float = 1.0
    ) -> None:
        """Grant no slot before ``seconds`` from now, then one of ``cost``, then the rate.

        Each bucket is left holding ``min(cost, capacity)`` tokens at the end of
        the hold and refills only from then on: one request may go at that
        moment, the next ones at the rate, with no burst. A hold never
        shortens a longer wait already in place (it applies only where the
        bucket would otherwise grant that request sooner), so many 429s
        answering requests already in flight do not add up.
        """
        ...

    def get(self, key: str, now: float) -> float | None:
        """The value stored under ``key``, or ``None`` when absent or expired."""
        ...

    def get_many(self, keys: Sequence[str], now: float) -> list[float | None]:
        """The values under ``keys`` (``None`` where absent or expired), read at once.

        Keys read together must share a ``{hash tag}`` for Redis Cluster.
        """
        ...

    def set(self, key: str, value: float, ttl: float, now: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``> 0``)."""
        ...

    def incr(
        self,
        key: str,
        amount: float,
        ttl: float,
        now: float,
        *,
        initial: float = 0.0,
        low: float = -math.inf,
        high: float = math.inf,
    ) -> float:
        """Add ``amount`` to the value under ``key`` and return the new value.

        The value is ``initial`` when absent or expired; the result is clamped to
        ``[low, high]`` and kept for ``ttl`` seconds from now. A result equal to
        ``initial`` may be forgotten instead (absent and ``initial`` mean the
        same), so :meth:`get` then answers ``None``: callers read that as
        ``initial``.
        """
        ...


# --- the bucket arithmetic, once (RedisStore's Lua scripts mirror it) ----------------


def refill(state: tuple[float, float] | None, bucket: Bucket, now: float) -> tuple[float, float]:
    """``(tokens, at)`` brought forward to ``now``; ``at`` may lie ahead while held."""
    if state is None:
        return bucket.capacity, now
    tokens, at = state
    if now > at:
        tokens, at = tokens + (now - at) * bucket.rate, now
    return min(bucket.capacity, tokens), at


def wait_for(tokens: float, at: float, bucket: Bucket, cost: float, now: float) -> float:
    return (at - now) + max(0.0, min(cost, bucket.capacity) - tokens) / bucket.rate


def full_at(tokens: float, at: float, bucket: Bucket) -> float:
    """When the bucket is full again, and may be forgotten."""
    return at + max(0.0, bucket.capacity - tokens) / bucket.rate


def check_cost(value: float, name: str = "cost") -> None:
    """``value`` is a finite number ``>= 0`` (a cost, a hold's seconds)."""
    if type(value) is float and 0.0 <= value <= sys.float_info.max:
        return  # the store's hot path: no more to check (NaN fails the comparison)
    checks.number(name, value, high=sys.float_info.max)


def check_ttl(ttl: float) -> None:
    """``ttl`` is a finite number of seconds ``> 0``."""
    if type(ttl) is float and 0.0 < ttl <= sys.float_info.max:
        return  # the store's hot path (see check_cost)
    checks.number("ttl", ttl, low_open=True, high=sys.float_info.max)
