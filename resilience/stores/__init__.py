"""Where every strategy keeps its state: rate-limit buckets, the retry budget, circuits.

A :class:`Store` offers the few operations that must be atomic, and nothing
else, so that a Lua script makes each of them atomic across processes and
machines:

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
  state, and no call waits on Redis: each process answers from its own copy,
  and a background thread sends changes in batches and leases rate-limit
  tokens a few at a time (see :mod:`resilience.stores.redis` for how stale
  shared state may be, and what leases allow). ``redis`` (redis-py) is imported
  only when a ``RedisStore`` is built from a URL; it is an optional extra.

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
unreachable, slow or unhealthy (refused or dropped connections, timeouts,
loading, read-only, out of memory, a cluster down), :class:`RedisStore` logs one
WARNING on the ``"resilience"`` logger, carries on with its local copy (each
process then keeps to the limit on its own; a call waits at most the store's
``timeout``), and tries Redis again after ``retry_interval`` seconds; an INFO
line says when Redis is back. An error confined to one key (a key the client
cannot encode, a ``WRONGTYPE`` key) keeps that key local: every other key stays
on Redis. Clients it builds from a URL have short socket timeouts and no
retries of their own.
"""

from resilience.stores.base import Bucket, Store
from resilience.stores.memory import MemoryStore
from resilience.stores.redis import RedisStore

__all__ = ["Bucket", "MemoryStore", "RedisStore", "Store"]
