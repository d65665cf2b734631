"""Where shared state lives: the rate limiter's buckets today, budgets and breakers next.

A :class:`Store` offers the few operations that must be atomic, and nothing
else, so that one Lua script per operation makes each of them atomic across
processes and machines:

* :meth:`Store.take` - take ``cost`` tokens from one or more token buckets at
  once, or only say how long that would have to wait (the rate limiter: every
  window of a limit in one step, all or nothing);
* :meth:`Store.hold` - let no bucket grant a slot before ``seconds`` from now
  (a ``Retry-After`` shared by every process);
* :meth:`Store.get` / :meth:`Store.set` - a float with a time to live (a
  breaker's state);
* :meth:`Store.incr` - add to a float, clamped, with a time to live (a budget's
  tokens, a breaker's failure count).

Every key carries an expiry: a bucket expires when it would be full again (a
missing bucket *is* a full one), a value after its ``ttl``; nothing grows
without bound, in Redis or in memory.

Two stores:

* :class:`MemoryStore` (the default): one process, a lock.
* :class:`RedisStore`: every process and machine using the same Redis shares the
  state. ``redis`` (redis-py) is imported only when a ``RedisStore`` is built
  from a URL; it is an optional extra.

Time. Every operation receives ``now``, the caller's monotonic clock in seconds.
:class:`MemoryStore` uses it as is. Monotonic clocks do not compare across
machines (each counts from its own boot), and wall clocks drift between
machines, so :class:`RedisStore` reads the Redis server's ``TIME`` inside its
scripts for everything stored in Redis: all processes then measure buckets with
the one clock they share, and what comes back (a wait) is a duration, which
means the same on every machine. ``now`` serves only its local fallback and its
back-off. Scripts calling ``TIME`` and then writing need effects replication,
the default since Redis 5 and the only mode since Redis 7.

Failures. A store must never fail or stall the call it paces: when Redis is
unreachable or answers with an error, :class:`RedisStore` logs one WARNING on
the ``"resilience"`` logger, carries on with a local :class:`MemoryStore`
(each process then keeps to the limit on its own), and tries Redis again after
``retry_interval`` seconds; an INFO line says when Redis is back. Clients it
builds from a URL have short socket timeouts and no retries of their own.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

__all__ = ["Bucket", "MemoryStore", "RedisStore", "Store"]

_log = logging.getLogger("resilience")

_T = TypeVar("_T")


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
        for name in ("rate", "capacity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Bucket.{name} must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Bucket.{name} must be > 0, got {value!r}")


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
        ``[low, high]`` and kept for ``ttl`` seconds from now.
        """
        ...


# --- the bucket arithmetic, once (RedisStore's Lua scripts mirror it) ----------------


def _refill(state: tuple[float, float] | None, bucket: Bucket, now: float) -> tuple[float, float]:
    """``(tokens, at)`` brought forward to ``now``; ``at`` may lie ahead while held."""
    if state is None:
        return bucket.capacity, now
    tokens, at = state
    if now > at:
        tokens, at = tokens + (now - at) * bucket.rate, now
    return min(bucket.capacity, tokens), at


def _wait(tokens: float, at: float, bucket: Bucket, cost: float, now: float) -> float:
    return (at - now) + max(0.0, min(cost, bucket.capacity) - tokens) / bucket.rate


def _full_at(tokens: float, at: float, bucket: Bucket) -> float:
    """When the bucket is full again, and may be forgotten."""
    return at + max(0.0, bucket.capacity - tokens) / bucket.rate


def _check_cost(value: float, name: str = "cost") -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_ttl(ttl: float) -> None:
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a finite number > 0, got {ttl!r}")


class MemoryStore:
    """State for one process, guarded by a lock.

    Uses the ``now`` it is given, so every caller of one ``MemoryStore`` must use
    the same clock. Expired entries are swept every few hundred writes.
    """

    __slots__ = ("_buckets", "_lock", "_values", "_writes")

    _SWEEP_EVERY = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (tokens, at, expires); key -> (value, expires)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._values: dict[str, tuple[float, float]] = {}
        self._writes = 0

    def __len__(self) -> int:
        """Entries held, the expired ones not swept yet included."""
        return len(self._buckets) + len(self._values)

    def take(
        self, buckets: Sequence[Bucket], cost: float, now: float, max_wait: float = math.inf
    ) -> float:
        """See :meth:`Store.take`."""
        _check_cost(cost)
        with self._lock:
            states = [_refill(self._bucket(b.key, now), b, now) for b in buckets]
            wait = max(
                (_wait(t, at, b, cost, now) for (t, at), b in zip(states, buckets, strict=True)),
                default=0.0,
            )
            if wait <= max_wait:
                for (tokens, at), b in zip(states, buckets, strict=True):
                    tokens -= cost
                    self._buckets[b.key] = (tokens, at, _full_at(tokens, at, b))
                self._wrote(now)
            return wait

    def hold(
        self, buckets: Sequence[Bucket], seconds: float, now: float, cost: float = 1.0
    ) -> None:
        """See :meth:`Store.hold`."""
        _check_cost(seconds, "seconds")
        _check_cost(cost)
        until = now + seconds
        with self._lock:
            for b in buckets:
                tokens, at = _refill(self._bucket(b.key, now), b, now)
                if until > now + _wait(tokens, at, b, cost, now):
                    tokens, at = min(b.capacity, cost), until
                    self._buckets[b.key] = (tokens, at, _full_at(tokens, at, b))
            self._wrote(now)

    def get(self, key: str, now: float) -> float | None:
        """See :meth:`Store.get`."""
        with self._lock:
            entry = self._values.get(key)
            if entry is None or entry[1] <= now:
                return None
            return entry[0]

    def set(self, key: str, value: float, ttl: float, now: float) -> None:
        """See :meth:`Store.set`."""
        _check_ttl(ttl)
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
        _check_ttl(ttl)
        with self._lock:
            entry = self._values.get(key)
            value = initial if entry is None or entry[1] <= now else entry[0]
            value = max(low, min(high, value + amount))
            self._values[key] = (value, now + ttl)
            self._wrote(now)
            return value

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
        self._writes += 1
        if self._writes % self._SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._buckets.items() if e[2] <= now]:
            del self._buckets[key]
        for key in [k for k, e in self._values.items() if e[1] <= now]:
            del self._values[key]


# --- Redis ---------------------------------------------------------------------------

# Shared prologue: the server's clock, and numbers written back with full precision
# (Lua's tostring keeps 14 digits; a Redis reply would truncate a Lua number to an
# integer, so numbers travel as strings).
_LUA_PROLOGUE = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function num(x) return string.format('%.17g', x) end
local function load(key, rate, cap)
  local s = redis.call('HMGET', key, 'b', 't')
  local b, at = tonumber(s[1]), tonumber(s[2])
  if b == nil or at == nil then return cap, now end
  if now > at then b = b + (now - at) * rate; at = now end
  return math.min(cap, b), at
end
local function save(key, b, at, rate, cap)
  local ttl = (at - now) + math.max(0, cap - b) / rate
  redis.call('HSET', key, 'b', num(b), 't', num(at))
  redis.call('PEXPIRE', key, string.format('%d', math.ceil(ttl * 1000) + 1))
end
"""

# KEYS: the buckets. ARGV: cost, max_wait, then rate and capacity of each bucket.
_LUA_TAKE = (
    _LUA_PROLOGUE
    + """
local cost, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait, bs, ats = 0, {}, {}
for i = 1, #KEYS do
  local rate, cap = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local b, at = load(KEYS[i], rate, cap)
  local w = (at - now) + math.max(0, math.min(cost, cap) - b) / rate
  if w > wait then wait = w end
  bs[i], ats[i] = b, at
end
if wait <= max_wait then
  for i = 1, #KEYS do
    save(KEYS[i], bs[i] - cost, ats[i], tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2]))
  end
end
return num(wait)
"""
)

# KEYS: the buckets. ARGV: seconds, cost, then rate and capacity of each bucket.
_LUA_HOLD = (
    _LUA_PROLOGUE
    + """
local hold_end, cost = now + tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS do
  local rate, cap = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local b, at = load(KEYS[i], rate, cap)
  local need = math.min(cost, cap)
  if hold_end > at + math.max(0, need - b) / rate then
    save(KEYS[i], need, hold_end, rate, cap)
  end
end
return 1
"""
)

# KEYS[1]: the value. ARGV: amount, initial, low, high, ttl in ms.
_LUA_INCR = """
local v = tonumber(redis.call('GET', KEYS[1])) or tonumber(ARGV[2])
v = math.max(tonumber(ARGV[3]), math.min(tonumber(ARGV[4]), v + tonumber(ARGV[1])))
local out = string.format('%.17g', v)
redis.call('SET', KEYS[1], out, 'PX', ARGV[5])
return out
"""

# GET and SET go through scripts too, so that a client is only asked for scripts.
_LUA_GET = "return redis.call('GET', KEYS[1])"
_LUA_SET = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])"

_BIG = 1.7976931348623157e308  # Lua 5.1's tonumber() may not read "inf"


def _arg(value: float) -> str:
    """A float as a script argument, exactly (``repr`` round-trips)."""
    if math.isinf(value):
        return repr(_BIG if value > 0 else -_BIG)
    return repr(float(value))


def _ms(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000.0)))


class SupportsScripts(Protocol):
    """What :class:`RedisStore` needs of a client: ``redis.Redis`` and ``RedisCluster`` fit."""

    def register_script(self, script: str) -> Any:
        """A callable running ``script`` by EVALSHA, loading it again when Redis lost it."""
        ...


class RedisStore:
    """State shared by every process and machine using one Redis.

    Each operation is one Lua script (EVALSHA, loaded again by redis-py when the
    server answers NOSCRIPT), so it is atomic; every key it writes has an
    expiry. The keys of one limit share a ``{hash tag}`` so that a Redis Cluster
    keeps them on one node. Time inside Redis is the server's ``TIME`` (see the
    module docstring).

    Calls are short blocking round trips, also from async transports (they do
    not await): keep Redis close, and ``timeout`` small.

    Args:
        url_or_client: a ``redis://`` / ``rediss://`` / ``unix://`` URL (the client
            is then built with ``timeout`` and no retries of its own), or a
            ready ``redis.Redis`` / ``RedisCluster`` client, used as it is.
        prefix: put before every key.
        timeout: socket connect and read timeout, in seconds, of a client built
            from a URL.
        retry_interval: seconds to keep to the local fallback after Redis failed
            before trying it again.
    """

    __slots__ = (
        "_client",
        "_down",
        "_fallback",
        "_lock",
        "_owned",
        "_retry_at",
        "_scripts",
        "_where",
        "prefix",
        "retry_interval",
    )

    def __init__(
        self,
        url_or_client: str | SupportsScripts,
        *,
        prefix: str = "resilience:",
        timeout: float = 0.25,
        retry_interval: float = 5.0,
    ) -> None:
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if not math.isfinite(retry_interval) or retry_interval < 0:
            raise ValueError(f"retry_interval must be >= 0, got {retry_interval!r}")
        self.prefix = prefix
        self.retry_interval = float(retry_interval)
        client: Any
        if isinstance(url_or_client, str):
            client = _client_from_url(url_or_client, timeout)
            self._where = _describe_url(url_or_client)
            self._owned = True
        else:
            client = url_or_client
            self._where = _describe_client(client)
            self._owned = False
        self._client = client
        self._scripts: dict[str, Any] = {
            name: client.register_script(source)
            for name, source in (
                ("take", _LUA_TAKE),
                ("hold", _LUA_HOLD),
                ("incr", _LUA_INCR),
                ("get", _LUA_GET),
                ("set", _LUA_SET),
            )
        }
        self._fallback = MemoryStore()
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = -math.inf

    @property
    def degraded(self) -> bool:
        """Whether the last attempt to reach Redis failed (the local fallback is in use)."""
        return self._down

    def close(self) -> None:
        """Close the client if this store built it from a URL."""
        if self._owned:
            self._client.close()

    def take(
        self, buckets: Sequence[Bucket], cost: float, now: float, max_wait: float = math.inf
    ) -> float:
        """See :meth:`Store.take`."""
        _check_cost(cost)
        if not buckets:
            return 0.0
        args = [_arg(cost), _arg(max_wait)]
        for b in buckets:
            args += [_arg(b.rate), _arg(b.capacity)]
        return self._run(
            now,
            lambda: float(self._scripts["take"](keys=self._keys(buckets), args=args)),
            lambda: self._fallback.take(buckets, cost, now, max_wait),
        )

    def hold(
        self, buckets: Sequence[Bucket], seconds: float, now: float, cost: float = 1.0
    ) -> None:
        """See :meth:`Store.hold`."""
        _check_cost(seconds, "seconds")
        _check_cost(cost)
        if not buckets:
            return
        args = [_arg(seconds), _arg(cost)]
        for b in buckets:
            args += [_arg(b.rate), _arg(b.capacity)]
        self._run(
            now,
            lambda: self._scripts["hold"](keys=self._keys(buckets), args=args),
            lambda: self._fallback.hold(buckets, seconds, now, cost),
        )

    def get(self, key: str, now: float) -> float | None:
        """See :meth:`Store.get`."""

        def remote() -> float | None:
            raw = self._scripts["get"](keys=[self.prefix + key], args=[])
            return None if raw is None else float(raw)

        return self._run(now, remote, lambda: self._fallback.get(key, now))

    def set(self, key: str, value: float, ttl: float, now: float) -> None:
        """See :meth:`Store.set`."""
        _check_ttl(ttl)
        self._run(
            now,
            lambda: self._scripts["set"](keys=[self.prefix + key], args=[_arg(value), _ms(ttl)]),
            lambda: self._fallback.set(key, value, ttl, now),
        )

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
        _check_ttl(ttl)
        args = [_arg(amount), _arg(initial), _arg(low), _arg(high), _ms(ttl)]
        return self._run(
            now,
            lambda: float(self._scripts["incr"](keys=[self.prefix + key], args=args)),
            lambda: self._fallback.incr(key, amount, ttl, now, initial=initial, low=low, high=high),
        )

    def _keys(self, buckets: Sequence[Bucket]) -> list[str]:
        return [self.prefix + b.key for b in buckets]

    def _run(self, now: float, remote: Callable[[], _T], local: Callable[[], _T]) -> _T:
        """``remote()`` unless Redis failed less than ``retry_interval`` ago; ``local()`` then."""
        if now < self._retry_at:
            return local()
        try:
            result = remote()
        # Any failure (connection, timeout, READONLY, OOM, a WRONGTYPE key, a broken
        # client) must not fail the call being paced: fall back, say so once.
        except Exception as exc:
            with self._lock:
                self._retry_at = now + self.retry_interval
                first = not self._down
                self._down = True
            if first:
                _log.warning(
                    "Redis at %s failed (%s: %s); keeping shared limits locally in this "
                    "process, trying Redis again every %g s",
                    self._where,
                    type(exc).__name__,
                    str(exc)[:200],
                    self.retry_interval,
                )
            return local()
        if self._down:
            with self._lock:
                back, self._down = self._down, False
            if back:
                _log.info("Redis at %s is reachable again; limits are shared again", self._where)
        return result


def _client_from_url(url: str, timeout: float) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RedisStore needs the redis package: pip install 'resilience-transports[redis]'"
        ) from exc
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def _describe_url(url: str) -> str:
    """``host:port/db`` of a URL, credentials left out."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "<unparseable url>"
    return f"{host}:{port}{parts.path or ''}"


def _describe_client(client: Any) -> str:
    try:
        kwargs = client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    except Exception:  # a cluster client, or another shape
        return type(client).__name__
