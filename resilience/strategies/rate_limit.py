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
time when ``wall_now`` is given). A success whose headers say no request is
left (remaining ``0``) holds in the same way, before any 429. After a hold one
request goes, then the (lowered) rate: no burst. Holds are capped at a day.

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
it); the adaptive factor is each limiter's own, in its process. Safe to share
between threads and asyncio tasks: the limiter's own state sits behind a lock
held for a few arithmetic operations (never across an ``await`` or a store
call), and every store operation is atomic.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import overload

from resilience.core.retry_after import parse_retry_after
from resilience.stores import Bucket, MemoryStore, Store

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


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Client-side pacing: the configuration (``rate_limit=`` of a policy).

    At least one of ``per_second``, ``per_minute``, ``per_day`` is required; all
    that are given are honoured together.

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
    """

    per_second: float | None = None
    per_minute: float | None = None
    per_day: float | None = None
    burst: float | None = None
    key: str | None = None
    adaptive: bool = True
    recovery: float = 10.0

    def __post_init__(self) -> None:
        for name in ("per_second", "per_minute", "per_day", "burst", "recovery"):
            value = getattr(self, name)
            if value is None and name != "recovery":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"rate_limit.{name} must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"rate_limit.{name} must be > 0, got {value!r}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"rate_limit.burst must be >= 1, got {self.burst!r}")
        if not self.windows:
            raise ValueError("rate_limit needs at least one of per_second, per_minute, per_day")
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ValueError("rate_limit.key must be a non-empty string or None")
        if not isinstance(self.adaptive, bool):
            raise TypeError("rate_limit.adaptive must be a bool")

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


@dataclass(frozen=True, slots=True)
class _Adaptive:
    """The adaptive factor of one key while below the plan."""

    factor: float
    w_max: float
    f0: float
    since: float


@dataclass(frozen=True, slots=True)
class LimitHeaders:
    """What a response's rate-limit headers say, normalised.

    Attributes:
        retry_after: seconds from ``Retry-After``.
        remaining: the fewest requests left in any announced window.
        reset: seconds until an exhausted window resets (the longest, if
            several are), or the only reset announced.
        rate: the lowest announced quota per second (``RateLimit-Policy``).
    """

    retry_after: float | None = None
    remaining: float | None = None
    reset: float | None = None
    rate: float | None = None


class RateLimiter:
    """The pacing state of one transport; safe to share between threads and tasks."""

    __slots__ = ("_adaptive", "_lock", "config", "store")

    def __init__(self, config: RateLimit, store: Store | None = None) -> None:
        self.config = config
        self.store: Store = MemoryStore() if store is None else store
        self._adaptive: dict[str, _Adaptive] = {}
        self._lock = threading.Lock()

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
        if not headers:
            return 0.0
        info = read_limit_headers(headers, wall_now)
        if info.remaining != 0.0 or info.reset is None:
            return 0.0
        hold = _clamp_hold(info.reset)
        if hold > 0:
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
            self._adaptive[key] = _Adaptive(factor=f0, w_max=w_max, f0=f0, since=now)

    def _cost(self, key: str) -> float:
        return 1.0 / self.factor(key)

    def _buckets(self, key: str) -> list[Bucket]:
        burst = 1.0 if self.config.burst is None else float(self.config.burst)
        # "{key}" is a Redis Cluster hash tag: one limit's windows live on one node.
        return [
            Bucket(f"rate:{{{key}}}:{seconds:g}", n / seconds, burst)
            for n, seconds in self.config.windows
        ]


def _recovered(state: _Adaptive, now: float, k: float) -> float:
    """The factor on the cubic recovery curve at ``now``, never below the one in force."""
    curve = state.w_max + (state.w_max - state.f0) * ((now - state.since) / k - 1.0) ** 3
    return min(1.0, max(state.factor, curve))


def _clamp_hold(seconds: float | None) -> float:
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, MAX_HOLD)


# --- headers --------------------------------------------------------------------------

_NUMBER = re.compile(r"\s*\"?\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*\"?\s*\Z")


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    match = _NUMBER.match(text)
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def _members(value: str) -> list[list[str]]:
    """Split a structured-field list: members by ``,``, parameters by ``;``, outside quotes."""
    members: list[list[str]] = []
    current: list[str] = []
    token: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
            token.append(ch)
        elif not quoted and ch in ",;":
            current.append("".join(token).strip())
            token = []
            if ch == ",":
                members.append(current)
                current = []
        else:
            token.append(ch)
    current.append("".join(token).strip())
    members.append(current)
    return [m for m in members if any(m)]


def _params(parts: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _reset_seconds(value: float, wall_now: float | None) -> float | None:
    """A reset that is a delay, or an epoch time in seconds or milliseconds."""
    if value >= 1e12:  # epoch milliseconds
        return None if wall_now is None else max(0.0, value / 1000.0 - wall_now)
    if value >= 1e9:  # epoch seconds (GitHub's X-RateLimit-Reset)
        return None if wall_now is None else max(0.0, value - wall_now)
    return value


def read_limit_headers(headers: Mapping[str, str], wall_now: float | None = None) -> LimitHeaders:
    """Read ``Retry-After`` and the rate-limit headers of a response; garbage is ignored.

    Understood: ``Retry-After``; ``RateLimit`` (``"name";r=0;t=30`` from
    draft-ietf-httpapi-ratelimit-headers-08 on, ``limit=, remaining=, reset=``
    in -07); ``RateLimit-Policy`` (``"name";q=100;w=60``, or ``100;w=60`` in
    earlier drafts); ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (-03 to
    -06); ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``.

    Args:
        headers: the response headers (any mapping; names compared case-insensitively).
        wall_now: seconds since the epoch, to read an HTTP-date ``Retry-After``
            and epoch resets; without it those are ignored.
    """
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    seen: list[tuple[float | None, float | None]] = []  # (remaining, reset seconds)
    rates: list[float] = []

    retry_after: float | None = None
    raw = h.get("retry-after")
    if raw is not None:
        retry_after = parse_retry_after(raw, wall_now) if wall_now is not None else _number(raw)

    if "ratelimit" in h:
        legacy: dict[str, str] = {}
        for member in _members(h["ratelimit"]):
            head, sep, value = member[0].partition("=")
            if sep:  # draft -07: limit=10, remaining=0, reset=5
                legacy[head.strip().lower()] = value
            else:
                p = _params(member[1:])
                seen.append((_number(p.get("r")), _number(p.get("t"))))
        if legacy:
            seen.append((_number(legacy.get("remaining")), _number(legacy.get("reset"))))

    for name in ("ratelimit-policy", "ratelimit-limit"):
        for member in _members(h.get(name, "")):
            p = _params(member[1:])
            if p.get("qu", "requests").strip('"') != "requests":
                continue
            quota = _number(p.get("q")) if "q" in p else _number(member[0])
            window = _number(p.get("w"))
            if quota is not None and window:
                rates.append(quota / window)

    for prefix in ("ratelimit-", "x-ratelimit-"):
        remaining = _number(h.get(prefix + "remaining"))
        reset = _number(h.get(prefix + "reset"))
        if reset is not None:
            reset = _reset_seconds(reset, wall_now)
        if remaining is not None or reset is not None:
            seen.append((remaining, reset))

    remaining_all = [r for r, _ in seen if r is not None]
    exhausted = [t for r, t in seen if r == 0 and t is not None]
    resets = [t for _, t in seen if t is not None]
    reset_out: float | None = None
    if exhausted:
        reset_out = max(exhausted)
    elif not remaining_all and resets:
        reset_out = max(resets)
    return LimitHeaders(
        retry_after=retry_after,
        remaining=min(remaining_all) if remaining_all else None,
        reset=reset_out,
        rate=min(rates) if rates else None,
    )
