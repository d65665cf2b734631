"""The circuit breaker: fail fast while a host (and region) keeps failing.

Opt-in (``circuit_breaker=CircuitBreaker()`` or ``circuit_breaker=True``). One
circuit per host and region, in the manner of Polly's advanced circuit breaker:

* **closed**: requests flow; outcomes are counted in a sliding window of
  ``window`` seconds (ten buckets). When at least ``min_calls`` outcomes are in
  the window and the share of failures reaches ``failure_ratio``, it opens.
* **open**: requests fail at once, without being sent, for ``open_for`` seconds.
* **half-open**: up to ``probes`` requests go through; a success closes the
  circuit (with an empty window), a failure opens it again.

A failure is a network error or a ``TRANSIENT`` answer (5xx); any other answer
is a success, since the server is up. Thread-safe and asyncio-safe (a lock, no
awaits); time comes in as an argument.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BreakerState", "CircuitBreaker", "Circuits"]

_BUCKETS = 10


class Circuits(Protocol):
    """What the retry flow asks of a circuit breaker (in memory or in a shared store)."""

    def allow(self, key: tuple[str | None, str | None], now: float) -> bool: ...
    def record(self, key: tuple[str | None, str | None], failed: bool, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Configuration of the circuit breaker.

    Attributes:
        failure_ratio: share of failed outcomes in the window that opens it (0-1].
        min_calls: fewest outcomes in the window before the ratio is judged.
        window: seconds of outcomes considered.
        open_for: seconds the circuit stays open before letting probes through.
        probes: requests allowed through at once while half-open.
    """

    failure_ratio: float = 0.5
    min_calls: int = 10
    window: float = 30.0
    open_for: float = 15.0
    probes: int = 1

    def __post_init__(self) -> None:
        if not (0 < self.failure_ratio <= 1):
            raise ValueError(
                f"circuit_breaker.failure_ratio must be in (0, 1], got {self.failure_ratio!r}"
            )
        for name in ("min_calls", "probes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"circuit_breaker.{name} must be an int >= 1, got {value!r}")
        for name in ("window", "open_for"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"circuit_breaker.{name} must be a number > 0, got {value!r}")

    def new_state(self) -> BreakerState:
        """The circuits of one transport."""
        return BreakerState(self)


class _Circuit:
    __slots__ = ("buckets", "opened_at", "probing", "state")

    def __init__(self) -> None:
        self.state = "closed"
        self.opened_at = 0.0
        self.probing = 0
        # (bucket start, outcomes, failures)
        self.buckets: deque[list[float]] = deque()


class BreakerState:
    """Every circuit of one transport, keyed by ``(host, region)``."""

    __slots__ = ("_circuits", "_lock", "config")

    def __init__(self, config: CircuitBreaker) -> None:
        self.config = config
        self._circuits: dict[tuple[str | None, str | None], _Circuit] = {}
        self._lock = threading.Lock()

    def state(self, key: tuple[str | None, str | None], now: float) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` for ``key`` at ``now``."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None:
                return "closed"
            self._advance(circuit, now)
            return circuit.state

    def allow(self, key: tuple[str | None, str | None], now: float) -> bool:
        """Whether a request to ``key`` may be sent now (takes a probe slot if half-open)."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None:
                return True
            self._advance(circuit, now)
            if circuit.state == "closed":
                return True
            if circuit.state == "half_open" and circuit.probing < self.config.probes:
                circuit.probing += 1
                return True
            return False

    def record(self, key: tuple[str | None, str | None], failed: bool, now: float) -> None:
        """Count one outcome of a request sent to ``key``."""
        config = self.config
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None:
                circuit = self._circuits[key] = _Circuit()
            self._advance(circuit, now)
            if circuit.state == "half_open":
                circuit.probing = max(0, circuit.probing - 1)
                if failed:
                    circuit.state, circuit.opened_at = "open", now
                else:
                    circuit.state = "closed"
                    circuit.buckets.clear()
                return
            if circuit.state == "open":
                return
            width = config.window / _BUCKETS
            if not circuit.buckets or now - circuit.buckets[-1][0] >= width:
                circuit.buckets.append([now, 0.0, 0.0])
            bucket = circuit.buckets[-1]
            bucket[1] += 1
            bucket[2] += failed
            self._prune(circuit, now)
            total = sum(b[1] for b in circuit.buckets)
            failures = sum(b[2] for b in circuit.buckets)
            if total >= config.min_calls and failures / total >= config.failure_ratio:
                circuit.state, circuit.opened_at = "open", now
                circuit.buckets.clear()

    def _prune(self, circuit: _Circuit, now: float) -> None:
        while circuit.buckets and now - circuit.buckets[0][0] >= self.config.window:
            circuit.buckets.popleft()

    def _advance(self, circuit: _Circuit, now: float) -> None:
        if circuit.state == "open" and now - circuit.opened_at >= self.config.open_for:
            circuit.state, circuit.probing = "half_open", 0
