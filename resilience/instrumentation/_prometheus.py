"""``PrometheusHook``: counters of attempts and calls, and a call-duration histogram."""

from __future__ import annotations

import threading
from typing import Any

from resilience.instrumentation._events import AttemptEvent, CallEvent

__all__ = ["PrometheusHook"]

_lock = threading.Lock()
# One set of metrics per registry: prometheus_client refuses a second
# registration of a name, and two hooks on one registry must share them.
_metrics: dict[int, tuple[Any, Any, Any, Any]] = {}


class PrometheusHook:
    """Prometheus metrics, names prefixed ``resilience_``:

    * ``resilience_attempts_total{vendor, category, reason}``: every attempt,
      by what the answer meant (``error`` after a network error) and what
      followed (``retry``, ``failover``, ``return``, ``give_up``);
    * ``resilience_calls_total{vendor, outcome}``: every call, by outcome
      (``success``, ``failure``, ``error``);
    * ``resilience_call_duration_seconds{vendor, outcome}``: a histogram of
      call durations, retries and waits included.

    Args:
        registry: the ``prometheus_client.CollectorRegistry`` (default: the
            global ``REGISTRY``). Needs the extra ``prometheus``.
    """

    observes_successes = True

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PrometheusHook needs prometheus_client: "
                "pip install 'resilience-transports[prometheus]'"
            ) from exc
        registry = prometheus_client.REGISTRY if registry is None else registry
        with _lock:
            found = _metrics.get(id(registry))
            if found is None or found[0] is not registry:
                found = (
                    registry,
                    prometheus_client.Counter(
                        "resilience_attempts",
                        "Attempts of HTTP calls, by vendor, meaning of the answer, what followed.",
                        ("vendor", "category", "reason"),
                        registry=registry,
                    ),
                    prometheus_client.Counter(
                        "resilience_calls",
                        "HTTP calls through resilience, by vendor and outcome.",
                        ("vendor", "outcome"),
                        registry=registry,
                    ),
                    prometheus_client.Histogram(
                        "resilience_call_duration_seconds",
                        "Duration of HTTP calls, retries and waits included.",
                        ("vendor", "outcome"),
                        registry=registry,
                    ),
                )
                _metrics[id(registry)] = found
        self._attempts: Any = found[1]
        self._calls: Any = found[2]
        self._duration: Any = found[3]

    def on_attempt(self, event: AttemptEvent) -> None:
        """Count the attempt."""
        category = event.category.value if event.category is not None else "error"
        self._attempts.labels(event.vendor, category, event.reason).inc()

    def on_call(self, event: CallEvent) -> None:
        """Count the call and observe its duration."""
        self._calls.labels(event.vendor, event.outcome).inc()
        self._duration.labels(event.vendor, event.outcome).observe(event.duration)
