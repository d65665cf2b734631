"""The retry policy: every keyword of the transports, validated, frozen."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal

from typing_extensions import TypedDict, TypeVar, Unpack

from resilience.core import checks
from resilience.core.backoff import JITTERS, schedule
from resilience.core.records import RetryEvent
from resilience.detectors import Detector, rules_of
from resilience.instrumentation._hooks import Hook, check_hooks
from resilience.regions import HostMap, RegionLocator, check_locator, check_region
from resilience.stores import Store
from resilience.strategies.base import StrategyConfig
from resilience.strategies.breaker import CircuitBreaker
from resilience.strategies.budget import RetryBudget
from resilience.strategies.hedge import Hedge
from resilience.strategies.rate_limit import RateLimit

__all__ = ["DEFAULT_BUDGET", "STRATEGIES", "Jitter", "Policy", "PolicyOptions"]

#: The policy keywords that name a strategy, in the order the pipeline runs
#: them: the breaker fails fast before the rate limit reserves a slot; the
#: budget only hears outcomes and permits retries (and hedges); hedging says
#: when a late attempt gets a copy. A new strategy is one class with a
#: ``build`` method and one keyword here.
STRATEGIES = ("circuit_breaker", "rate_limit", "retry_budget", "hedge")

DEFAULT_BUDGET = RetryBudget()

#: The longest delay a policy may name (about 31 years): ``time.sleep`` and
#: ``threading`` refuse waits past ``threading.TIMEOUT_MAX`` with OverflowError.
MAX_SECONDS = checks.MAX_SECONDS

#: The names ``jitter`` accepts (see :mod:`resilience.core.backoff`).
Jitter = Literal["full", "equal", "decorrelated", "none"]

#: What ``on_retry`` and ``sleep`` may return: ``None`` for the sync shells,
#: which cannot await; anything for the async one, which awaits what is
#: awaitable.
_Returns = TypeVar("_Returns", default=object)


class PolicyOptions(TypedDict, Generic[_Returns], total=False):
    """The keyword arguments of :class:`Policy`, as a type (PEP 692).

    Every constructor that takes policy keywords types them with this one
    ``TypedDict``: ``**options: Unpack[PolicyOptions[...]]``. A misspelled
    keyword or a value of the wrong type is then an error for mypy and
    pyright, not only when the policy is built. The meaning and default of
    each key is in :class:`Policy`.

    The type parameter is what ``on_retry`` and ``sleep`` return.
    :class:`~resilience.ResilientTransport` and
    :class:`~resilience.ResilientAdapter` take ``PolicyOptions[None]``: they
    cannot await, so a coroutine function is a type error there (and a
    ``TypeError`` at run time). :class:`~resilience.AsyncResilientTransport`
    and :class:`Policy` take ``PolicyOptions[object]`` (the default): plain
    functions and coroutine functions alike.
    """

    max_attempts: int
    backoff_initial: float
    backoff_multiplier: float
    backoff_max: float
    jitter: Jitter
    respect_retry_after: bool
    retry_after_max: float
    deadline: float | None
    attempt_timeout: float | None
    retry_non_idempotent: bool
    idempotency_key: bool
    regions: Sequence[str] | None
    region_locator: RegionLocator | None
    capacity_retries: int
    conflict_delay: float
    vendor: str | None
    vendor_hosts: Mapping[str, str] | None
    detectors: Iterable[Detector] | None
    on_retry: Callable[[RetryEvent], _Returns] | None
    sleep: Callable[[float], _Returns] | None
    retry_budget: RetryBudget | None
    circuit_breaker: CircuitBreaker | bool | None
    rate_limit: RateLimit | None
    store: Store | None
    hedge: Hedge | None
    instrumentation: Sequence[Hook] | None


_SECONDS = (
    "backoff_initial",
    "backoff_max",
    "retry_after_max",
    "conflict_delay",
)
_FLAGS = ("respect_retry_after", "retry_non_idempotent", "idempotency_key")


@dataclass(frozen=True, slots=True)
class Policy:
    """How calls are retried. Every attribute is a keyword of the transports.

    Every keyword is checked here, when the policy is built (see
    :mod:`resilience.core.checks`): a value of the wrong type is a
    ``TypeError``, one out of range a ``ValueError``, and the message names the
    keyword. Flags are real bools (``"false"``, ``0`` and ``1`` are refused);
    counts real ints up to ``10**9``; durations ints or floats from ``0`` to ``1e9`` seconds
    (never NaN or infinite; ``10**400`` is a ``ValueError``), stored as floats.
    Where an object is expected (``store``, ``rate_limit``, ``region_locator``,
    a detector), a class is refused: pass an instance.

    Across keywords: a ``HostMap`` ``region_locator`` must map every one of
    ``regions`` (a failover it could not rewrite would resend to the same
    region). Allowed because they mean something: ``backoff_initial`` above
    ``backoff_max`` (the cap wins: every backoff delay is ``backoff_max``, and
    ``backoff_max=0`` retries without waiting); ``attempt_timeout`` above
    ``deadline`` (the deadline wins); ``vendor`` with ``vendor_hosts``
    (``vendor`` wins, as in :func:`resilience.classify`); ``capacity_retries``
    of ``max_attempts`` or more (the attempts run out first). Whether
    ``vendor`` and the values of ``vendor_hosts`` name known detectors is
    checked when a transport is built, since detectors may be registered after
    the policy is made.

    Attributes:
        max_attempts: attempts in total, the first included (``1``: never
            retry); an int from ``1`` to ``10**9``.
        backoff_initial: seconds before the first retry, before jitter.
        backoff_multiplier: growth of the delay per retry (``1.0``: constant),
            ``1`` to ``1e9``.
        backoff_max: cap on one backoff delay, before jitter (the first one
            included).
        jitter: ``"full"``, ``"equal"``, ``"decorrelated"`` or ``"none"``; the
            formulas are in :mod:`resilience.core.backoff`. Anything else,
            ``None`` included, is a ``ValueError`` listing these.
        respect_retry_after: wait what ``Retry-After`` says instead of backoff
            (``False``: ignore the header and use backoff).
        retry_after_max: a ``Retry-After`` longer than this is not waited (one
            equal to it is): the response is returned.
        deadline: seconds for the whole call, network time and sleeps
            included, ``> 0``; ``None``: no deadline. No sleep that would cross it is
            started, no attempt starts without time for it, each attempt's
            connect/read/write/pool timeouts are cut to the time left, the
            library's own reads of error bodies stop at it, and async attempts
            are cancelled at it. The error raised is the client's own timeout
            error. One case escapes a sync client: a server that drips the
            response *headers* byte by byte keeps the client's own parser
            reading, each byte resetting its read timeout.
        attempt_timeout: seconds for one attempt (Envoy's per-try timeout,
            Polly's attempt timeout), ``> 0``; an attempt that runs out counts
            as a read timeout, retried when the request is safe to repeat.
            ``None``: the client's own timeouts only.
        retry_non_idempotent: retry POST/PATCH after answers that may have been
            processed (5xx, read errors) even without an idempotency key.
        idempotency_key: add ``Idempotency-Key: <uuid4>`` to POST/PATCH requests
            that lack one, the same on every attempt.
        regions: ordered regions for ``CAPACITY`` failover (a list or tuple of
            distinct non-empty names, no control characters; a set has no
            order and is refused); ``None``: no failover.
        region_locator: where the region lives in the request; ``None``: where
            the vendor's detector says it lives (Gameye: JSON field
            ``location``); a vendor whose detector names none cannot fail over.
        capacity_retries: same-region retries on ``CAPACITY`` before failing
            over (``0``: fail over at once), each after the vendor's capacity
            wait (Gameye: 2-5 s), else the backoff; ``Retry-After`` wins.
        conflict_delay: least wait before retrying a ``CONFLICT_PENDING`` answer
            without ``Retry-After``.
        vendor: pin the vendor of every response (a non-empty str).
        vendor_hosts: host name (without port) -> vendor name (a mapping of
            non-empty strs), copied.
        detectors: detectors to use instead of the registered chain: an
            iterable (not a str) of detector instances, each with a non-empty
            ``name``, a bool ``success_body`` and valid optional hooks.
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
            every transport using it; a ``RedisStore`` answers from a local
            copy that a background thread keeps in step with Redis, so no call
            waits on the network.
        hedge: hedged requests (:class:`Hedge`): a late attempt of a request
            that is safe to send twice gets a copy, and the first usable
            answer wins (the others are cancelled and closed); copies spend
            the retry budget and count toward ``max_attempts``. ``None``
            (default): no hedging.
        instrumentation: the hooks observing this transport's attempts and
            calls (:mod:`resilience.instrumentation`); ``None`` (default): the
            process-wide ones (:func:`~resilience.instrumentation.set_hooks`,
            ``LoggingHook()`` unless set); ``[]``: none.
    """

    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 30.0
    jitter: Jitter = "full"
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
    on_retry: Callable[[RetryEvent], object] | None = None
    sleep: Callable[[float], object] | None = None
    retry_budget: RetryBudget | None = DEFAULT_BUDGET
    circuit_breaker: CircuitBreaker | None = None
    rate_limit: RateLimit | None = None
    store: Store | None = None
    hedge: Hedge | None = None
    instrumentation: tuple[Hook, ...] | None = None
    steps: tuple[float, ...] = field(init=False, repr=False, compare=False)

    if TYPE_CHECKING:
        # What type checkers see; the dataclass writes the real one. The
        # keywords accept more than the attributes hold (a list of regions
        # becomes a tuple, ``circuit_breaker=True`` the default breaker).
        def __init__(self, **options: Unpack[PolicyOptions]) -> None: ...

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: values are normalised once, here
        put(self, "max_attempts", checks.integer("max_attempts", self.max_attempts, low=1))
        put(
            self,
            "capacity_retries",
            checks.integer("capacity_retries", self.capacity_retries, low=0),
        )
        for name in _SECONDS:
            put(self, name, checks.number(name, getattr(self, name), unit=" seconds"))
        for name in ("deadline", "attempt_timeout"):
            value = getattr(self, name)
            if value is not None:
                put(self, name, checks.number(name, value, low_open=True, unit=" seconds"))
        put(
            self,
            "backoff_multiplier",
            checks.number("backoff_multiplier", self.backoff_multiplier, low=1.0),
        )
        checks.choice("jitter", self.jitter, JITTERS)
        for name in _FLAGS:
            checks.boolean(name, getattr(self, name))
        if self.regions is not None:
            put(self, "regions", _regions(self.regions))
        if self.region_locator is not None:
            check_locator("region_locator", self.region_locator)
            if isinstance(self.region_locator, HostMap) and self.regions:
                missing = [r for r in self.regions if r not in self.region_locator.bases]
                if missing:
                    raise ValueError(
                        f"regions names {missing[0]!r}, which region_locator (a HostMap) "
                        "has no base URL for: a failover there could not move the request"
                    )
        if self.vendor is not None:
            checks.text("vendor", self.vendor)
        if self.vendor_hosts is not None:
            put(self, "vendor_hosts", _vendor_hosts(self.vendor_hosts))
        if self.detectors is not None:
            put(self, "detectors", _detectors(self.detectors))
        for name in ("on_retry", "sleep"):
            checks.callable_or_none(name, getattr(self, name))
        if isinstance(self.circuit_breaker, bool):  # True: the default breaker
            put(self, "circuit_breaker", CircuitBreaker() if self.circuit_breaker else None)
        elif self.circuit_breaker is not None:
            checks.instance(
                "circuit_breaker",
                self.circuit_breaker,
                CircuitBreaker,
                "a resilience.CircuitBreaker, True or None",
            )
        if self.rate_limit is not None:
            checks.instance("rate_limit", self.rate_limit, RateLimit, "a resilience.RateLimit")
        if self.retry_budget is not None:
            checks.instance(
                "retry_budget", self.retry_budget, RetryBudget, "a resilience.RetryBudget or None"
            )
        if self.hedge is not None:
            checks.instance("hedge", self.hedge, Hedge, "a resilience.Hedge or None")
        if self.instrumentation is not None:
            put(self, "instrumentation", check_hooks(self.instrumentation, "instrumentation"))
        if self.store is not None:
            what = "a resilience.stores.Store (MemoryStore(), RedisStore(url))"
            checks.instance("store", self.store, Store, what)
            checks.methods("store", self.store, _STORE_METHODS, what)
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


_STORE_METHODS = ("take", "hold", "get", "get_many", "set", "incr")


def _regions(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes, Set, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(
            f"regions must be an ordered sequence of region names (a list or tuple), "
            f"not {checks.kind(value)}"
        )
    regions = tuple(value)
    for i, region in enumerate(regions):
        check_region(f"regions[{i}]", region)
    for i, region in enumerate(regions):
        if region in regions[:i]:
            raise ValueError(f"regions names {region!r} twice")
    return regions


def _vendor_hosts(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"vendor_hosts must be a mapping of host name to vendor name, not {checks.kind(value)}"
        )
    hosts: dict[str, str] = {}
    for host, vendor in value.items():
        checks.text("vendor_hosts key", host)
        checks.text(f"vendor_hosts[{host!r}]", vendor)
        hosts[host] = vendor
    return hosts


def _detectors(value: object) -> tuple[Detector, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"detectors must be an iterable of detectors, not {checks.kind(value)}")
    detectors = tuple(value)
    what = "a detector (name, success_body, matches(), classify())"
    for i, detector in enumerate(detectors):
        name = f"detectors[{i}]"
        checks.instance(name, detector, Detector, what)
        checks.methods(name, detector, ("matches", "classify"), what)
        checks.text(f"{name}.name", detector.name)
        checks.boolean(f"{name}.success_body", detector.success_body)
        try:
            rules_of(detector)  # a bad optional hook: here, not during a call
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from exc
    return detectors
