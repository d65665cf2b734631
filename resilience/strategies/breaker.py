"""The circuit breaker: fail fast while a host (and region) keeps failing.

Opt-in (``circuit_breaker=CircuitBreaker()`` or ``circuit_breaker=True``). One
circuit per host and region, in the manner of Polly's advanced circuit breaker:

* **closed**: requests flow; outcomes are counted over a sliding window of
  ``window`` seconds. When a failure finds at least ``min_calls`` outcomes in
  the window and the share of failures at ``failure_ratio`` or more, it opens.
* **open**: requests fail at once, without being sent, for ``open_for`` seconds.
* **half-open**: up to ``probes`` requests go through; a success closes the
  circuit (with an empty window), a failure opens it again.

A failure is a network error or a ``TRANSIENT`` answer (5xx); any other answer
is a success, since the server is up.

State lives in the transport's :class:`~resilience.stores.Store`, the same way
in memory and in Redis, under ``breaker:{host|region}`` (a Redis Cluster hash
tag, so one circuit's keys share a node):

* ``:open`` - present while open (expires after ``open_for``);
* ``:trip`` - present from opening until a probe succeeds (or
  ``open_for + window`` passes): once ``:open`` has expired it means half-open;
* ``:probes`` - probes in flight while half-open;
* ``:gen`` - bumped whenever the circuit opens or closes, so that the window
  starts empty;
* ``:<gen>:<i>:n`` / ``:f`` - outcomes and failures in bucket ``i`` of
  ``window / 2`` seconds of wall-clock time. The count over the window is the
  current bucket plus the previous one weighted by the share of it still
  inside the window (the sliding-window estimate), rounded to whole
  outcomes. Wall-clock time because processes on different machines share
  no monotonic clock; a skew of a second only shifts bucket edges.

Every key expires, so a host that is no longer called costs nothing once its
keys have expired.

The success path of a closed circuit reads three values before sending and
then only counts the success in the circuit's own local counter (no lock, no
store write): successes matter only to the ratio a failure is judged by. The
counted successes are added to their own bucket in the store when this
strategy records a failure of that circuit (first, so the ratio is the same as
if each success had been written at once), when the bucket or generation
changes, with the first success counted ``FLUSH_EVERY`` seconds or more after
the last flush, and when the circuit leaves this strategy's small cache: other
transports and processes sharing the store see them that much later (a
:class:`RedisStore` adds its own ``sync_interval``), as they would see
successes sent that much later.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from resilience.core import checks
from resilience.core.classification import Category, Classification
from resilience.errors import CircuitOpen
from resilience.stores.base import Store
from resilience.strategies.base import BaseStrategy, CallInfo, Outcome, Refusal

__all__ = ["BreakerStrategy", "CircuitBreaker"]

_NAMES_MAX = 128
"""Circuits whose key names are kept made (a small cache, cleared when full)."""

FLUSH_EVERY = 0.02
"""The longest (monotonic seconds) a success counted locally waits before it
is added to the store, when nothing else (a failure, a new bucket) adds it sooner."""


#: The shortest ``window`` and ``open_for``: the window's bucket index is
#: ``wall / (window / 2)``, and store expiries are whole milliseconds.
MIN_SECONDS = 1e-3


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Configuration of the circuit breaker (``circuit_breaker=`` of a policy).

    Attributes:
        failure_ratio: share of failed outcomes in the window that opens it,
            in ``(0, 1]`` (``1``: only when every outcome failed).
        min_calls: fewest outcomes in the window before the ratio is judged
            (an int from ``1`` to ``10**9``).
        window: seconds of outcomes considered, ``0.001`` to ``1e9``.
        open_for: seconds the circuit stays open before letting probes
            through, ``0.001`` to ``1e9``.
        probes: requests allowed through at once while half-open (an int
            from ``1`` to ``10**9``).

    Raises:
        TypeError: a value of the wrong type (a bool is neither an int nor a number).
        ValueError: a value out of its range; the message names the field.
    """

    failure_ratio: float = 0.5
    min_calls: int = 10
    window: float = 30.0
    open_for: float = 15.0
    probes: int = 1

    def __post_init__(self) -> None:
        put = object.__setattr__
        ratio = checks.number(
            "circuit_breaker.failure_ratio", self.failure_ratio, high=1.0, low_open=True
        )
        put(self, "failure_ratio", ratio)
        for name in ("min_calls", "probes"):
            put(self, name, checks.integer(f"circuit_breaker.{name}", getattr(self, name), low=1))
        for name in ("window", "open_for"):
            value = checks.number(
                f"circuit_breaker.{name}", getattr(self, name), low=MIN_SECONDS, unit=" seconds"
            )
            put(self, name, value)

    def build(self, store: Store, wall: Callable[[], float]) -> BreakerStrategy:
        """The strategy, keeping its circuits in ``store``."""
        return BreakerStrategy(self, store, wall)


#: Seconds a circuit read closed is trusted without reading it again while
#: the store has not changed (a RedisStore stops watching keys unread for 2 s).
REREAD = 0.25


class _Circuit:
    """One circuit as this process knows it: its key names, made once, and the
    successes it has counted but not yet added to the store.

    Successes are counted with ``next(successes)``, which is atomic, so
    concurrent threads lose none without taking a lock; a flush takes the
    strategy's lock, draws one number itself to read the count, and adds what
    was counted since the last flush (``mark``) to bucket ``n_key``.
    """

    __slots__ = (
        "closed_gen",
        "due",
        "flushed",
        "gen",
        "index",
        "mark",
        "n_key",
        "name",
        "probes_key",
        "seen",
        "state_keys",
        "successes",
        "trusted_until",
        "until",
    )

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        #: ``:open``, ``:trip`` and ``:gen``, read together before every attempt.
        self.state_keys = (name + ":open", name + ":trip", name + ":gen")
        self.probes_key = name + ":probes"
        self.successes = itertools.count()
        self.mark = next(self.successes)
        self.gen = math.nan  # no bucket yet (NaN equals nothing): the first outcome picks one
        self.index: int | None = None
        self.n_key = ""
        self.flushed = now
        #: The store's version when the circuit was last read closed (-1: not
        #: read closed), until when (monotonic) that read is trusted, and the
        #: circuit's generation then.
        self.seen: int | None = -1
        self.trusted_until = now
        self.closed_gen = 0.0
        #: Monotonic time at which the bucket ``index`` ends (-inf: not known).
        self.until = -math.inf
        #: Monotonic time from which a success is counted the slow way: the
        #: bucket ended, or a flush is due (-inf: now).
        self.due = -math.inf


class BreakerStrategy(BaseStrategy):
    """The circuit breaker as a strategy: gates attempts, records outcomes."""

    __slots__ = ("_circuits", "_lock", "_versioned", "_width", "config", "store", "wall")

    def __init__(self, config: CircuitBreaker, store: Store, wall: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.wall = wall
        self._width = config.window / 2.0
        self._lock = threading.Lock()
        self._circuits: dict[tuple[str | None, str | None], _Circuit] = {}
        #: Whether the store tells when it changed (``MemoryStore``, ``RedisStore``).
        self._versioned = isinstance(getattr(store, "version", None), int)

    @staticmethod
    def circuit(host: str | None, region: str | None) -> str:
        """The store name of the circuit of ``host`` and ``region``."""
        return f"breaker:{{{host or ''}|{region or ''}}}"

    def _circuit(self, call: CallInfo, now: float) -> _Circuit:
        """The circuit of the call's host and region, made on first use."""
        where = (call.host, call.region)
        circuit = self._circuits.get(where)
        if circuit is None:
            if len(self._circuits) >= _NAMES_MAX:
                # Many hosts: start over rather than grow, adding what was counted.
                for known in list(self._circuits.values()):
                    self._flush(known, now)
                self._circuits.clear()
            circuit = self._circuits.setdefault(where, _Circuit(self.circuit(*where), now))
        return circuit

    def _flush(
        self, circuit: _Circuit, now: float, gen: float = 0.0, index: int | None = None
    ) -> None:
        """Add the successes ``circuit`` counted to the store; with ``gen`` and
        ``index``, count the next ones in that bucket."""
        with self._lock:
            mark = next(circuit.successes)
            counted = mark - circuit.mark - 1  # the flush drew ``mark`` itself
            circuit.mark = mark
            key = circuit.n_key
            if index is not None and (circuit.gen != gen or circuit.index != index):
                circuit.gen, circuit.index = gen, index
                circuit.n_key = f"{circuit.name}:{int(gen)}:{index}:n"
            circuit.flushed = now
        if counted > 0:
            self.store.incr(key, float(counted), self.config.window * 1.5, now)

    def state(self, name: str, now: float) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` for circuit ``name``."""
        opened, tripped = self.store.get_many((name + ":open", name + ":trip"), now)
        if opened:
            return "open"
        return "half_open" if tripped else "closed"

    def before_attempt(self, call: CallInfo, now: float, max_wait: float) -> float | Refusal:
        """Go while closed; refuse while open; one of ``probes`` slots while half-open.

        A circuit read closed stays closed until the store changes: while its
        version is the one seen then (and for at most :data:`REREAD` seconds,
        so that a shared store keeps watching the keys), the keys are not read
        again.
        """
        circuit = self._circuits.get((call.host, call.region)) or self._circuit(call, now)
        store = self.store
        version = store.version if self._versioned else None  # type: ignore[attr-defined]
        if version == circuit.seen and now < circuit.trusted_until:
            call.notes[self] = circuit
            return 0.0
        opened, tripped, generation = store.get_many(circuit.state_keys, now)
        if not opened and not tripped:
            # Closed: the outcome of this attempt counts in this generation's window.
            circuit.closed_gen = float(generation or 0.0)
            call.notes[self] = circuit
            if version is not None:
                circuit.seen, circuit.trusted_until = version, now + REREAD
            return 0.0
        circuit.seen = -1
        if not opened:  # half-open: a probe, if a slot is free
            probes_key = circuit.probes_key
            probes = self.store.incr(probes_key, 1.0, self.config.open_for, now, low=0.0)
            if probes <= self.config.probes:
                return 0.0
            self.store.incr(probes_key, -1.0, self.config.open_for, now, low=0.0)
        return self._refusal(call)

    def record(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        """Count the outcome; open on a failure over the ratio, close on a good probe."""
        if outcome is Outcome.SUCCESS:
            # What the gate noted: the circuit, when it was closed as this attempt was let go.
            circuit: _Circuit | None = call.notes.pop(self, None)  # type: ignore[assignment]
            if circuit is not None:
                # A success only counts (while the bucket lasts, without reading the clock).
                gen = circuit.closed_gen
                if now >= circuit.due or circuit.gen != gen:
                    self._count_slowly(circuit, now, gen)
                else:
                    next(circuit.successes)
                return
        elif outcome is Outcome.LATE:
            return  # a hedged copy follows: the attempt's answer will count
        self._record(call, outcome is Outcome.FAILURE, now)

    def _count_slowly(self, circuit: _Circuit, now: float, gen: float) -> None:
        """Count a success in a circuit closed in generation ``gen``, moving to
        its current bucket and adding the counted successes to the store when due."""
        if now >= circuit.until or circuit.gen != gen:
            wall = self.wall()
            index = math.floor(wall / self._width)
            if circuit.index != index or circuit.gen != gen:
                self._flush(circuit, now, gen, index)
            circuit.until = now + (index + 1) * self._width - wall
        next(circuit.successes)
        if now - circuit.flushed >= FLUSH_EVERY:
            self._flush(circuit, now)
        circuit.due = min(circuit.until, circuit.flushed + FLUSH_EVERY)

    def _record(self, call: CallInfo, failed: bool, now: float) -> None:
        """Count an outcome the quick way of :meth:`record` does not settle."""
        config = self.config
        store = self.store
        circuit = call.notes.pop(self, None)
        if isinstance(circuit, _Circuit):  # the circuit was closed when this attempt was let go
            generation: float | None = circuit.closed_gen
            opened = tripped = None
        else:
            circuit = self._circuit(call, now)
            opened, tripped, generation = store.get_many(circuit.state_keys, now)
        if opened:
            return
        name = circuit.name
        if tripped:  # half-open: this was a probe
            store.incr(circuit.probes_key, -1.0, config.open_for, now, low=0.0)
            if failed:
                self._open(name, now)
            else:
                store.set(circuit.state_keys[1], 0.0, config.window, now)
                store.incr(circuit.state_keys[2], 1.0, config.window * 4, now)
            return
        gen = float(generation or 0.0)
        if not failed:
            self._count_slowly(circuit, now, gen)
            return
        width = self._width
        wall = self.wall()
        index = math.floor(wall / width)
        # The successes counted so far go first: the ratio is judged on every outcome.
        self._flush(circuit, now, gen, index)
        base = f"{name}:{int(gen)}:"
        ttl = config.window * 1.5
        store.incr(f"{base}{index}:n", 1.0, ttl, now)
        store.incr(f"{base}{index}:f", 1.0, ttl, now)
        # Read the counts again, after both increments: a thread counting at
        # the same moment may have bumped one and not yet the other.
        total, failures, previous_n, previous_f = (
            value or 0.0
            for value in store.get_many(
                [f"{base}{i}:{k}" for i in (index, index - 1) for k in "nf"], now
            )
        )
        # The previous bucket counts for the part of it still inside the window,
        # rounded to whole outcomes: outcomes close together on both sides of
        # a bucket edge count whole, not 3.99 of 4.
        weight = 1.0 - (wall - index * width) / width
        total = math.floor(total + weight * previous_n + 0.5)
        failures = math.floor(failures + weight * previous_f + 0.5)
        if total >= config.min_calls and failures / total >= config.failure_ratio:
            self._open(name, now)

    def _open(self, name: str, now: float) -> None:
        config = self.config
        self.store.set(name + ":open", 1.0, config.open_for, now)
        self.store.set(name + ":trip", 1.0, config.open_for + config.window, now)
        self.store.set(name + ":probes", 0.0, config.open_for, now)
        self.store.incr(name + ":gen", 1.0, config.window * 4, now)

    @staticmethod
    def _refusal(call: CallInfo) -> Refusal:
        host, region = call.host, call.region
        where = f"{host}" + (f" ({region})" if region else "")
        classification = Classification.of(
            call.vendor,
            Category.TRANSIENT,
            0,
            code="circuit_open",
            message=f"circuit open for {where}: not sent",
        )
        return Refusal(classification, CircuitOpen, "circuit open; not retried")
