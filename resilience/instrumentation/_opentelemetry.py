"""``OpenTelemetryHook``: OpenTelemetry metrics, attempt events and the resend count on spans."""

from __future__ import annotations

import time
from typing import Any

from resilience.instrumentation._events import AttemptEvent, CallEvent

__all__ = ["OpenTelemetryHook"]

#: The HTTP semantic conventions' attribute for requests sent again.
RESEND_COUNT = "http.request.resend_count"


class OpenTelemetryHook:
    """OpenTelemetry metrics and span events.

    Metrics (meter ``resilience``): ``resilience.attempts`` and
    ``resilience.calls`` (counters, attributes as for :class:`PrometheusHook`)
    and ``resilience.call.duration`` (a histogram, seconds).

    Spans: each attempt adds an event ``resilience.attempt`` (attempt, vendor,
    category, status or error, delay, region, reason) to the current span, and
    a call sent more than once sets ``http.request.resend_count`` on it, as the
    HTTP semantic conventions define. When no span is recording and a
    ``tracer_provider`` is given, a call that was retried gets a span of its
    own (``HTTP <method>``, from the call's start to its end) carrying them.

    Args:
        meter_provider: where the meter comes from (default: the global one).
        tracer_provider: where the fallback span comes from (default: none).
            Needs the extra ``opentelemetry``.
    """

    observes_successes = True

    def __init__(self, meter_provider: Any = None, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "OpenTelemetryHook needs opentelemetry-api: "
                "pip install 'resilience-transports[opentelemetry]'"
            ) from exc
        self._trace = trace
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("resilience")
        self._attempts = meter.create_counter(
            "resilience.attempts", unit="{attempt}", description="Attempts of HTTP calls."
        )
        self._calls = meter.create_counter(
            "resilience.calls", unit="{call}", description="HTTP calls through resilience."
        )
        self._duration = meter.create_histogram(
            "resilience.call.duration",
            unit="s",
            description="Duration of HTTP calls, retries and waits included.",
        )
        self._tracer = (
            tracer_provider.get_tracer("resilience") if tracer_provider is not None else None
        )

    def on_attempt(self, event: AttemptEvent) -> None:
        """Count the attempt; add it to the current span as an event."""
        category = event.category.value if event.category is not None else "error"
        self._attempts.add(
            1, {"vendor": event.vendor, "category": category, "reason": event.reason}
        )
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event("resilience.attempt", _attributes(event))

    def on_call(self, event: CallEvent) -> None:
        """Count the call and its duration; the resend count on the span."""
        attributes = {"vendor": event.vendor, "outcome": event.outcome}
        self._calls.add(1, attributes)
        self._duration.record(event.duration, attributes)
        if not event.resends:
            return
        span = self._trace.get_current_span()
        if span.is_recording():
            span.set_attribute(RESEND_COUNT, event.resends)
        elif self._tracer is not None:
            end = time.time_ns()
            start = end - int(event.duration * 1e9)
            own = self._tracer.start_span(f"HTTP {event.method}", start_time=start)
            own.set_attribute(RESEND_COUNT, event.resends)
            for attempt in event.attempts:
                own.add_event(
                    "resilience.attempt",
                    {
                        "attempt": attempt.number,
                        "status": attempt.status if attempt.status is not None else -1,
                        "error": attempt.error or "",
                        "delay": attempt.delay,
                        "region": attempt.region or "",
                        "reason": attempt.outcome,
                    },
                )
            own.end(end_time=end)


def _attributes(event: AttemptEvent) -> dict[str, Any]:
    found: dict[str, Any] = {
        "attempt": event.attempt,
        "vendor": event.vendor,
        "category": event.category.value if event.category is not None else "error",
        "delay": event.delay,
        "reason": event.reason,
    }
    if event.status is not None:
        found["status"] = event.status
    if event.error is not None:
        found["error"] = event.error
    if event.region is not None:
        found["region"] = event.region
    return found
