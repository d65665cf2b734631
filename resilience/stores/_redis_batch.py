"""One round trip per hash slot: the Lua script that applies a batch, and its encoding.

:class:`~resilience.stores.RedisStore` gathers what its process did since the
last round trip (value increments and sets, holds, lease requests, tokens given
back, values to read back) and sends it as one ``EVALSHA`` of
:data:`LUA_BATCH` per hash slot, so a Redis Cluster never sees a cross-slot
script. Each operation of a batch is applied by itself: an error on one key
(``WRONGTYPE``) answers that operation with an error and leaves the others
applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from resilience.stores.base import Bucket

__all__ = ["LUA_BATCH", "Batch", "ValueOp", "arg", "ms", "replay"]

# The bucket arithmetic of ``stores.base`` once more, in Lua, on the server's clock.
# Numbers travel as strings with full precision (a Lua number in a reply would be
# truncated to an integer). Every operation is ``code, n, <n arguments>`` so that
# one failing operation can be skipped; each adds one entry to the reply: a table
# for reads and leases, ``1`` for writes, or an error string starting with ``!``.
LUA_BATCH = """
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
-- m buckets from ARGV[p]: key index, rate, capacity each
local function buckets(p)
  local m = tonumber(ARGV[p])
  local ks, rates, caps, bs, ats = {}, {}, {}, {}, {}
  for j = 1, m do
    local q = p + 3 * (j - 1)
    ks[j] = KEYS[tonumber(ARGV[q + 1])]
    rates[j], caps[j] = tonumber(ARGV[q + 2]), tonumber(ARGV[q + 3])
    bs[j], ats[j] = load(ks[j], rates[j], caps[j])
  end
  return m, ks, rates, caps, bs, ats
end
local ops = {}
-- read: key -> {value or nil, pttl}
ops['g'] = function(p)
  local k = KEYS[tonumber(ARGV[p])]
  return {redis.call('GET', k) or false, redis.call('PTTL', k)}
end
-- incr: key, amount, initial, low, high, ttl in ms
ops['i'] = function(p)
  local k, initial = KEYS[tonumber(ARGV[p])], tonumber(ARGV[p + 2])
  local v = tonumber(redis.call('GET', k)) or initial
  v = math.max(tonumber(ARGV[p + 3]), math.min(tonumber(ARGV[p + 4]), v + tonumber(ARGV[p + 1])))
  if v == initial then redis.call('DEL', k) else redis.call('SET', k, num(v), 'PX', ARGV[p + 5]) end
  return 1
end
-- set: key, value, ttl in ms
ops['s'] = function(p)
  redis.call('SET', KEYS[tonumber(ARGV[p])], ARGV[p + 1], 'PX', ARGV[p + 2])
  return 1
end
-- hold: seconds, cost, buckets
ops['h'] = function(p)
  local hold_end, cost = now + tonumber(ARGV[p]), tonumber(ARGV[p + 1])
  local m, ks, rates, caps, bs, ats = buckets(p + 2)
  for j = 1, m do
    local need = math.min(cost, caps[j])
    if hold_end > ats[j] + math.max(0, need - bs[j]) / rates[j] then
      save(ks[j], need, hold_end, rates[j], caps[j])
    end
  end
  return 1
end
-- give back: tokens, buckets (not into a bucket still held: no burst after a hold)
ops['r'] = function(p)
  local tokens = tonumber(ARGV[p])
  local m, ks, rates, caps, bs, ats = buckets(p + 1)
  for j = 1, m do
    if ats[j] <= now then
      save(ks[j], math.min(caps[j], bs[j] + tokens), ats[j], rates[j], caps[j])
    end
  end
  return 1
end
-- lease: cost, count, max_first, horizon, buckets
--   -> {first wait, slots granted with no wait, wait of each later slot granted}
-- Slot k waits as the k-th of k successive takes would; the first is granted only
-- within max_first, the next ones only within horizon of the first.
ops['l'] = function(p)
  local cost, count = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
  local max_first, horizon = tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3])
  local m, ks, rates, caps, bs, ats = buckets(p + 4)
  local out, first, now_slots = {}, 0, 0
  for k = 1, count do
    local w = 0
    for j = 1, m do
      local x = (ats[j] - now) + math.max(0, math.min(cost, caps[j]) - bs[j]) / rates[j]
      if x > w then w = x end
    end
    if k == 1 then
      first = w
      if w > max_first then break end
    elseif w > first + horizon then
      break
    end
    for j = 1, m do bs[j] = bs[j] - cost end
    if w <= 0 then now_slots = now_slots + 1 else out[#out + 1] = num(w) end
  end
  if now_slots + #out > 0 then
    for j = 1, m do save(ks[j], bs[j], ats[j], rates[j], caps[j]) end
  end
  table.insert(out, 1, now_slots)
  table.insert(out, 1, num(first))
  return out
end
local reply, i = {}, 1
while i <= #ARGV do
  local code, n = ARGV[i], tonumber(ARGV[i + 1])
  local ok, result = pcall(ops[code], i + 2)
  if ok then
    reply[#reply + 1] = result
  else
    local text = result
    if type(result) == 'table' then text = result.err end
    reply[#reply + 1] = '!' .. tostring(text)
  end
  i = i + 2 + n
end
return reply
"""

_BIG = 1.7976931348623157e308  # Lua 5.1's tonumber() may not read "inf"
_MAX_MS = 10**15  # about 31,000 years: far inside what PEXPIRE accepts


def arg(value: float) -> str:
    """A float as a script argument, exactly (``repr`` round-trips)."""
    if math.isinf(value):
        return repr(_BIG if value > 0 else -_BIG)
    return repr(float(value))


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds for ``PX``, at least 1."""
    return str(min(_MAX_MS, max(1, math.ceil(seconds * 1000.0))))


class ValueOp:
    """A change to one value made locally and not yet in Redis.

    Attributes:
        set: ``True`` for a ``set`` (``amount`` is the value), else an ``incr``.
        amount: what is added, or the value set.
        ttl: seconds the value is kept from when it is written.
        at: when it was made (monotonic seconds): its value expires ``ttl`` later.
        initial, low, high: the ``incr``'s start and bounds.
    """

    __slots__ = ("amount", "at", "high", "initial", "low", "set", "ttl")

    def __init__(
        self,
        set: bool,
        amount: float,
        ttl: float,
        at: float,
        initial: float = 0.0,
        low: float = -math.inf,
        high: float = math.inf,
    ) -> None:
        self.set = set
        self.amount = amount
        self.ttl = ttl
        self.at = at
        self.initial = initial
        self.low = low
        self.high = high

    def absorb(
        self, amount: float, ttl: float, at: float, initial: float, low: float, high: float
    ) -> bool:
        """Fold a later increment into this one if they fold; whether they did.

        Two increments fold when their bounds agree and their amounts have the
        same sign: clamping each step then gives what clamping the sum gives.
        """
        if (
            self.set
            or (self.amount < 0) != (amount < 0)
            or self.initial != initial
            or self.low != low
            or self.high != high
        ):
            return False
        self.amount += amount
        self.ttl, self.at = ttl, at
        return True


def replay(
    value: float | None, expires: float, ops: Sequence[ValueOp]
) -> tuple[float | None, float]:
    """``(value, expires)`` after ``ops``, as :class:`MemoryStore` would compute them."""
    for op in ops:
        if op.set:
            value, expires = op.amount, op.at + op.ttl
            continue
        current = op.initial if value is None or expires <= op.at else value
        current = max(op.low, min(op.high, current + op.amount))
        if current == op.initial:
            value, expires = None, op.at
        else:
            value, expires = current, op.at + op.ttl
    return value, expires


class Batch:
    """The operations of one hash slot, as ``KEYS`` and ``ARGV`` of :data:`LUA_BATCH`.

    ``refs`` holds, for every operation in order, what its reply entry answers
    (a key read back, a lease, or ``None`` for a write).
    """

    __slots__ = ("_index", "args", "keys", "refs")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[str] = []
        self.refs: list[Any] = []
        self._index: dict[str, int] = {}

    def _key(self, key: str) -> str:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return str(index)

    def _op(self, code: str, ref: Any, args: list[str]) -> None:
        self.args += [code, str(len(args)), *args]
        self.refs.append(ref)

    def _buckets(self, keys: Sequence[str], buckets: Sequence[Bucket]) -> list[str]:
        out = [str(len(buckets))]
        for key, b in zip(keys, buckets, strict=True):
            out += [self._key(key), arg(b.rate), arg(b.capacity)]
        return out

    def read(self, key: str, ref: Any) -> None:
        """Read ``key`` back: its value and its time to live."""
        self._op("g", ref, [self._key(key)])

    def write(self, key: str, op: ValueOp, ref: Any, elapsed: float = 0.0) -> None:
        """Apply ``op`` to ``key``, ``elapsed`` seconds after it was made.

        The value expires ``op.ttl`` after ``op.at``, as in a :class:`MemoryStore`,
        not ``op.ttl`` after it reaches Redis: it is sent with the time left.
        """
        ttl = ms(op.ttl - max(0.0, elapsed))
        if op.set:
            self._op("s", ref, [self._key(key), arg(op.amount), ttl])
        else:
            args = [arg(op.amount), arg(op.initial), arg(op.low), arg(op.high), ttl]
            self._op("i", ref, [self._key(key), *args])

    def hold(
        self, keys: Sequence[str], buckets: Sequence[Bucket], seconds: float, cost: float, ref: Any
    ) -> None:
        """Hold ``buckets`` for ``seconds`` (see :meth:`Store.hold`)."""
        self._op("h", ref, [arg(seconds), arg(cost), *self._buckets(keys, buckets)])

    def give_back(
        self, keys: Sequence[str], buckets: Sequence[Bucket], tokens: float, ref: Any
    ) -> None:
        """Put ``tokens`` back into every bucket (capped, never into a held bucket)."""
        self._op("r", ref, [arg(tokens), *self._buckets(keys, buckets)])

    def lease(
        self,
        keys: Sequence[str],
        buckets: Sequence[Bucket],
        cost: float,
        count: int,
        max_first: float,
        horizon: float,
        ref: Any,
    ) -> None:
        """Take up to ``count`` slots of ``cost`` (see :data:`LUA_BATCH`)."""
        args = [arg(cost), str(count), arg(max_first), arg(horizon)]
        self._op("l", ref, [*args, *self._buckets(keys, buckets)])
