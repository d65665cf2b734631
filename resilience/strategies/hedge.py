"""Hedged requests: a second copy of a late request, the first usable answer wins.

Retries rescue calls that fail; hedging rescues calls that are merely slow.
As in gRPC's ``hedgingPolicy`` (``hedgingDelay``, ``maxAttempts``), Envoy's
``hedge_policy`` and Polly v8's hedging strategy, when no answer has come
``delay`` seconds after an attempt was sent, a copy is sent, and whichever
usable answer comes first is returned. Dean and Barroso ("The Tail at Scale",
2013) hedged after the 95th percentile and cut BigTable's 99.9th-percentile
latency from 1,800 ms to 74 ms for 2% more requests; ``delay="p95"`` does the
same with the host's recent latencies.

The strategy decides; the shells race. It says, per attempt, whether and when
a copy may follow (:meth:`HedgeStrategy.hedge_delay`), and hears every answer
to keep each host's latencies (:meth:`HedgeStrategy.record`). Whether a copy
is actually sent is the pipeline's word: a hedge passes the same permits as a
retry (the retry budget first: a hedge spends a token, gRPC's rule, so a slow
or failing server is not sent double load) and the same gates (an open
circuit, a rate limit with no slot free now). Only requests that are safe to
send twice are hedged: GET, HEAD, PUT, DELETE, OPTIONS, or one that carries an
idempotency key, with a body that can be replayed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from resilience.core import checks
from resilience.strategies.base import BaseStrategy, CallInfo, Outcome

if TYPE_CHECKING:
    from resilience.stores.base import Store

__all__ = ["Hedge", "HedgeStrategy", "LatencySketch"]

#: Latencies kept per host: the most recent ones.
SAMPLES = 256
#: Fewer answers than this from a host: no percentile yet, no hedge.
MIN_SAMPLES = 20
#: Hosts whose latencies are kept (past it, the host kept longest is dropped).
HOSTS = 128
#: Answers between two recomputations of a host's percentile.
REFRESH = 16


@dataclass(frozen=True, slots=True)
class Hedge:
    """Configuration of hedged requests (``hedge=`` of a policy).

    Attributes:
        delay: seconds after an attempt is sent at which a copy follows when no
            answer has come (``> 0``), or ``"p95"``: the 95th percentile of the
            host's recent latencies (the last 256 answers; a host with fewer
            than 20 answers is not hedged yet).
        max_hedges: copies at most per attempt, each ``delay`` after the
            previous one; an int from ``1`` to ``10``. Every copy counts toward
            ``max_attempts``.
        threads: the sync shells send hedged attempts from a pool of at most
            this many threads per transport (an int from ``1`` to ``1000``);
            a call that finds the pool full is sent unhedged, from its own
            thread. The async shell uses tasks and ignores it.

    Raises:
        TypeError: a value of the wrong type (a bool is not a number).
        ValueError: a value out of range, or a percentile other than ``"p95"``.
    """

    delay: float | Literal["p95"] = "p95"
    max_hedges: int = 1
    threads: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.delay, str):
            if self.delay != "p95":
                raise ValueError(f"hedge.delay must be seconds or 'p95', not {self.delay!r}")
        else:
            value = checks.number("hedge.delay", self.delay, low_open=True, unit=" seconds")
            object.__setattr__(self, "delay", value)
        checks.integer("hedge.max_hedges", self.max_hedges, low=1, high=10)
        checks.integer("hedge.threads", self.threads, low=1, high=1000)

    def build(self, store: Store, wall: Callable[[], float]) -> HedgeStrategy:
        """The strategy (latencies are this process's own: they are not shared)."""
        return HedgeStrategy(self)


class LatencySketch:
    """The recent latencies of one host, and their 95th percentile.

    A ring of the last :data:`SAMPLES` answers; the percentile is recomputed
    every :data:`REFRESH` answers, so reading it costs nothing per call.
    """

    __slots__ = ("_count", "_p95", "_ring")

    def __init__(self) -> None:
        self._ring: list[float] = []
        self._count = 0
        self._p95: float | None = None

    def add(self, seconds: float) -> None:
        """Hear one latency."""
        ring = self._ring
        if len(ring) < SAMPLES:
            ring.append(seconds)
        else:
            ring[self._count % SAMPLES] = seconds
        self._count += 1
        if self._count >= MIN_SAMPLES and (self._p95 is None or self._count % REFRESH == 0):
            ordered = sorted(ring)
            self._p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def p95(self) -> float | None:
        """The 95th percentile, once :data:`MIN_SAMPLES` answers were heard."""
        return self._p95


class HedgeStrategy(BaseStrategy):
    """Hedging as a strategy: when a copy may follow, and each host's latencies."""

    __slots__ = ("_fixed", "_lock", "_sketches", "config")

    refusal = "hedging refused"

    def __init__(self, config: Hedge) -> None:
        self.config = config
        self._fixed = None if isinstance(config.delay, str) else float(config.delay)
        self._sketches: dict[str, LatencySketch] = {}
        self._lock = threading.Lock()

    def hedge_delay(self, call: CallInfo, copies: int) -> float | None:
        """Seconds after the latest copy at which another may follow, or ``None``.

        Args:
            call: the call.
            copies: copies of the current attempt sent so far (``1``: the
                attempt alone).
        """
        if copies > self.config.max_hedges or not call.repeatable:
            return None
        if self._fixed is not None:
            return self._fixed
        sketch = self._sketches.get(call.host or "")
        return None if sketch is None else sketch.p95

    def record(self, call: CallInfo, outcome: Outcome, now: float) -> None:
        """Keep the latency of every answer (``delay="p95"`` only)."""
        if self._fixed is not None or outcome is Outcome.LATE:
            return
        sent = call.sent
        if sent is None:
            return
        host = call.host or ""
        with self._lock:
            sketch = self._sketches.get(host)
            if sketch is None:
                if len(self._sketches) >= HOSTS:
                    del self._sketches[next(iter(self._sketches))]
                sketch = self._sketches[host] = LatencySketch()
            sketch.add(now - sent)

    def p95(self, host: str) -> float | None:
        """The 95th percentile of ``host``'s recent latencies, when known."""
        sketch = self._sketches.get(host)
        return None if sketch is None else sketch.p95
