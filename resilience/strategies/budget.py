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
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Budget", "BudgetState", "RetryBudget"]


class Budget(Protocol):
    """What the engine asks of a retry budget (in memory or in a shared store)."""

    def record_failure(self) -> None: ...
    def record_success(self) -> None: ...
    def allows_retry(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Configuration of the retry budget.

    Attributes:
        max_tokens: size of the bucket (at most ``max_tokens / 2`` retries in a
            row while nothing succeeds).
        token_ratio: tokens given back by each answer that is not a failure
            (``0.2``: retries keep flowing while under about one attempt in six fails).
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.2

    def __post_init__(self) -> None:
        for name in ("max_tokens", "token_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"retry_budget.{name} must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"retry_budget.{name} must be > 0, got {value!r}")

    def new_state(self) -> BudgetState:
        """A fresh, full bucket (one per transport)."""
        return BudgetState(self)


class BudgetState:
    """The tokens of one transport; safe to share between threads and tasks."""

    __slots__ = ("_lock", "_tokens", "budget")

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget
        self._tokens = float(budget.max_tokens)
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """Tokens left."""
        return self._tokens

    def record_failure(self) -> None:
        """An attempt failed in a way the policy would retry."""
        with self._lock:
            self._tokens = max(0.0, self._tokens - 1.0)

    def record_success(self) -> None:
        """An attempt got an answer that is not a failure."""
        if self._tokens < self.budget.max_tokens:
            with self._lock:
                self._tokens = min(self.budget.max_tokens, self._tokens + self.budget.token_ratio)

    def allows_retry(self) -> bool:
        """Whether a retry may be sent now."""
        return self._tokens > self.budget.max_tokens / 2.0
