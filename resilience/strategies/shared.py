"""The retry budget and the circuit breaker kept in a :class:`~resilience.stores.Store`.

With ``store=RedisStore(...)`` every process (and machine) using the same Redis
shares one retry budget and one set of circuits, so a fleet stops retrying,
and fails fast, together. The rules are those of :mod:`resilience.strategies.budget` and
:mod:`resilience.strategies.breaker`; only where the numbers live changes:

* budget: one value, ``retry-budget``, moved by atomic ``incr`` within
  ``[0, max_tokens]``;
* breaker: per ``host|region``, outcome counts in two consecutive buckets of
  ``window / 2`` seconds of wall-clock time (the current one and the previous
  one weighted by how much of it still lies in the window: the sliding-window
  estimate), an ``open`` marker that expires after ``open_for``, a ``tripped``
  marker that makes the next request a half-open probe, and a probe counter.

Each operation is a few store round trips (one per value); every key expires.
Wall-clock time is used for bucket boundaries because processes on different
machines share no monotonic clock; a skew of a second or two only shifts
bucket edges.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from resilience.stores import Store
from resilience.strategies.breaker import CircuitBreaker
from resilience.strategies.budget import RetryBudget

__all__ = ["SharedBreakerState", "SharedBudgetState"]

_BUDGET_KEY = "retry-budget"
_BUDGET_TTL = 3600.0


class SharedBudgetState:
    """A :class:`~resilience.RetryBudget` whose tokens live in ``store``."""

    __slots__ = ("budget", "clock", "store")

    def __init__(
        self, budget: RetryBudget, store: Store, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget
        self.store = store
        self.clock = clock

    @property
    def tokens(self) -> float:
        """Tokens left."""
        value = self.store.get(_BUDGET_KEY, self.clock())
        return self.budget.max_tokens if value is None else value

    def _add(self, amount: float) -> None:
        top = self.budget.max_tokens
        self.store.incr(
            _BUDGET_KEY, amount, _BUDGET_TTL, self.clock(), initial=top, low=0.0, high=top
        )

    def record_failure(self) -> None:
        """An attempt failed in a way the policy would retry."""
        self._add(-1.0)

    def record_success(self) -> None:
        """An attempt got an answer that is not a failure."""
        self._add(self.budget.token_ratio)

    def allows_retry(self) -> bool:
        """Whether a retry may be sent now."""
        return self.tokens > self.budget.max_tokens / 2.0


class SharedBreakerState:
    """A :class:`~resilience.CircuitBreaker` whose circuits live in ``store``."""

    __slots__ = ("config", "store", "wall")

    def __init__(
        self, config: CircuitBreaker, store: Store, wall: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.store = store
        self.wall = wall

    @staticmethod
    def _name(key: tuple[str | None, str | None]) -> str:
        host, region = key
        return f"breaker:{host or ''}|{region or ''}"

    def _flag(self, name: str, now: float) -> bool:
        value = self.store.get(name, now)
        return value is not None and value > 0

    def state(self, key: tuple[str | None, str | None], now: float) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        name = self._name(key)
        if self._flag(name + ":open", now):
            return "open"
        return "half_open" if self._flag(name + ":tripped", now) else "closed"

    def allow(self, key: tuple[str | None, str | None], now: float) -> bool:
        """Whether a request may be sent now (takes a probe slot if half-open)."""
        name = self._name(key)
        state = self.state(key, now)
        if state == "closed":
            return True
        if state == "open":
            return False
        probes = self.store.incr(name + ":probes", 1.0, self.config.open_for, now, low=0.0)
        if probes <= self.config.probes:
            return True
        self.store.incr(name + ":probes", -1.0, self.config.open_for, now, low=0.0)
        return False

    def _open(self, name: str, now: float) -> None:
        config = self.config
        self.store.set(name + ":open", 1.0, config.open_for, now)
        self.store.set(name + ":tripped", 1.0, config.open_for + config.window, now)
        self.store.set(name + ":probes", 0.0, config.open_for, now)
        self.store.incr(name + ":gen", 1.0, config.window * 4, now)

    def record(self, key: tuple[str | None, str | None], failed: bool, now: float) -> None:
        """Count one outcome of a request sent to ``key``."""
        config = self.config
        name = self._name(key)
        state = self.state(key, now)
        if state == "open":
            return
        if state == "half_open":
            if failed:
                self._open(name, now)
            else:
                self.store.set(name + ":tripped", 0.0, config.window, now)
                self.store.incr(name + ":gen", 1.0, config.window * 4, now)
            return
        width = config.window / 2.0
        wall = self.wall()
        index = math.floor(wall / width)
        generation = int(self.store.get(name + ":gen", now) or 0)
        base = f"{name}:{generation}:"
        ttl = config.window * 1.5
        total = self.store.incr(f"{base}{index}:n", 1.0, ttl, now)
        failures = self.store.incr(f"{base}{index}:f", float(failed), ttl, now)
        # The previous bucket counts for the part of it still inside the window.
        weight = 1.0 - (wall - index * width) / width
        total += weight * (self.store.get(f"{base}{index - 1}:n", now) or 0.0)
        failures += weight * (self.store.get(f"{base}{index - 1}:f", now) or 0.0)
        if total >= config.min_calls and failures / total >= config.failure_ratio:
            self._open(name, now)
