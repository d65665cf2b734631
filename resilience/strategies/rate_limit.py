"""Client-side pacing per vendor key or host, adaptive on 429.

:class:`RateLimit` is the configuration (``rate_limit=`` of a policy);
:class:`RateLimiter` the state, one per transport, kept in a
:class:`~resilience.stores.Store` (in memory, or in Redis to share one vendor
key's limit between processes and machines). Like the rest of the core it does
no I/O of its own and never sleeps or reads a clock: the caller passes ``now``
(monotonic seconds) and receives how long to wait, or a refusal.

Pacing. Each configured window is a token bucket (``per_second`` = n per 1 s,
``per_minute`` per 60 s, ``per_day`` per 86 400 s)::

    rate_w     = n_w / W_w             tokens per second
    capacity_w = burst                 (default 1: strict pacing)

A request costs ``c = 1 / f`` tokens in every bucket, ``f`` being the adaptive
factor below (``1`` while the vendor is happy). It may go once every bucket
holds ``min(c, capacity_w)`` tokens::

    wait = max over w of  max(0, min(c, capacity_w) - tokens_w) / rate_w

and ``c`` is taken from every bucket at once (a bucket may go negative: the
debt is the requests already given a later slot), so concurrent callers get
successive slots rather than a thundering herd. In any W_w seconds at most
``f * n_w + burst`` requests leave (``n_w + 1`` with the defaults); the
smallest ``n_w / W_w`` sets the long-run rate (``per_minute=120`` with
``per_day=10_000`` paces at one request per 8.64 s once the burst is spent).

Adaptive decrease and recovery, in the spirit of the AWS SDKs' "adaptive"
retry mode (botocore's ``CubicCalculator``), but on the factor ``f``, a
fraction of the configured plan, so that one set of constants fits 1 request
per second and 10,000 per day alike. On a 429 at ``t0``::

    W_max = f                                  (the factor that was too fast)
    f0    = max(F_MIN, BETA * W_max)           BETA = 0.7, F_MIN = 0.05

and when the server announces its quota (``RateLimit-Policy: q;w=W``),
``W_max`` is first lowered to ``(q / W) / plan_rate``, ``plan_rate`` being the
smallest ``n_w / W_w``. On each later success at ``t``::

    f = min(1, max(f, W_max + (W_max - f0) * ((t - t0) / K - 1) ** 3))

with ``K = recovery`` seconds: ``f`` is ``f0`` at ``t0``, climbs back to
``W_max`` at ``t0 + K`` (concave: fast, then careful near the rate that
failed), then probes beyond it (convex) up to the plan. That is botocore's
``C * (t - t0 - K) ** 3 + W_max`` with ``C = W_max * (1 - BETA) / K ** 3``,
the time to recover being chosen rather than the constant ``C``. A 429 less
than one second after the last decrease lowers nothing more: it answers a
request sent before the rate was lowered.

Holds. A 429 also blocks every caller of the same key (through the store, so
every process) until the server says sending may resume: ``Retry-After``
first; else the reset of an exhausted window in ``RateLimit`` (``r=0;t=S``,
draft-ietf-httpapi-ratelimit-headers-08 and later; ``remaining=0, reset=S`` in
-07), in ``RateLimit-Remaining`` / ``RateLimit-Reset`` (drafts -03 to -06), or
in ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (seconds, or an epoch
time when ``wall_now`` is given) or Discord's ``X-RateLimit-Reset-After``
(seconds). An item with a malformed field is ignored whole (draft section 7).
A success whose headers say no request is left (remaining ``0``) holds in the
same way, before any 429. After a hold one request goes, then the (lowered)
rate: no burst. Holds are capped at a day.

Why not ``limits`` or ``pyrate-limiter``. Both are mature, with Redis
backends, but neither expresses what this limiter needs. ``limits`` answers
allow/deny (``hit``, ``test``, ``get_window_stats``) for a fixed
``RateLimitItem`` whose amount is part of its storage key, so a rate lowered
after a 429 starts from a fresh, empty counter, and there is no "not before"
hold; its moving window stores one entry per request (10,000 for a per-day
limit). ``pyrate-limiter`` also logs every request per rate, fixes rates when
a bucket is built, and either raises or sleeps itself (``max_delay``), where
our engine must receive the wait as a value and sleep through the transport's
injectable ``sleep`` (sync or async). A token bucket per window is two numbers,
a reservation answers "wait s" directly, a per-call cost makes the adaptive
rate free, and one Lua script per operation makes it atomic in Redis; the
whole is smaller than an adapter around either library would be, and adds no
required dependency.

State: the buckets and holds live in the store (shared by every process using
it); the adaptive factor is each limiter's own, in its process.

Leases. Over a :class:`~resilience.stores.MemoryStore`, when a key's buckets
hold plenty of tokens a limiter takes the tokens of ``LEASE_SECONDS`` at the
slowest rate at once (at most a quarter of the burst, at most ``LEASE_MAX``
requests, and only when that is at least two) and hands them out itself for
``LEASE_SECONDS``: a request then costs a counter, not a locked store
operation. Every request still spends a token of the store, taken when there
was one, so the bounds above hold; tokens of a lease unused when it lapses
are lost, which only ever paces more strictly (at most ``LEASE_SECONDS`` of
tokens per lease, a small share of a limit that fast). A hold ends this
limiter's lease for the key at once (another limiter sharing the store may
still send what is left of its own, for at most ``LEASE_SECONDS``), and a key
whose rate is lowered (after a 429, until it has recovered) takes no lease.
When tokens are scarce the take of a lease fails and each request takes its
own token, as without leases. A :class:`RedisStore` leases on its own, per process. Safe to share
between threads and asyncio tasks: the limiter's own state sits behind a lock
held for a few arithmetic operations (never across an ``await`` or a store
call), and every store operation is atomic.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import overload

from resilience.core import checks
from resilience.core.classification import Category, Classification
from resilience.errors import RateLimited
from resilience.stores.base import Bucket, Store
from resilience.stores.memory import MemoryStore
from resilience.strategies.base import BaseStrategy, CallInfo, Outcome, Refusal
from resilience.strategies.limit_headers import LimitHeaders, announces_limits, read_limit_headers

__all__ = ["LimitHeaders", "RateLimit", "RateLimiter", "read_limit_headers"]

BETA = 0.7
"""Multiplicative decrease on a 429 (botocore's ``_BETA``)."""
F_MIN = 0.05
"""The factor never drops below a twentieth of the plan."""
DECREASE_GAP = 1.0
"""Seconds after a decrease during which another 429 lowers nothing more."""
MAX_HOLD = 86_400.0
"""The longest hold any header can impose."""

_WINDOWS = (("per_second", 1.0), ("per_minute", 60.0), ("per_day", 86_400.0))
_MADE_MAX = 128

LEASE_SECONDS = 0.01
"""How long a limiter's lease of tokens lasts, and how many it takes (that many
seconds' worth at the slowest window's rate); see the module docstring."""
LEASE_MAX = 64
"""The most requests one lease serves."""

MIN_RATE = 1e-6
"""The slowest window: one request per million seconds (11.6 days), so that a
bucket's refill time, and with it its expiry in the store, stays finite and
within what Redis takes in milliseconds."""
MAX_COUNT = 1e9
"""The most requests a window or a burst may name."""
MIN_RECOVERY = 1e-3
"""The shortest ``recovery``: the recovery curve divides by it, cubed."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Client-side pacing: the configuration (``rate_limit=`` of a policy).

    At least one of ``per_second``, ``per_minute``, ``per_day`` is required; all
    that are given are honoured together (a looser window beside a stricter
    one is allowed: it simply never binds).

    Attributes:
        per_second: requests per second, ``None`` for no such window.
        per_minute: requests per minute (8bitedge plans: e.g. 120).
        per_day: requests per day (8bitedge plans: e.g. 10,000).
        burst: requests that may leave back to back before pacing starts, in
            every window; ``None`` means 1 (requests evenly spaced). In any
            window of W seconds at most ``n + burst`` requests leave.
        key: one limit shared by every host (e.g. the id of the API key the
            vendor counts against); ``None``: one limit per host.
        adaptive: lower the rate on 429 and recover it gradually; ``False``
            keeps the plan's rate (holds from ``Retry-After`` still apply).
        recovery: seconds for the rate to climb back to where it was before a
            429 (``K`` in the module docstring).

    Each window's count is a number up to ``1e9`` whose rate ``n / W`` is at
    least one request per million seconds (``per_day >= 0.0864``); ``burst``
    is ``1`` to ``1e9``; ``recovery`` is ``0.001`` to ``1e9`` seconds; ``key``
    a non-empty str that UTF-8 can encode; ``adaptive`` a bool.

    Raises:
        TypeError: a value of the wrong type (a bool is not a number).
        ValueError: a value out of range, or no window at all.
    """

    per_second: float | None = None
    per_minute: float | None = None
    per_day: float | None = None
    burst: float | None = None
    key: str | None = None
    adaptive: bool = True
    recovery: float = 10.0

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name, seconds in _WINDOWS:
            value = getattr(self, name)
            if value is not None:
                put(
                    self,
                    name,
                    checks.number(
                        f"rate_limit.{name}", value, low=MIN_RATE * seconds, high=MAX_COUNT
                    ),
                )
        if self.burst is not None:
            put(
                self,
                "burst",
                checks.number("rate_limit.burst", self.burst, low=1.0, high=MAX_COUNT),
            )
        put(
            self,
            "recovery",
            checks.number("rate_limit.recovery", self.recovery, low=MIN_RECOVERY, unit=" seconds"),
        )
        if self.key is not None:
            checks.text("rate_limit.key", self.key)
        checks.boolean("rate_limit.adaptive", self.adaptive)
        if not self.windows:
            raise ValueError("rate_limit needs at least one of per_second, per_minute, per_day")

    @property
    def windows(self) -> tuple[tuple[float, float], ...]:
        """``(requests, seconds)`` of every configured window."""
        return tuple(
            (float(n), seconds)
            for name, seconds in _WINDOWS
            if (n := getattr(self, name)) is not None
        )

    @property
    def plan_rate(self) -> float:
        """The long-run rate of the plan: the smallest ``requests / seconds``."""
        return min(n / seconds for n, seconds in self.windows)

    def new_limiter(self, store: Store | None = None) -> RateLimiter:
        """A limiter keeping its buckets in ``store`` (a new :class:`MemoryStore` if ``None``)."""
        return RateLimiter(self, store)

    def build(self, store: Store, wall: Callable[[], float]) -> RateLimiter:
        """The strategy, keeping its buckets and holds in ``store``."""
        return RateLimiter(self, store, wall)


@dataclass(frozen=True, slots=True)
class _Adaptive:
    """The adaptive factor of one key while below the plan."""

    factor: float
    w_max: float
    f0: float
    since: float
    until: float
    """When the curve is back at the plan's rate: the key may be forgotten then."""


class _Lease:
    """Tokens a limiter took from a :class:`MemoryStore` at once, handed out one
    request at a time with ``next(handed)`` (atomic: no lock) until ``until``."""

    __slots__ = ("handed", "size", "until")

    def __init__(self, size: int, until: float) -> None:
        self.size = size
        self.until = until
        self.handed = itertools.count(1)  # slot 0 went to the request that took the lease


#: Answers in a row without limit headers after which a key's answers are
#: read only one in :data:`QUIET_EVERY`.
QUIET_AFTER = 64
QUIET_EVERY = 16
#: Keys whose silence is counted at most (past it, the counts start over).
_KEYS_MAX = 1024


class RateLimiter(BaseStrategy):
    """The pacing state of one transport; safe to share between threads and tasks.

    As a strategy it gates every attempt (a wait, or a refusal when the wait
    would be too long) and hears every answer.
    """

    __slots__ = (
        "_adaptive",
        "_decreases",
        "_leases",
        "_lock",
        "_made",
        "_silent",
        "_sizes",
        "config",
        "store",
        "wall",
    )

    _SWEEP_EVERY = 64

    def __init__(
        self,
        config: RateLimit,
        store: Store | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.store: Store = MemoryStore() if store is None else store
        self.wall = wall
        # Only keys below the plan's rate, each forgotten once recovered.
        self._adaptive: dict[str, _Adaptive] = {}
        self._decreases = 0
        self._lock = threading.Lock()
        # The buckets of each key, made once (a few hundred keys at most).
        self._made: dict[str, list[Bucket]] = {}
        # Leases per key, over a MemoryStore only (a RedisStore leases on its own).
        self._leases: dict[str, _Lease] | None = {} if type(self.store) is MemoryStore else None
        # Requests a lease of each key serves (below 2: no lease).
        self._sizes: dict[str, float] = {}
        # Successive answers per key that announced no limits (see record).
        self._silent: dict[str, int] = {}

    def __len__(self) -> int:
        """Keys whose rate is lowered now."""
        return len(self._adaptive)

    def before_attempt(self, call: CallInfo, now: float, max_wait: float) -> float | Refusal:
        """Reserve the next slot, or refuse when it is further away than ``max_wait``."""
        key = self.config.key or call.host or ""
        leases = self._leases
        if leases is not None:
            # A key has a lease only at the plan's rate (a decrease ends it).
            lease = leases.get(key)
            if lease is not None and now < lease.until and next(lease.handed) < lease.size:
                return 0.0  # a token already taken from the store
        return self._take(call, key, now, max_wait)

    def _take(self, call: CallInfo, key: str, now: float, max_wait: float) -> float | Refusal:
        """:meth:`before_attempt` without a leased token at hand."""
        # Leases only at the plan's rate (no adaptive state for the key), where a
        # request costs one token: a factor that changes on every answer would
        # end every lease.
        leases = None if key in self._adaptive else self._leases
        buckets = self._made.get(key)
        if buckets is None:
            buckets = self._buckets(key)
        if leases is not None:
            if self._lease(key, buckets, now):
                return 0.0
            cost = 1.0
        else:
            cost = self._cost(key)
        wait = self.store.take(buckets, cost, now, max_wait)
        if wait <= max_wait:
            return wait
        later = self.would_wait(key, now)
        classification = Classification.of(
            call.vendor,
            Category.RATE_LIMITED,
            0,
            code="local_rate_limit",
            message=f"local rate limit for {key}: the next slot is {later:.3g}s away; not sent",
            retry_after=later,
        )
        return Refusal(
            classification, RateLimited, "local rate limit would wait too long; not retried"
        )

    def record(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        """A 429 holds and slows the key; any other answer lets it recover."""
        key = self.config.key or call.host or ""
        if outcome is Outcome.SUCCESS:
            # Every answer is read while the key's server announces limits, and
            # for its first QUIET_AFTER answers; a server that announced none in
            # that many answers in a row is read on one answer in QUIET_EVERY
            # (it starts announcing after a deploy: seen within that many
            # answers; a 429 is always heard), and its other successes are
            # skipped here without a look at their headers. A key below the
            # plan's rate has no count of silence: a decrease drops it.
            silent = self._silent.get(key, 0)
            if silent >= QUIET_AFTER and silent % QUIET_EVERY:
                self._silent[key] = silent + 1
                return
        elif outcome is Outcome.LATE:
            return  # no answer yet
        elif outcome is Outcome.THROTTLED:
            headers = call.headers
            if headers is not None:
                self._silent.pop(key, None)
                self.on_throttled(key, now, call.retry_after, headers, wall_now=self._wall_now())
            return
        headers = call.headers
        if headers is None:
            return  # a network error says nothing about the rate
        if key in self._adaptive or self._announces(key, headers):
            self.on_success(key, now, headers, wall_now=self._wall_now())

    def _announces(self, key: str, headers: Mapping[str, str]) -> bool:
        """Whether an answer for ``key`` announces limits in its headers
        (counting the answers in a row that do not: see :meth:`record`)."""
        if announces_limits(headers):
            self._silent.pop(key, None)
            return True
        if len(self._silent) >= _KEYS_MAX:
            self._silent.clear()  # many hosts: start over rather than grow
        self._silent[key] = self._silent.get(key, 0) + 1
        return False

    def _wall_now(self) -> float | None:
        return self.wall() if self.wall is not None else None

    def key_for(self, host: str) -> str:
        """The limit key of a request to ``host``: the configured key, else the host."""
        return self.config.key or host

    def factor(self, key: str) -> float:
        """The adaptive factor of ``key``: ``1.0`` at the plan's rate."""
        state = self._adaptive.get(key)
        return 1.0 if state is None else state.factor

    @overload
    def acquire(self, key: str, now: float) -> float: ...

    @overload
    def acquire(self, key: str, now: float, *, max_wait: float | None) -> float | None: ...

    def acquire(self, key: str, now: float, *, max_wait: float | None = None) -> float | None:
        """Reserve the next slot for ``key``.

        Args:
            key: the limit key (see :meth:`key_for`).
            now: monotonic seconds.
            max_wait: the longest acceptable wait (``None``: any). A wait equal
                to it is accepted.

        Returns:
            Seconds to wait before sending (``0.0``: send now), or ``None`` when
            the wait would exceed ``max_wait``; nothing is reserved then, and the
            caller fails the call at once (a local ``RateLimited``).
        """
        limit = math.inf if max_wait is None else max_wait
        wait = self.store.take(self._buckets(key), self._cost(key), now, limit)
        return wait if wait <= limit else None

    def would_wait(self, key: str, now: float) -> float:
        """Seconds :meth:`acquire` would wait now, without reserving anything."""
        return self.store.take(self._buckets(key), self._cost(key), now, -1.0)

    def on_throttled(
        self,
        key: str,
        now: float,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        wall_now: float | None = None,
    ) -> float:
        """A 429 for ``key``: hold every caller, and lower the rate.

        Args:
            key: the limit key.
            now: monotonic seconds.
            retry_after: seconds from ``Retry-After`` when already parsed
                (``Classification.retry_after``); read from ``headers`` otherwise.
            headers: the response headers (case-insensitively).
            wall_now: seconds since the epoch, to read HTTP-dates and epoch resets.

        Returns:
            The seconds every caller of ``key`` is now held for (``0.0``: none).
        """
        info = read_limit_headers(headers or {}, wall_now)
        hold = retry_after if retry_after is not None else info.retry_after
        if hold is None:
            hold = info.reset  # set only when a window is exhausted, or nothing else is known
        if self.config.adaptive:
            self._decrease(key, now, info.rate)
        hold = _clamp_hold(hold)
        if hold > 0:
            self._end_lease(key)
            self.store.hold(self._buckets(key), hold, now, self._cost(key))
        return hold

    def on_success(
        self,
        key: str,
        now: float,
        headers: Mapping[str, str] | None = None,
        *,
        wall_now: float | None = None,
    ) -> float:
        """Any answer for ``key`` that is not a 429: recover the rate gradually.

        When ``headers`` say no request is left in a window (remaining ``0``),
        every caller is held until it resets, before any 429.

        Returns:
            The seconds every caller of ``key`` is now held for (``0.0``: none).
        """
        if key in self._adaptive:
            with self._lock:
                state = self._adaptive.get(key)
                if state is not None:
                    factor = _recovered(state, now, self.config.recovery)
                    if factor >= 1.0:
                        del self._adaptive[key]  # back to the plan: forget the key
                    elif factor > state.factor:
                        self._adaptive[key] = replace(state, factor=factor)
        if not headers or not announces_limits(headers):
            return 0.0  # nothing says how many requests are left: nothing to hold
        info = read_limit_headers(headers, wall_now)
        if info.remaining != 0.0 or info.reset is None:
            return 0.0
        hold = _clamp_hold(info.reset)
        if hold > 0:
            self._end_lease(key)
            self.store.hold(self._buckets(key), hold, now, self._cost(key))
        return hold

    def _decrease(self, key: str, now: float, server_rate: float | None) -> None:
        with self._lock:
            state = self._adaptive.get(key)
            if state is not None and now - state.since < DECREASE_GAP:
                return
            w_max = 1.0 if state is None else state.factor
            if server_rate is not None:
                w_max = min(w_max, server_rate / self.config.plan_rate)
            w_max = max(F_MIN, w_max)
            f0 = max(F_MIN, BETA * w_max)
            self._adaptive[key] = _Adaptive(
                factor=f0,
                w_max=w_max,
                f0=f0,
                since=now,
                until=_recovered_at(w_max, f0, now, self.config.recovery),
            )
            # Below the plan: no lease (a request costs more than one token
            # now) and every answer read until the key recovers.
            self._end_lease(key)
            self._silent.pop(key, None)
            self._decreases += 1
            if self._decreases % self._SWEEP_EVERY == 0:
                # Keys nobody calls any more: forget those back at the plan's rate.
                self._adaptive = {k: a for k, a in self._adaptive.items() if a.until > now}

    def _lease(self, key: str, buckets: list[Bucket], now: float) -> bool:
        """Take a lease of tokens for ``key`` when they are plentiful (the first
        goes to this request); ``False``: no lease, the request takes its own."""
        size = self._sizes.get(key)
        if size is None:
            slowest = min(b.rate for b in buckets) * LEASE_SECONDS
            size = min(slowest, min(b.capacity for b in buckets) / 4.0, float(LEASE_MAX))
            self._sizes[key] = size
        count = int(size)
        if count < 2 or self.store.take(buckets, float(count), now, 0.0) > 0.0:
            return False  # too few to be worth it, or not there now: nothing taken
        assert self._leases is not None
        if len(self._leases) >= _MADE_MAX:
            self._leases.clear()  # many hosts: start over rather than grow
        self._leases[key] = _Lease(count, now + LEASE_SECONDS)
        return True

    def _end_lease(self, key: str) -> None:
        """A hold for ``key``: the tokens leased before it are not to be sent."""
        if self._leases is not None:
            self._leases.pop(key, None)

    def _cost(self, key: str) -> float:
        return 1.0 / self.factor(key)

    def _buckets(self, key: str) -> list[Bucket]:
        buckets = self._made.get(key)
        if buckets is None:
            burst = 1.0 if self.config.burst is None else float(self.config.burst)
            # "{key}" is a Redis Cluster hash tag: one limit's windows live on one node.
            buckets = [
                Bucket(f"rate:{{{key}}}:{seconds:g}", n / seconds, burst)
                for n, seconds in self.config.windows
            ]
            if len(self._made) >= _MADE_MAX:
                self._made.clear()  # many hosts: start over rather than grow
                self._sizes.clear()
            self._made[key] = buckets
        return buckets


def _recovered(state: _Adaptive, now: float, k: float) -> float:
    """The factor on the cubic recovery curve at ``now``, never below the one in force."""
    try:
        curve = state.w_max + (state.w_max - state.f0) * ((now - state.since) / k - 1.0) ** 3
    except OverflowError:  # far past the curve's end: back at the plan
        return 1.0
    return min(1.0, max(state.factor, curve))


def _recovered_at(w_max: float, f0: float, since: float, k: float) -> float:
    """When the cubic recovery curve from ``since`` reaches the plan (factor 1)."""
    if w_max <= f0:
        return since + k
    ratio: float = (1.0 - w_max) / (w_max - f0)
    return since + k * (1.0 + math.pow(ratio, 1.0 / 3.0))


def _clamp_hold(seconds: float | None) -> float:
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, MAX_HOLD)
