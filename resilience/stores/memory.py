"""State for one process: :class:`MemoryStore`."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Sequence

from resilience.stores.base import Bucket, check_cost, check_ttl, full_at, refill, wait_for

__all__ = ["MemoryStore"]

_MAX_FLOAT = sys.float_info.max


class MemoryStore:
    """State for one process, guarded by a lock.

    Uses the ``now`` it is given, so every caller of one ``MemoryStore`` must use
    the same clock. Expired entries are swept every few hundred writes.
    """

    __slots__ = ("_buckets", "_lock", "_values", "version")

    _SWEEP_EVERY = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (tokens, at, expires); key -> (value, expires)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._values: dict[str, tuple[float, float]] = {}
        #: A number that changes whenever a stored value or bucket does (not
        #: when one merely expires): a reader that saw no change since its last
        #: read may keep what it read, as the circuit breaker does.
        self.version = 0

    def __len__(self) -> int:
        """Entries held, the expired ones not swept yet included."""
        return len(self._buckets) + len(self._values)

    def take(
        self, buckets: Sequence[Bucket], cost: float, now: float, max_wait: float = math.inf
    ) -> float:
        """See :meth:`Store.take`."""
        if type(cost) is not float or not 0.0 <= cost <= _MAX_FLOAT:
            check_cost(cost)
        with self._lock:
            table = self._buckets
            if len(buckets) == 1:
                # One window, the common limit: the arithmetic of refill,
                # wait_for and full_at inlined, without the lists of the general case.
                b = buckets[0]
                capacity, rate = b.capacity, b.rate
                entry = table.get(b.key)
                if entry is None or entry[2] <= now:
                    tokens, at = capacity, now  # absent or expired: full
                else:
                    tokens, at = entry[0], entry[1]
                    if now > at:
                        tokens, at = tokens + (now - at) * rate, now
                    if tokens > capacity:
                        tokens = capacity
                short = (cost if cost < capacity else capacity) - tokens
                wait = (at - now) + (short if short > 0.0 else 0.0) / rate
                if wait < 0.0:
                    wait = 0.0
                if wait <= max_wait:
                    tokens -= cost
                    empty = capacity - tokens
                    table[b.key] = (tokens, at, at + (empty if empty > 0.0 else 0.0) / rate)
                    self._wrote(now)
                return wait
            states: list[tuple[float, float]] = []
            wait = 0.0
            for b in buckets:
                entry = table.get(b.key)
                if entry is None or entry[2] <= now:
                    tokens, at = b.capacity, now  # absent or expired: full
                else:
                    tokens, at = refill((entry[0], entry[1]), b, now)
                states.append((tokens, at))
                wait = max(wait, wait_for(tokens, at, b, cost, now))
            if wait <= max_wait:
                for (tokens, at), b in zip(states, buckets, strict=True):
                    tokens -= cost
                    table[b.key] = (tokens, at, full_at(tokens, at, b))
                self._wrote(now)
            return wait

    def hold(
        self, buckets: Sequence[Bucket], seconds: float, now: float, cost: float = 1.0
    ) -> None:
        """See :meth:`Store.hold`."""
        check_cost(seconds, "seconds")
        check_cost(cost)
        until = now + seconds
        with self._lock:
            for b in buckets:
                tokens, at = refill(self._bucket(b.key, now), b, now)
                if until > now + wait_for(tokens, at, b, cost, now):
                    tokens, at = min(b.capacity, cost), until
                    self._buckets[b.key] = (tokens, at, full_at(tokens, at, b))
            self._wrote(now)

    def get(self, key: str, now: float) -> float | None:
        """See :meth:`Store.get`."""
        entry = self._values.get(key)  # one dict read: atomic, no lock needed
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def set(self, key: str, value: float, ttl: float, now: float) -> None:
        """See :meth:`Store.set`."""
        check_ttl(ttl)
        with self._lock:
            self._values[key] = (float(value), now + ttl)
            self._wrote(now)

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
        """See :meth:`Store.incr`."""
        check_ttl(ttl)
        if key not in self._values and max(low, min(high, initial + amount)) == initial:
            # Absent is ``initial``, and so is the result: nothing to write (a
            # full retry budget hearing of a success). A racing writer is no
            # different from one that came just after.
            return initial
        with self._lock:
            values = self._values  # inside the lock: a sweep replaces the dict
            entry = values.get(key)
            value = initial if entry is None or entry[1] <= now else entry[0]
            value = max(low, min(high, value + amount))
            if value == initial:
                values.pop(key, None)  # back to where an absent value starts
            else:
                values[key] = (value, now + ttl)
            self._wrote(now)
            return value

    def get_many(self, keys: Sequence[str], now: float) -> list[float | None]:
        """See :meth:`Store.get_many`."""
        values = self._values
        out: list[float | None] = []
        for key in keys:
            entry = values.get(key)  # one dict read: atomic, no lock needed
            out.append(None if entry is None or entry[1] <= now else entry[0])
        return out

    def put(self, key: str, value: float | None, expires: float) -> None:
        """Store ``value`` under ``key`` until the time ``expires`` (``None``: forget it).

        Not part of :class:`Store`: a :class:`RedisStore` keeps its local copy of
        the values its process uses this way, with what Redis answered.
        """
        with self._lock:
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = (float(value), expires)
            self.version += 1

    def holds(self, key: str) -> bool:
        """Whether a value is stored under ``key`` (expired or not)."""
        return key in self._values

    def after_fork(self) -> None:
        """A new lock in a child process (the parent's may have been held when it forked)."""
        self._lock = threading.Lock()

    def purge(self, now: float) -> int:
        """Drop every expired entry now; returns the number of entries left."""
        with self._lock:
            self._sweep(now)
            return len(self._buckets) + len(self._values)

    def _bucket(self, key: str, now: float) -> tuple[float, float] | None:
        entry = self._buckets.get(key)
        if entry is None or entry[2] <= now:
            return None
        return entry[0], entry[1]

    def _wrote(self, now: float) -> None:
        self.version += 1
        if self.version % self._SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        # New dicts rather than deletions: a dict never shrinks its table, so
        # after a burst of 100,000 hosts the memory would stay taken.
        self._buckets = {k: e for k, e in self._buckets.items() if e[2] > now}
        self._values = {k: e for k, e in self._values.items() if e[1] > now}
