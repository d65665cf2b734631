"""The retry budget: bounds the load retries add while a vendor is down.

A token bucket in the spirit of gRPC retry throttling (gRFC A6): the bucket
starts full with ``max_tokens``; every failed attempt (a retryable answer or a
network error) takes one token, every other answer gives back ``token_ratio``;
a retry is allowed only while more than half of ``max_tokens`` remain.

It counts outcomes, not time, so the bound holds at any call rate: under a full
outage, after at most ``max_tokens / 2`` retries no call retries any more and
each logical call sends one request (a count of retries per second, such as a
Finagle budget's floor, would still triple the load of a client making one call
per second). Among successes a lone failure is still retried; retries resume
once enough successes have refilled the bucket.

The tokens are one value in the store, ``retry-budget``, moved by atomic
``incr`` within ``[0, max_tokens]``: a ``MemoryStore`` of its own per
transport by default, or a store shared by several transports or a fleet. A
full bucket is an absent value, so the success path writes nothing while
nothing fails; a bucket idle for an hour is forgotten (full again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resilience.core import checks
from resilience.stores.base import Store
from resilience.stores.memory import MemoryStore
from resilience.strategies.base import BaseStrategy, CallInfo, Outcome

__all__ = ["BudgetStrategy", "RetryBudget"]

KEY = "retry-budget"
IDLE = 3600.0
"""Seconds without any outcome after which the bucket is forgotten (full)."""


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Configuration of the retry budget (``retry_budget=`` of a policy).

    Attributes:
        max_tokens: size of the bucket (at most ``max_tokens / 2`` retries in a
            row while nothing succeeds); a number in ``(0, 1e9]``.
        token_ratio: tokens given back by each answer that is not a failure
            (``0.2``: retries keep flowing while under about one attempt in six
            fails); a number in ``(0, 1e9]``. A ratio of ``max_tokens`` or more
            refills the whole bucket on every success.

    Raises:
        TypeError: a value is not a number (a bool is not one).
        ValueError: a value is out of range (NaN, infinite, ``<= 0``, too large).
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.2

    def __post_init__(self) -> None:
        for name in ("max_tokens", "token_ratio"):
            value = checks.number(f"retry_budget.{name}", getattr(self, name), low_open=True)
            object.__setattr__(self, name, value)

    def build(self, store: Store, wall: Callable[[], float]) -> BudgetStrategy:
        """The strategy, keeping its tokens in ``store``."""
        return BudgetStrategy(self, store)


class BudgetStrategy(BaseStrategy):
    """The retry budget as a strategy: records outcomes, permits retries."""

    __slots__ = ("_half", "_holds", "_ratio", "_top", "config", "store")

    refusal = "retry budget exhausted"

    def __init__(self, config: RetryBudget, store: Store) -> None:
        self.config = config
        self.store = store
        self._top = float(config.max_tokens)
        self._half = self._top / 2.0
        self._ratio = float(config.token_ratio)
        # In a MemoryStore a full bucket is an absent key, which a success
        # leaves absent: asking whether the key is held is enough to skip
        # the store's ``incr`` on the success path.
        self._holds = store.holds if type(store) is MemoryStore else None

    def tokens(self, now: float) -> float:
        """Tokens left."""
        value = self.store.get(KEY, now)
        return self._top if value is None else value

    def record(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        """A success gives back ``token_ratio``; any other outcome takes one token."""
        if outcome is Outcome.SUCCESS:
            holds = self._holds
            if holds is not None and not holds(KEY):
                return  # full, and a success cannot add to a full bucket
            amount = self._ratio
        else:
            amount = -1.0
        self.store.incr(KEY, amount, IDLE, now, initial=self._top, low=0.0, high=self._top)

    def allows_retry(self, call: CallInfo, now: float) -> bool:
        """Whether more than half the tokens remain."""
        return self.tokens(now) > self._half
