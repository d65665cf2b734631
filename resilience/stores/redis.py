"""State shared by every process and machine using one Redis: :class:`RedisStore`."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from resilience.core import checks
from resilience.stores.base import Bucket, check_cost, check_ttl
from resilience.stores.memory import MemoryStore

__all__ = ["RedisStore", "SupportsScripts", "confined_to_the_call"]

_log = logging.getLogger("resilience")

_T = TypeVar("_T")


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
  -- capped at about 31,000 years: a bucket of a tiny rate must still get an expiry
  redis.call('PEXPIRE', key, string.format('%d', math.min(math.ceil(ttl * 1000) + 1, 1e15)))
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
if v == tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], out, 'PX', ARGV[5])
end
return out
"""

# GET and SET go through scripts too, so that a client is only asked for scripts.
_LUA_GET = "return redis.call('GET', KEYS[1])"
_LUA_MGET = "return redis.call('MGET', unpack(KEYS))"
_LUA_SET = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])"

_BIG = 1.7976931348623157e308  # Lua 5.1's tonumber() may not read "inf"


def _arg(value: float) -> str:
    """A float as a script argument, exactly (``repr`` round-trips)."""
    if math.isinf(value):
        return repr(_BIG if value > 0 else -_BIG)
    return repr(float(value))


_MAX_MS = 10**15  # about 31,000 years: far inside what PEXPIRE accepts


def _ms(seconds: float) -> str:
    return str(min(_MAX_MS, max(1, math.ceil(seconds * 1000.0))))


def _safe_key(key: str) -> str:
    """``key``, with what UTF-8 cannot encode (a lone surrogate) escaped as ``\\udcff``.

    A host name or region read from a request may hold a lone surrogate; the
    client could not send it, and that one key must not fail its call. The
    escape is the same in every process, so they still share the key.
    """
    if key.isascii():
        return key
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return key


# Error replies that say Redis itself cannot serve (any key), by their code.
_SERVER_CODES = frozenset(
    {
        "BUSY",
        "CLUSTERDOWN",
        "LOADING",
        "MASTERDOWN",
        "MISCONF",
        "NOAUTH",
        "NOPERM",
        "NOREPLICAS",
        "NOSCRIPT",
        "OOM",
        "READONLY",
        "WRONGPASS",
    }
)


def confined_to_the_call(exc: BaseException) -> bool:
    """Whether ``exc`` concerns one call (its key or arguments) rather than Redis itself.

    Redis unreachable or unhealthy (connection refused or reset, a timeout, a
    server loading, busy, read-only, out of memory, a cluster down, ACLs that
    deny the scripts, a garbled reply, a broken client) is *not* confined: the
    whole store falls back. Confined: a key or argument the client cannot
    encode (``UnicodeEncodeError``, ``DataError``), a value it cannot read back,
    a ``WRONGTYPE`` or other error reply about one key, a cross-slot or
    migrating key in a cluster.
    """
    try:
        from redis import exceptions as rx
    except ImportError:  # pragma: no cover - a client that is not redis-py
        return isinstance(exc, ValueError)
    if isinstance(
        exc,
        (
            rx.ConnectionError,  # also authentication, max clients, LOADING
            rx.TimeoutError,
            rx.ClusterError,  # CLUSTERDOWN, MASTERDOWN
            rx.InvalidResponse,
            rx.SlotNotCoveredError,
            rx.ReadOnlyError,
            rx.OutOfMemoryError,
            rx.NoPermissionError,
            rx.NoScriptError,  # still missing after redis-py loaded it again
        ),
    ):
        return False
    if isinstance(exc, (rx.DataError, rx.ClusterCrossSlotError, rx.CrossSlotTransactionError)):
        return True
    if isinstance(exc, rx.ResponseError):
        message = str(exc)
        code = getattr(exc, "status_code", None) or message.split(" ", 1)[0]
        return code not in _SERVER_CODES and "unknown command" not in message.lower()
    # A key or value that could not be encoded or read back; anything else
    # (an OSError, a client that is not one) says the store cannot work.
    return isinstance(exc, ValueError)


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

    Failures. An error that says Redis itself cannot serve (unreachable, a
    timeout, loading, read-only, out of memory, cluster down: see
    :func:`confined_to_the_call`) switches the whole store to its local
    fallback for ``retry_interval`` seconds (:attr:`degraded`). An error
    confined to one call (a key the client cannot encode, a ``WRONGTYPE``
    key) answers that call from the local fallback, logs once per kind at
    WARNING (then at DEBUG), and leaves every other key on Redis. Keys that
    UTF-8 cannot encode are escaped before they are sent (see
    :func:`_safe_key`), so they never fail at all with the default encoding.

    Args:
        url_or_client: a ``redis://`` / ``rediss://`` / ``unix://`` URL (the client
            is then built with ``timeout`` and no retries of its own), or a
            ready ``redis.Redis`` / ``RedisCluster`` client (any object with
            ``register_script``), used as it is.
        prefix: put before every key (a str that UTF-8 can encode; may be empty).
        timeout: socket connect and read timeout, in seconds, of a client built
            from a URL: a number in ``(0, 1e9]``.
        retry_interval: seconds to keep to the local fallback after Redis failed
            before trying it again: a number in ``[0, 1e9]``.

    Raises:
        TypeError: a value of the wrong type (a bool is not a number; a class
            is not a client).
        ValueError: a URL of another scheme, a number out of range, a prefix
            with a lone surrogate.
    """

    __slots__ = (
        "_client",
        "_confined",
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
        timeout = checks.number("timeout", timeout, low_open=True, unit=" seconds")
        self.retry_interval = checks.number("retry_interval", retry_interval, unit=" seconds")
        self.prefix = checks.text("prefix", prefix, empty=True)
        client: Any
        if isinstance(url_or_client, str):
            _check_url(url_or_client)
            client = _client_from_url(url_or_client, timeout)
            self._where = _describe_url(url_or_client)
            self._owned = True
        else:
            what = "a redis:// URL or a Redis client (with register_script())"
            checks.instance("url_or_client", url_or_client, object, what)
            checks.methods("url_or_client", url_or_client, ("register_script",), what)
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
                ("get_many", _LUA_MGET),
                ("set", _LUA_SET),
            )
        }
        self._fallback = MemoryStore()
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = -math.inf
        self._confined: set[str] = set()  # kinds of confined errors already logged

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
        check_cost(cost)
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
        check_cost(seconds, "seconds")
        check_cost(cost)
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
            raw = self._scripts["get"](keys=[self._key(key)], args=[])
            return None if raw is None else float(raw)

        return self._run(now, remote, lambda: self._fallback.get(key, now))

    def get_many(self, keys: Sequence[str], now: float) -> list[float | None]:
        """See :meth:`Store.get_many`."""
        if not keys:
            return []

        def remote() -> list[float | None]:
            raw = self._scripts["get_many"](keys=[self._key(k) for k in keys], args=[])
            return [None if v is None else float(v) for v in raw]

        return self._run(now, remote, lambda: self._fallback.get_many(keys, now))

    def set(self, key: str, value: float, ttl: float, now: float) -> None:
        """See :meth:`Store.set`."""
        check_ttl(ttl)
        self._run(
            now,
            lambda: self._scripts["set"](keys=[self._key(key)], args=[_arg(value), _ms(ttl)]),
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
        check_ttl(ttl)
        args = [_arg(amount), _arg(initial), _arg(low), _arg(high), _ms(ttl)]
        return self._run(
            now,
            lambda: float(self._scripts["incr"](keys=[self._key(key)], args=args)),
            lambda: self._fallback.incr(key, amount, ttl, now, initial=initial, low=low, high=high),
        )

    def _key(self, key: str) -> str:
        return self.prefix + _safe_key(key)

    def _keys(self, buckets: Sequence[Bucket]) -> list[str]:
        return [self.prefix + _safe_key(b.key) for b in buckets]

    def _run(self, now: float, remote: Callable[[], _T], local: Callable[[], _T]) -> _T:
        """``remote()`` unless Redis failed less than ``retry_interval`` ago; ``local()`` then."""
        if now < self._retry_at:
            return local()
        try:
            result = remote()
        # No failure may fail the call being paced: fall back, say so once.
        except Exception as exc:
            if confined_to_the_call(exc):
                self._confined_failure(exc)
                return local()
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

    def _confined_failure(self, exc: Exception) -> None:
        """One call failed on its own key or arguments: log it, Redis stays in use."""
        kind = type(exc).__name__
        with self._lock:
            first = kind not in self._confined
            self._confined.add(kind)
        _log.log(
            logging.WARNING if first else logging.DEBUG,
            "Redis at %s refused one call (%s: %s); that call keeps its state locally, "
            "every other key stays on Redis",
            self._where,
            kind,
            str(exc)[:200],
        )


def _check_url(url: str) -> None:
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"url_or_client must be a redis://, rediss:// or unix:// URL, got {checks.shown(url)}"
        )


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
