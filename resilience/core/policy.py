"""The retry policy: every keyword of the transports, validated, frozen."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resilience.core.backoff import JITTERS, schedule
from resilience.detectors import Detector
from resilience.regions import RegionLocator
from resilience.stores import Store
from resilience.strategies.base import StrategyConfig
from resilience.strategies.breaker import CircuitBreaker
from resilience.strategies.budget import RetryBudget
from resilience.strategies.rate_limit import RateLimit

__all__ = ["DEFAULT_BUDGET", "STRATEGIES", "Policy"]

#: The policy keywords that name a strategy, in the order the pipeline runs
#: them: the breaker fails fast before the rate limit reserves a slot; the
#: budget only hears outcomes and permits retries. A new strategy is one
#: class with a ``build`` method and one keyword here.
STRATEGIES = ("circuit_breaker", "rate_limit", "retry_budget")

DEFAULT_BUDGET = RetryBudget()

#: The longest delay a policy may name (about 31 years): ``time.sleep`` and
#: ``threading`` refuse waits past ``threading.TIMEOUT_MAX`` with OverflowError.
MAX_SECONDS = 1e9


def _number(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if value > MAX_SECONDS:
        raise ValueError(f"{name} must be at most {MAX_SECONDS:g} seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class Policy:
    """How calls are retried. Every attribute is a keyword of the transports.

    Attributes:
        max_attempts: attempts in total, the first included (``1``: never retry).
        backoff_initial: seconds before the first retry, before jitter.
        backoff_multiplier: growth of the delay per retry (``1.0``: constant).
        backoff_max: cap on one backoff delay, before jitter.
        jitter: ``"full"``, ``"equal"``, ``"decorrelated"`` or ``"none"``; the
            formulas are in :mod:`resilience.core.backoff`.
        respect_retry_after: wait what ``Retry-After`` says instead of backoff
            (``False``: ignore the header and use backoff).
        retry_after_max: a ``Retry-After`` longer than this is not waited (one
            equal to it is): the response is returned.
        deadline: seconds for the whole call, network time and sleeps
            included; ``None``: no deadline. No sleep that would cross it is
            started, no attempt starts without time for it, each attempt's
            connect/read/write/pool timeouts are cut to the time left, the
            library's own reads of error bodies stop at it, and async attempts
            are cancelled at it. The error raised is the client's own timeout
            error. One case escapes a sync client: a server that drips the
            response *headers* byte by byte keeps the client's own parser
            reading, each byte resetting its read timeout.
        attempt_timeout: seconds for one attempt (Envoy's per-try timeout,
            Polly's attempt timeout); an attempt that runs out counts as a read
            timeout, retried when the request is safe to repeat. ``None``: the
            client's own timeouts only.
        retry_non_idempotent: retry POST/PATCH after answers that may have been
            processed (5xx, read errors) even without an idempotency key.
        idempotency_key: add ``Idempotency-Key: <uuid4>`` to POST/PATCH requests
            that lack one, the same on every attempt.
        regions: ordered regions for ``CAPACITY`` failover; ``None``: no failover.
        region_locator: where the region lives in the request; ``None``: where
            the vendor's detector says it lives (Gameye: JSON field
            ``location``); a vendor whose detector names none cannot fail over.
        capacity_retries: same-region retries on ``CAPACITY`` before failing
            over (``0``: fail over at once), each after the vendor's capacity
            wait (Gameye: 2-5 s), else the backoff; ``Retry-After`` wins.
        conflict_delay: least wait before retrying a ``CONFLICT_PENDING`` answer
            without ``Retry-After``.
        vendor: pin the vendor of every response.
        vendor_hosts: host name (without port) -> vendor name.
        detectors: detectors to use instead of the registered chain.
        on_retry: called with a :class:`RetryEvent` before each wait (a
            coroutine function works with the async transport).
        sleep: the sleep to use (``None``: :func:`time.sleep` /
            :func:`asyncio.sleep`).
        retry_budget: bounds the retries of all calls through one transport
            (:class:`RetryBudget`); ``None`` turns the bound off.
        circuit_breaker: a :class:`CircuitBreaker` per host and region, or
            ``True`` for the default one; ``None`` (default): no breaker.
        rate_limit: client-side pacing (:class:`RateLimit`) per host or per
            ``RateLimit.key``, adaptive on 429; ``None`` (default): no pacing.
        store: where the retry budget, the circuit breaker and the rate
            limiter keep their state. ``None`` (default): in this transport's
            memory. A store (``MemoryStore()`` shared by several transports, or
            :class:`resilience.stores.RedisStore` for a fleet) shares them with
            every transport using it; each attempt then costs a few store
            operations (network round trips with Redis).
    """

    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 30.0
    jitter: str = "full"
    respect_retry_after: bool = True
    retry_after_max: float = 60.0
    deadline: float | None = None
    attempt_timeout: float | None = None
    retry_non_idempotent: bool = False
    idempotency_key: bool = False
    regions: tuple[str, ...] | None = None
    region_locator: RegionLocator | None = None
    capacity_retries: int = 1
    conflict_delay: float = 2.0
    vendor: str | None = None
    vendor_hosts: Mapping[str, str] | None = None
    detectors: tuple[Detector, ...] | None = None
    on_retry: Callable[[Any], Any] | None = None
    sleep: Callable[[float], Any] | None = None
    retry_budget: RetryBudget | None = DEFAULT_BUDGET
    circuit_breaker: CircuitBreaker | None = None
    rate_limit: RateLimit | None = None
    store: Store | None = None
    steps: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        if isinstance(self.capacity_retries, bool) or not isinstance(self.capacity_retries, int):
            raise TypeError("capacity_retries must be an int")
        if self.capacity_retries < 0:
            raise ValueError(f"capacity_retries must be >= 0, got {self.capacity_retries!r}")
        for name in ("backoff_initial", "backoff_max", "retry_after_max", "conflict_delay"):
            _number(name, getattr(self, name))
        _number("deadline", self.deadline, allow_none=True)
        _number("attempt_timeout", self.attempt_timeout, allow_none=True)
        _number("backoff_multiplier", self.backoff_multiplier)
        if self.backoff_multiplier < 1:
            raise ValueError(f"backoff_multiplier must be >= 1, got {self.backoff_multiplier!r}")
        if self.jitter not in JITTERS:
            raise ValueError(
                f"jitter must be one of {', '.join(sorted(JITTERS))}; got {self.jitter!r}"
            )
        if self.regions is not None:
            if isinstance(self.regions, (str, bytes)) or not isinstance(self.regions, Iterable):
                raise TypeError("regions must be a sequence of region names")
            regions = tuple(self.regions)
            if not all(isinstance(r, str) and r for r in regions):
                raise ValueError("regions must hold non-empty strings")
            object.__setattr__(self, "regions", regions)
        if self.region_locator is not None and not isinstance(self.region_locator, RegionLocator):
            raise TypeError("region_locator needs region_of() and with_region()")
        if self.detectors is not None:
            object.__setattr__(self, "detectors", tuple(self.detectors))
        if self.vendor_hosts is not None:
            object.__setattr__(self, "vendor_hosts", dict(self.vendor_hosts))
        for name in ("on_retry", "sleep"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable")
        if isinstance(self.circuit_breaker, bool):  # True: the default breaker
            object.__setattr__(
                self, "circuit_breaker", CircuitBreaker() if self.circuit_breaker else None
            )
        elif self.circuit_breaker is not None and not isinstance(
            self.circuit_breaker, CircuitBreaker
        ):
            raise TypeError("circuit_breaker must be a resilience.CircuitBreaker, True or None")
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise TypeError("rate_limit must be a resilience.RateLimit or None")
        if self.store is not None and not isinstance(self.store, Store):
            raise TypeError("store must be a resilience.stores.Store (MemoryStore, RedisStore)")
        if self.retry_budget is not None and not isinstance(self.retry_budget, RetryBudget):
            raise TypeError("retry_budget must be a resilience.RetryBudget or None")
        object.__setattr__(
            self,
            "steps",
            schedule(
                self.backoff_initial,
                self.backoff_multiplier,
                self.backoff_max,
                self.max_attempts - 1,
            ),
        )

    @property
    def strategies(self) -> tuple[StrategyConfig, ...]:
        """The configured strategies, in pipeline order (see :data:`STRATEGIES`)."""
        found = (getattr(self, name) for name in STRATEGIES)
        return tuple(config for config in found if config is not None)

    @classmethod
    def from_kwargs(cls, policy: Policy | None, options: Mapping[str, Any]) -> Policy:
        """``policy`` with ``options`` applied (a new default policy if ``None``)."""
        if policy is None:
            return cls(**options)
        if not isinstance(policy, Policy):
            raise TypeError("policy must be a resilience.Policy")
        if not options:
            return policy
        from dataclasses import fields, replace

        names = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        return replace(policy, **options)
