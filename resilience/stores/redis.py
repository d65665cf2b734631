"""State shared by every process and machine using one Redis: :class:`RedisStore`.

No call waits on Redis. A :class:`RedisStore` answers every operation from its
process's own copy of the state, a :class:`MemoryStore` (the *mirror*), and one
background thread per store (started on first use, stopped by
:meth:`RedisStore.close`, started again in a child after ``fork``) keeps that
copy and Redis in step, in the manner of Envoy's global rate limiting and of
token leasing in distributed limiters:

* **Values** (the retry budget's tokens, the breaker's counts and states).
  ``incr`` and ``set`` change the mirror at once and are queued; every
  ``sync_interval`` seconds (sooner after ``256`` changes, or when a key is
  first used) the thread sends the queued changes (increments of one key and
  sign summed, the last ``set`` winning) and reads back every value the process
  used in the last two seconds, as one ``EVALSHA`` per hash slot. What comes
  back replaces the mirror's value, with the changes made since replayed on
  top. ``get`` and ``get_many`` read the mirror.
* **Rate limits** (``take``). Tokens are leased: one Lua script takes, for all
  the windows of a limit at once (they share a ``{hash tag}``), the next few
  slots (``count`` successive takes), and the process hands them out locally
  in order. A lease holds the tokens of ``lease`` seconds at the slowest
  window's rate, at least 1 and at most the burst; once a lease has been used
  twice in a quarter of a second it is refilled ahead of need (only with slots
  due within ``lease`` seconds of the last one it held), so a steady caller
  never waits on Redis. Tokens
  of a lease unused for half a second are given back. A call waits on Redis
  only when its lease is empty and no refill is coming: then at most
  ``timeout`` seconds, after which it is paced locally.
* **Holds** (a 429's ``Retry-After``) apply to the mirror and drop the
  process's own leased slots at once, and are sent to Redis right away, ahead
  of any lease, without the caller waiting.

Consistency. Rate limits stay shared exactly, up to the leases: every slot
comes from the one bucket in Redis, so in any window of ``W`` seconds a fleet
of ``P`` processes sends at most ``n + burst + P * lease_size`` requests (a
process sends a leased slot no earlier than its time, and holds at most
``lease_size`` tokens it has not used: those are the excess a full bucket
could not have kept). ``lease=0`` leases one token per call, each a round trip:
no excess. Another process's 429 reaches this one's new slots within one
round trip; the slots it already holds (at most one lease) may still go.
Values are shared with a delay: a budget or breaker change made elsewhere is
seen here within ``sync_interval`` plus a round trip, and a key this process
had not used for two seconds reads as absent until the next round trip (a
breaker opened elsewhere lets this process's first calls through for that
long; the budget counts outcomes, so a few unsent increments move its
threshold by as many outcomes). Both strategies tolerate this: they only
need the fleet's counts to converge, not to agree per call.

Failures. A store must never fail or stall the call it paces. When a round
trip fails because Redis is unreachable or unhealthy (refused or dropped
connections, timeouts, loading, read-only, out of memory, a cluster down: see
:func:`confined_to_the_call`), the store logs one WARNING on the
``"resilience"`` logger, keeps its state locally (the mirror, which then paces
each process on its own), drops what was queued, and tries Redis again after
``retry_interval`` seconds; an INFO line says when Redis is back, and the
mirror takes Redis's values again. A round trip slower than ``timeout`` makes
the calls waiting on it go local at once. An error confined to one key (a
``WRONGTYPE`` key, a key the client cannot encode) keeps that key local and
logs once per kind at WARNING (then at DEBUG); every other key stays shared.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, Protocol
from urllib.parse import urlsplit

from resilience.core import checks
from resilience.stores._redis_batch import LUA_BATCH, Batch, ValueOp, replay
from resilience.stores.base import Bucket, check_cost, check_ttl
from resilience.stores.memory import MemoryStore

__all__ = ["RedisStore", "SupportsScripts", "confined_to_the_call"]

_log = logging.getLogger(__name__)


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


#: A lease used twice within this many seconds is refilled ahead of need.
_HOT = 0.25
#: Tokens of a lease not used for this many seconds go back to Redis.
_IDLE = 0.5
#: A value not used for this many seconds is no longer read back (and forgotten).
_WATCH = 2.0
#: An empty lease not used for this many seconds is forgotten.
_FORGET = 30.0
#: Queued value changes that make the thread push before ``sync_interval``.
_PUSH_AT = 256
#: The most slots one lease holds, whatever the rate and burst.
_MAX_LEASE = 1000
#: Bucket lists remembered by identity (cleared when full).
_MAX_LISTS = 1024

_monotonic = time.monotonic


class _Lease:
    """The slots one process holds for one set of buckets and one cost."""

    __slots__ = (
        "buckets",
        "cost",
        "demand",
        "epoch",
        "failed",
        "fetching",
        "first",
        "gen",
        "ident",
        "keys",
        "last",
        "sent",
        "size",
        "slots",
        "tail",
        "used",
    )

    def __init__(
        self,
        ident: tuple[Any, ...],
        buckets: tuple[Bucket, ...],
        keys: list[str],
        cost: float,
        size: int,
    ):
        self.ident = ident
        self.buckets = buckets
        self.keys = keys  # as in Redis
        self.cost = cost
        self.size = size
        self.slots: deque[float] = deque()  # when each may go, on this process's monotonic clock
        self.fetching = False  # a fetch is asked for (and maybe sent)
        self.sent = False  # it is in the round trip under way
        self.demand: float | None = None  # its max_first; None: a refill ahead of need
        self.gen = 0  # fetches answered
        self.epoch = 0  # bumped by a hold: slots fetched before it are dropped
        self.last = -math.inf  # when a slot was last handed out
        self.used = _monotonic()  # when last handed out or filled: idle since
        self.tail = -math.inf  # the time of the latest slot held or handed out
        self.first: tuple[float, float] | None = None  # (wait, at) of a fetch that got no slot
        self.failed = False  # the last fetch failed: pace locally


class RedisStore:
    """State shared by every process and machine using one Redis; no call waits on it.

    See the module docstring for how the state is kept in step (a local copy,
    batched changes, leased tokens), how stale it may be, and what happens when
    Redis is slow or gone. The keys of one limit or circuit share a
    ``{hash tag}``, and every round trip sends one script per hash slot, so a
    Redis Cluster works as a single server does. Every key written has an
    expiry; time inside Redis is the server's ``TIME``.

    Args:
        url_or_client: a ``redis://`` / ``rediss://`` / ``unix://`` URL (the client
            is then built with ``timeout`` and no retries of its own), or a
            ready ``redis.Redis`` / ``RedisCluster`` client (any object with
            ``register_script``), used as it is.
        prefix: put before every key (a str that UTF-8 can encode; may be empty).
        timeout: the longest a call waits for Redis (only when its lease is
            empty), and the socket connect and read timeout of a client built
            from a URL: a number in ``(0, 1e9]`` seconds.
        retry_interval: seconds to keep to local state after Redis failed
            before trying it again: a number in ``[0, 1e9]``.
        lease: seconds of a limit's rate leased at a time (at least one token,
            at most the burst): a number in ``[0, 60]``; ``0`` takes one token
            per call, each a round trip, with no excess over the limit.
        sync_interval: seconds between two pushes of the queued value changes
            (and reads of the values in use): a number in ``[0.001, 60]``.

    Raises:
        TypeError: a value of the wrong type (a bool is not a number; a class
            is not a client).
        ValueError: a URL of another scheme, a number out of range, a prefix
            with a lone surrogate.
    """

    __slots__ = (
        "__weakref__",
        "_arrived",
        "_bad",
        "_busy_since",
        "_by_list",
        "_client",
        "_closed",
        "_confined",
        "_done",
        "_down",
        "_encode",
        "_holds",
        "_last",
        "_leases",
        "_lock",
        "_mirror",
        "_ops",
        "_owned",
        "_pending",
        "_pid",
        "_retry_at",
        "_returns",
        "_script",
        "_slot",
        "_started",
        "_thread",
        "_touched",
        "_urgent",
        "_wake",
        "_where",
        "lease",
        "prefix",
        "retry_interval",
        "sync_interval",
        "timeout",
    )

    def __init__(
        self,
        url_or_client: str | SupportsScripts,
        *,
        prefix: str = "resilience:",
        timeout: float = 0.25,
        retry_interval: float = 5.0,
        lease: float = 0.05,
        sync_interval: float = 0.02,
    ) -> None:
        self.timeout = checks.number("timeout", timeout, low_open=True, unit=" seconds")
        self.retry_interval = checks.number("retry_interval", retry_interval, unit=" seconds")
        self.lease = checks.number("lease", lease, high=60.0, unit=" seconds")
        self.sync_interval = checks.number(
            "sync_interval", sync_interval, low=0.001, high=60.0, unit=" seconds"
        )
        self.prefix = checks.text("prefix", prefix, empty=True)
        client: Any
        if isinstance(url_or_client, str):
            _check_url(url_or_client)
            client = _client_from_url(url_or_client, self.timeout)
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
        self._script = client.register_script(LUA_BATCH)
        slot = getattr(client, "keyslot", None)  # a cluster client: one script per hash slot
        self._slot: Callable[[str], Any] | None = slot if callable(slot) else None
        self._encode = _encoder(client)
        self._mirror = MemoryStore()
        self._closed = False
        self._down = False
        self._retry_at = -math.inf
        self._confined: set[str] = set()  # kinds of confined errors already logged
        self._bad: set[str] = set()  # keys the client cannot send: kept local
        self._leases: dict[tuple[Any, ...], _Lease] = {}
        self._by_list: dict[int, tuple[Sequence[Bucket], float, _Lease]] = {}
        self._touched: dict[str, float] = {}  # value key -> when this process last used it
        self._fresh()
        _STORES.add(self)

    def _fresh(self) -> None:
        """The thread's state, new (at construction, and in a child after ``fork``)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._arrived = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._ops: dict[str, list[ValueOp]] = {}
        self._pending = 0
        self._holds: list[tuple[_Lease | None, tuple[Bucket, ...], float, float, float]] = []
        self._returns: list[tuple[tuple[Bucket, ...], list[str], float]] = []
        self._urgent = False
        self._busy_since: float | None = None
        self._started = 0
        self._done = 0
        self._last = -math.inf  # when the last round trip started

    def _after_fork(self) -> None:
        """In a child: no thread, no leases (the slots are the parent's), nothing queued."""
        self._mirror.after_fork()
        self._fresh()
        self._leases = {}
        self._by_list = {}
        self._touched = {}

    @property
    def degraded(self) -> bool:
        """Whether the last attempt to reach Redis failed (local state is in use)."""
        return self._down

    def close(self) -> None:
        """Give back unused leased tokens, push what is queued, stop the thread.

        Closes the client if this store built it from a URL. The store keeps
        working afterwards, with local state only.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for lease in self._leases.values():
                if lease.slots:
                    self._returns.append((lease.buckets, lease.keys, len(lease.slots) * lease.cost))
                    lease.slots.clear()
            thread = self._thread if self._pid == os.getpid() else None
            self._urgent = True
            self._wake.notify()
        if thread is not None:
            thread.join(self.timeout * 2 + 1.0)
        if self._owned:
            self._client.close()

    def sync(self, timeout: float | None = None) -> bool:
        """Push every change made so far and read back the values in use, waiting for it.

        Not needed in normal use (a background thread does this every
        ``sync_interval``); useful before reading the same state elsewhere.

        Args:
            timeout: the longest to wait, in seconds (``None``: ``4 * timeout``
                of the store).

        Returns:
            Whether the round trip was made (``False``: Redis failed, the store
            is closed, or the wait timed out).
        """
        wait = 4 * self.timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                return False
            if self._down:
                self._retry_at = -math.inf  # try now
            target = self._started + 1
            self._urgent = True
            self._ask()
            done = self._arrived.wait_for(lambda: self._done >= target, wait)
            return done and not self._down

    # -- the Store protocol ------------------------------------------------------------

    def take(
        self, buckets: Sequence[Bucket], cost: float, now: float, max_wait: float = math.inf
    ) -> float:
        """See :meth:`Store.take`; served from this process's lease (see the module docstring)."""
        check_cost(cost)
        if not buckets:
            return 0.0
        if self._down or self._closed:
            return self._mirror.take(buckets, cost, now, max_wait)
        # A limiter passes the same list for a key every time: find its lease by
        # identity first (holding the list, so its id is not reused).
        known = self._by_list.get(id(buckets))
        if (
            known is not None
            and known[0] is buckets
            and known[1] == cost
            and len(buckets) == len(known[2].buckets)
            and buckets[0] is known[2].buckets[0]
            and buckets[-1] is known[2].buckets[-1]
        ):
            lease = known[2]
        else:
            ident = (cost, *buckets)
            found = self._leases.get(ident)
            if found is None:
                found = self._new_lease(ident, buckets, cost)
                if found is None:
                    return self._mirror.take(buckets, cost, now, max_wait)
            lease = found
            if len(self._by_list) >= _MAX_LISTS:
                self._by_list = {}
            self._by_list[id(buckets)] = (buckets, cost, lease)
        t = _monotonic()
        with self._lock:
            if lease.slots:
                return self._pop(lease, t, max_wait)
        wait = self._fetch(lease, t, max_wait)
        if wait is None:
            return self._mirror.take(buckets, cost, now, max_wait)
        return wait

    def hold(
        self, buckets: Sequence[Bucket], seconds: float, now: float, cost: float = 1.0
    ) -> None:
        """See :meth:`Store.hold`; sent to Redis at once, without waiting for it."""
        check_cost(seconds, "seconds")
        check_cost(cost)
        if not buckets:
            return
        self._mirror.hold(buckets, seconds, now, cost)
        if self._down or self._closed:
            return
        held = {b.key for b in buckets}
        if any(b.key in self._bad for b in buckets):
            return
        t = _monotonic()
        with self._lock:
            for lease in self._leases.values():
                if any(b.key in held for b in lease.buckets):
                    lease.slots.clear()
                    lease.epoch += 1
            self._holds.append((None, tuple(buckets), seconds, cost, t))
            self._ask()

    @property
    def version(self) -> int:
        """See :attr:`MemoryStore.version`: that of this process's copy, which
        changes as calls write and as what Redis answers is copied in."""
        return self._mirror.version

    def get(self, key: str, now: float) -> float | None:
        """See :meth:`Store.get`; read from this process's copy."""
        self._touch(key)
        return self._mirror.get(key, now)

    def get_many(self, keys: Sequence[str], now: float) -> list[float | None]:
        """See :meth:`Store.get_many`; read from this process's copy."""
        t = _monotonic()
        touched = self._touched
        for key in keys:
            last = touched.get(key)
            if last is None or t - last > _WATCH:
                self._first_use(key, t)
            else:
                touched[key] = t
        return self._mirror.get_many(keys, now)

    def set(self, key: str, value: float, ttl: float, now: float) -> None:
        """See :meth:`Store.set`; applied here at once, in Redis within ``sync_interval``."""
        check_ttl(ttl)
        t = self._touch(key)
        with self._lock:
            self._mirror.set(key, value, ttl, now)
            if self._shared(key):
                # a set makes what came before it irrelevant
                self._ops[key] = [ValueOp(True, float(value), ttl, t)]
                self._queued()

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
        """See :meth:`Store.incr`; applied here at once, in Redis within ``sync_interval``."""
        check_ttl(ttl)
        t = self._touch(key)
        mirror = self._mirror
        if not mirror.holds(key) and max(low, min(high, initial + amount)) == initial:
            return initial  # absent, and the result is what absent means: nothing to change
        with self._lock:
            value = mirror.incr(key, amount, ttl, now, initial=initial, low=low, high=high)
            if self._shared(key):
                ops = self._ops.get(key)
                if ops is None:
                    self._ops[key] = [ValueOp(False, amount, ttl, t, initial, low, high)]
                elif not ops[-1].absorb(amount, ttl, t, initial, low, high):
                    ops.append(ValueOp(False, amount, ttl, t, initial, low, high))
                self._queued()
        return value

    # -- the caller's side ---------------------------------------------------------------

    def _touch(self, key: str) -> float:
        """Note that ``key`` is in use (now: returned); a key not used lately is read back."""
        t = _monotonic()
        touched = self._touched
        last = touched.get(key)
        if last is None or t - last > _WATCH:
            self._first_use(key, t)
        else:
            touched[key] = t  # a key already there: the dict keeps its size
        return t

    def _first_use(self, key: str, t: float) -> None:
        if key not in self._bad and not self._sendable(self._key(key)):
            self._bad.add(key)
        with self._lock:  # keys are added (and removed) under the lock only
            self._touched[key] = t
            if not (self._closed or self._down):
                self._urgent = True
                self._ask()

    def _shared(self, key: str) -> bool:
        """Whether a change to ``key`` is to be sent to Redis (under the lock)."""
        if self._down or self._closed:
            return False
        if key in self._bad:
            self._confined_failure("UnicodeEncodeError", f"the client cannot send key {key!r}")
            return False
        return True

    def _queued(self) -> None:
        """One more change queued (under the lock): push early when many are."""
        self._pending += 1
        if self._pending >= _PUSH_AT:
            self._urgent = True
            self._ask()
        elif self._thread is None:
            self._ask()

    def _new_lease(
        self, ident: tuple[Any, ...], buckets: Sequence[Bucket], cost: float
    ) -> _Lease | None:
        keys = [self._key(b.key) for b in buckets]
        if not all(self._sendable(k) for k in keys):
            self._confined_failure("UnicodeEncodeError", "the client cannot send a bucket's key")
            return None
        size = 1
        if self.lease > 0 and cost > 0:
            tokens = min(b.rate for b in buckets) * self.lease
            burst = min(b.capacity for b in buckets)
            size = max(1, min(_MAX_LEASE, int(min(tokens, burst) / cost)))
        lease = _Lease(ident, tuple(buckets), keys, cost, size)
        with self._lock:
            return self._leases.setdefault(ident, lease)

    def _pop(self, lease: _Lease, t: float, max_wait: float) -> float:
        """Hand out the lease's next slot, or say how far it is (under the lock)."""
        wait = lease.slots[0] - t
        if wait < 0.0:
            wait = 0.0
        if wait <= max_wait:
            slot = lease.slots.popleft()
            if slot > lease.tail:
                lease.tail = slot
            if (
                t - lease.last < _HOT
                and 2 * len(lease.slots) <= lease.size
                and not lease.fetching
                and self.lease > 0
            ):
                lease.fetching, lease.demand = True, None  # refill ahead of need
                self._ask()
            lease.last = lease.used = t
        return wait

    def _fetch(self, lease: _Lease, t: float, max_wait: float) -> float | None:
        """Wait (at most ``timeout``) for slots from Redis; ``None``: pace locally."""
        deadline = t + self.timeout
        with self._lock:
            if self._leases.get(lease.ident) is not lease:  # forgotten while idle: back in use
                self._leases[lease.ident] = lease
            while True:
                if lease.slots:
                    return self._pop(lease, _monotonic(), max_wait)
                if self._down or self._closed or self._stalled(t):
                    return None
                if not lease.fetching:
                    lease.fetching, lease.demand, lease.first = True, max_wait, None
                    lease.failed = False
                    self._ask()
                left = deadline - _monotonic()
                if left <= 0 or not self._arrived.wait_for(_answered(lease, lease.gen), left):
                    return None
                if lease.slots:
                    continue
                if lease.failed:
                    return None
                if lease.first is not None:
                    wait, at = lease.first
                    wait = max(0.0, wait - (_monotonic() - at))
                    if wait > max_wait:
                        return wait  # refused, or only measured: nothing taken
                # That fetch asked for less than this call can wait: ask again.

    def _stalled(self, t: float) -> bool:
        """Whether the round trip under way has taken longer than ``timeout``."""
        busy = self._busy_since
        return busy is not None and t - busy > self.timeout

    def _ask(self) -> None:
        """Wake the thread, starting it if need be (under the lock)."""
        if self._closed and self._thread is None:
            return
        if self._thread is None or self._pid != os.getpid():
            if self._pid != os.getpid():  # pragma: no cover - register_at_fork handles this
                self._after_fork()
            self._thread = threading.Thread(
                target=self._run, name=f"resilience-redis-{self._where}", daemon=True
            )
            self._thread.start()
        self._wake.notify()

    def _key(self, key: str) -> str:
        return self.prefix + _safe_key(key)

    def _sendable(self, key: str) -> bool:
        try:
            self._encode(key)
        except (UnicodeError, ValueError):
            return False
        return True

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    t = _monotonic()
                    due = self._due(t)
                    if due <= t:
                        break
                    if self._closed:
                        self._thread = None
                        self._arrived.notify_all()
                        return
                    self._wake.wait(None if due == math.inf else due - t)
                work = self._collect(t)
                self._started += 1
                self._busy_since = t
            try:
                replies, error = self._send(work), None
            except Exception as exc:
                replies, error = [], exc
            with self._lock:
                self._busy_since = None
                self._apply(work, replies, error)
                self._done += 1
                self._arrived.notify_all()
                if self._closed and not (self._ops or self._holds or self._returns):
                    self._thread = None
                    return

    def _due(self, t: float) -> float:
        """When the next round trip is due (under the lock)."""
        if self._down:
            if self._closed:
                return math.inf
            if self._urgent and t >= self._retry_at:
                return t
            active = any(t - last <= _WATCH for last in list(self._touched.values())) or bool(
                self._leases
            )
            return max(self._retry_at, t) if active else math.inf
        if self._urgent or self._holds or self._returns:
            return t
        if any(lease.fetching and not lease.sent for lease in self._leases.values()):
            return t
        if self._closed:
            return t if self._ops else math.inf
        if self._ops or self._touched:
            return self._last + self.sync_interval
        idle = [lease.used + _IDLE for lease in self._leases.values() if lease.slots]
        return min(idle, default=math.inf)

    def _collect(self, t: float) -> _Work:
        """Everything to send now, taken off the queues (under the lock)."""
        self._urgent = False
        self._last = t
        work = _Work(t)
        if self._down:
            work.probe = True
        work.ops, self._ops, self._pending = self._ops, {}, 0
        work.holds, self._holds = self._holds, []
        for ident, lease in list(self._leases.items()):
            if lease.slots and t - lease.used > _IDLE and not lease.fetching:
                self._returns.append((lease.buckets, lease.keys, len(lease.slots) * lease.cost))
                lease.slots.clear()
            if lease.fetching and not lease.sent and not self._closed:
                lease.sent = True
                count = max(1, lease.size - len(lease.slots))
                work.fetches.append((lease, lease.epoch, count, lease.demand))
            elif not lease.slots and not lease.fetching and t - lease.used > _FORGET:
                del self._leases[ident]
                self._by_list = {}
        work.returns, self._returns = self._returns, []
        # A snapshot (atomic under the GIL): callers update the times meanwhile.
        stale = [key for key, last in list(self._touched.items()) if t - last > _WATCH]
        for key in stale:
            del self._touched[key]
            if key not in work.ops:
                self._mirror.put(key, None, 0.0)  # read as absent until read back again
        work.reads = [key for key in list(self._touched) if key not in self._bad]
        return work

    def _send(self, work: _Work) -> list[tuple[Batch, list[Any] | BaseException]]:
        """One script per hash slot; a confined error answers only its own slot."""
        groups: dict[Any, Batch] = {}

        def batch(key: str) -> Batch:
            slot = None if self._slot is None else self._slot(key)
            found = groups.get(slot)
            if found is None:
                found = groups[slot] = Batch()
            return found

        for _, buckets, seconds, cost, at in work.holds:
            keys = [self._key(b.key) for b in buckets]
            left = seconds - (work.at - at)
            if left > 0:
                batch(keys[0]).hold(keys, buckets, left, cost, None)
        for buckets, keys, tokens in work.returns:
            batch(keys[0]).give_back(keys, buckets, tokens, None)
        for key, ops in work.ops.items():
            redis_key = self._key(key)
            for op in ops:
                # A value's time to live counts from when it was changed; from
                # ``work.at``, as the values read back in this round trip are.
                batch(redis_key).write(redis_key, op, None, work.at - op.at)
        for key in work.reads:
            redis_key = self._key(key)
            batch(redis_key).read(redis_key, key)
        for lease, _, count, demand in work.fetches:
            # A refill ahead of need takes a slot only if it follows the ones
            # already held (or just handed out) within ``lease`` seconds.
            ahead = max(0.0, lease.tail - work.at) + self.lease
            max_first = ahead if demand is None else demand
            batch(lease.keys[0]).lease(
                lease.keys, lease.buckets, lease.cost, count, max_first, self.lease, lease
            )
        if not groups and work.probe:
            self._client.register_script("return 1")()  # Redis is back if this answers
        out: list[tuple[Batch, list[Any] | BaseException]] = []
        for group in groups.values():
            try:
                out.append((group, list(self._script(keys=group.keys, args=group.args))))
            except Exception as exc:
                if not confined_to_the_call(exc):
                    raise
                out.append((group, exc))
        return out

    def _apply(
        self,
        work: _Work,
        replies: list[tuple[Batch, list[Any] | BaseException]],
        error: BaseException | None,
    ) -> None:
        """Take in what Redis answered (under the lock)."""
        t = _monotonic()
        for lease, _, _, _ in work.fetches:
            lease.sent = lease.fetching = False
            lease.gen += 1
        if error is not None:
            self._failed(error, t)
            for lease, _, _, _ in work.fetches:
                lease.failed = True
            return
        if self._down:
            self._down = False
            _log.info("Redis at %s is reachable again; limits are shared again", self._where)
        for group, reply in replies:
            if isinstance(reply, BaseException):
                self._confined_failure(type(reply).__name__, str(reply))
                for ref in group.refs:
                    if isinstance(ref, _Lease):
                        ref.failed = True
                continue
            for ref, entry in zip(group.refs, reply, strict=False):
                if isinstance(entry, (bytes, str)):
                    text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else entry
                    self._confined_failure("ResponseError", text[1:])
                    if isinstance(ref, _Lease):
                        ref.failed = True
                    elif isinstance(ref, str):
                        self._bad.add(ref)  # kept local from now on
                elif isinstance(ref, _Lease):
                    self._leased(ref, work, entry, t)
                elif isinstance(ref, str):
                    self._read_back(ref, entry, work.at)

    def _leased(self, lease: _Lease, work: _Work, entry: list[Any], t: float) -> None:
        epoch = next(e for owner, e, _, _ in work.fetches if owner is lease)
        first, now_slots, later = float(entry[0]), int(entry[1]), entry[2:]
        if not now_slots and not later:
            lease.first = (first, t)
        elif self._closed:
            # Closed while this lease was on its way: no call will use its slots,
            # so they go back to Redis in the thread's last round trip.
            tokens = (now_slots + len(later)) * lease.cost
            self._returns.append((lease.buckets, lease.keys, tokens))
        elif epoch == lease.epoch:
            # Slots count from when the answer came: never earlier than Redis gave them.
            slots = lease.slots
            slots.extend(repeat(t, now_slots))
            slots.extend(t + float(w) for w in later)
            lease.used = t
            lease.tail = max(lease.tail, slots[-1])

    def _read_back(self, key: str, entry: list[Any], sent: float) -> None:
        raw, pttl = entry[0], int(entry[1])
        value = None if raw is None or pttl == -2 else float(raw)
        # Redis counted the time to live from a moment after ``sent``: never later.
        expires = math.inf if pttl < 0 else sent + pttl / 1000.0
        value, expires = replay(value, expires, self._ops.get(key, ()))
        self._mirror.put(key, value, expires)

    def _failed(self, exc: BaseException, t: float) -> None:
        """Redis itself failed: local state for ``retry_interval`` seconds (under the lock)."""
        self._retry_at = t + self.retry_interval
        first = not self._down
        self._down = True
        self._ops, self._pending, self._holds, self._returns = {}, 0, [], []
        for lease in self._leases.values():
            lease.slots.clear()
        if first:
            _log.warning(
                "Redis at %s failed (%s: %s); keeping shared limits locally in this "
                "process, trying Redis again every %g s",
                self._where,
                type(exc).__name__,
                str(exc)[:200],
                self.retry_interval,
            )

    def _confined_failure(self, kind: str, message: str) -> None:
        """One key failed on its own: log it, Redis stays in use."""
        first = kind not in self._confined
        self._confined.add(kind)
        _log.log(
            logging.WARNING if first else logging.DEBUG,
            "Redis at %s refused one call (%s: %s); that call keeps its state locally, "
            "every other key stays on Redis",
            self._where,
            kind,
            message[:200],
        )


class _Work:
    """One round trip's worth of work, taken off the queues."""

    __slots__ = ("at", "fetches", "holds", "ops", "probe", "reads", "returns")

    def __init__(self, at: float) -> None:
        self.at = at
        self.probe = False
        self.ops: dict[str, list[ValueOp]] = {}
        self.holds: list[tuple[_Lease | None, tuple[Bucket, ...], float, float, float]] = []
        self.returns: list[tuple[tuple[Bucket, ...], list[str], float]] = []
        self.fetches: list[tuple[_Lease, int, int, float | None]] = []
        self.reads: list[str] = []


def _answered(lease: _Lease, gen: int) -> Callable[[], bool]:
    return lambda: lease.gen != gen


_STORES: weakref.WeakSet[RedisStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _encoder(client: Any) -> Callable[[str], Any]:
    """How ``client`` encodes a key (to keep keys it cannot send local), if it says."""
    get = getattr(client, "get_encoder", None)
    if callable(get):
        try:
            encoder = get()
            encode = encoder.encode
        except Exception:
            pass
        else:
            if callable(encode):
                checked: Callable[[str], Any] = encode
                return checked
    return lambda key: key.encode("utf-8")


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
