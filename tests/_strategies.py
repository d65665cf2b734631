"""Strategies seen one at a time: the retry budget and the circuit breaker over a store.

The probes call the real strategies through their protocol (``record``,
``before_attempt``, ``allows_retry``) for one host and region, with the clock
in the test's hands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from resilience import CircuitBreaker, RetryBudget
from resilience.stores import MemoryStore, Store
from resilience.strategies.base import Outcome, Refusal
from resilience.strategies.breaker import BreakerStrategy

__all__ = ["BudgetProbe", "CircuitProbe", "FakeCall"]


class FakeCall:
    """The call a strategy sees: a host and a region."""

    def __init__(self, host: str | None, region: str | None = None) -> None:
        self.host = host
        self.region = region
        self.vendor = "generic"
        self.headers: Mapping[str, str] | None = {}
        self.retry_after: float | None = None
        self.notes: dict[object, object] = {}


class BudgetProbe:
    """A retry budget of ``config`` keeping its tokens in ``store``."""

    def __init__(self, config: RetryBudget, store: Store | None = None) -> None:
        self.strategy = config.build(
            store if store is not None else MemoryStore(), wall=lambda: 0.0
        )
        self.call = FakeCall("api.example")

    @property
    def tokens(self) -> float:
        return self.strategy.tokens(0.0)

    def record_failure(self) -> None:
        self.strategy.record(self.call, Outcome.FAILURE, 0.0)

    def record_success(self) -> None:
        self.strategy.record(self.call, Outcome.SUCCESS, 0.0)

    def allows_retry(self) -> bool:
        return self.strategy.allows_retry(self.call, 0.0)


class CircuitProbe:
    """A circuit breaker of ``config`` over ``store``; the wall clock follows ``now``."""

    def __init__(self, config: CircuitBreaker, store: Store | None = None) -> None:
        self.now = 1_000_000.0
        self.strategy: BreakerStrategy = config.build(
            store if store is not None else MemoryStore(), wall=lambda: 1_000_000.0 + self.now
        )

    def record(self, key: tuple[str | None, str | None], failed: bool, now: float) -> None:
        self.now = now
        outcome = Outcome.FAILURE if failed else Outcome.SUCCESS
        self.strategy.record(FakeCall(*key), outcome, now)

    def allow(self, key: tuple[str | None, str | None], now: float) -> bool:
        self.now = now
        answer = self.strategy.before_attempt(FakeCall(*key), now, math.inf)
        return not isinstance(answer, Refusal)

    def state(self, key: tuple[str | None, str | None], now: float) -> str:
        return self.strategy.state(BreakerStrategy.circuit(*key), now)
