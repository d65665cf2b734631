"""Instrumentation hooks observe every attempt and call: logging, Prometheus, OpenTelemetry."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import resilience
from resilience.instrumentation import (
    AttemptEvent,
    CallEvent,
    LoggingHook,
    OpenTelemetryHook,
    PrometheusHook,
    get_hooks,
    set_hooks,
)


class Recorder:
    """A hook that keeps what it hears."""

    observes_successes = True

    def __init__(self) -> None:
        self.attempts: list[AttemptEvent] = []
        self.calls: list[CallEvent] = []

    def on_attempt(self, event: AttemptEvent) -> None:
        self.attempts.append(event)

    def on_call(self, event: CallEvent) -> None:
        self.calls.append(event)


@pytest.fixture(autouse=True)
def _default_hooks() -> Iterator[None]:
    before = get_hooks()
    yield
    set_hooks(list(before))


def _client(statuses: list[int], **policy: object) -> httpx.Client:
    answers = iter(statuses)
    inner = httpx.MockTransport(lambda request: httpx.Response(next(answers, 200)))
    transport = resilience.ResilientTransport(inner, sleep=lambda s: None, **policy)
    return httpx.Client(transport=transport)


def test_the_default_is_the_logging_hook() -> None:
    assert [type(h) for h in get_hooks()] == [LoggingHook]


def test_every_attempt_and_the_call_reach_the_hooks_of_the_transport() -> None:
    recorder = Recorder()
    with _client([503, 429, 200], instrumentation=[recorder]) as client:
        client.get("https://api.example/x")
    assert [(e.attempt, e.status, e.reason) for e in recorder.attempts] == [
        (1, 503, "retry"),
        (2, 429, "retry"),
        (3, 200, "return"),
    ]
    (call,) = recorder.calls
    assert (call.outcome, call.status, len(call.attempts), call.resends) == ("success", 200, 3, 2)


def test_a_first_attempt_success_reaches_hooks_that_observe_successes() -> None:
    recorder = Recorder()
    with _client([200], instrumentation=[recorder]) as client:
        client.get("https://api.example/x")
    assert [e.reason for e in recorder.attempts] == ["return"]
    assert [c.outcome for c in recorder.calls] == ["success"]


def test_set_hooks_reaches_every_transport_that_names_none() -> None:
    recorder = Recorder()
    set_hooks([recorder])
    with _client([500, 500, 500, 500]) as client:
        client.get("https://api.example/x")
    assert [e.reason for e in recorder.attempts] == ["retry", "retry", "retry", "give_up"]
    assert recorder.attempts[-1].why == "max_attempts reached"
    assert recorder.calls[-1].outcome == "failure"


def test_a_network_error_that_survives_ends_as_an_error_call() -> None:
    recorder = Recorder()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    transport = resilience.ResilientTransport(
        httpx.MockTransport(refuse),
        sleep=lambda s: None,
        max_attempts=2,
        instrumentation=[recorder],
    )
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get("https://api.example/x")
    assert [(e.error, e.reason) for e in recorder.attempts] == [
        ("ConnectError", "retry"),
        ("ConnectError", "give_up"),
    ]
    assert (recorder.calls[-1].outcome, recorder.calls[-1].error) == ("error", "ConnectError")


def test_a_failing_hook_never_fails_the_call() -> None:
    class Broken(Recorder):
        def on_attempt(self, event: AttemptEvent) -> None:
            raise RuntimeError("boom")

    with _client([503, 200], instrumentation=[Broken()]) as client:
        assert client.get("https://api.example/x").status_code == 200


@pytest.mark.parametrize("hooks", ["logging", [LoggingHook], [object()]])
def test_hooks_that_are_not_hooks_are_refused(hooks: object) -> None:
    with pytest.raises(TypeError, match="instrumentation"):
        resilience.ResilientTransport(instrumentation=hooks)  # type: ignore[arg-type]


def test_logging_hook_puts_the_fields_in_extra(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    with _client([503, 200], instrumentation=[LoggingHook()]) as client:
        client.get("https://api.example/x?api_key=secret")
    (record,) = [r for r in caplog.records if "retrying" in r.getMessage()]
    fields = {k: getattr(record, k) for k in ("attempt", "vendor", "category", "status", "method")}
    assert fields == {
        "attempt": 1,
        "vendor": "generic",
        "category": "transient",
        "status": 503,
        "method": "GET",
    }
    assert (record.reason, record.region, record.error) == ("retry", None, None)  # type: ignore[attr-defined]
    assert "secret" not in record.getMessage()


def test_logging_hook_logs_giving_up_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="resilience")
    with _client([500] * 4, instrumentation=[LoggingHook()]) as client:
        client.get("https://api.example/x")
    giving_up = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert [r.levelno for r in giving_up] == [logging.WARNING]
    assert giving_up[0].reason == "give_up"  # type: ignore[attr-defined]


def test_prometheus_hook_counts_attempts_calls_and_durations() -> None:
    registry = CollectorRegistry()
    with _client([503, 200], instrumentation=[PrometheusHook(registry)]) as client:
        client.get("https://api.example/x")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert (
        value("resilience_attempts_total", vendor="generic", category="transient", reason="retry")
        == 1
    )
    assert value("resilience_attempts_total", vendor="generic", category="ok", reason="return") == 1
    assert value("resilience_calls_total", vendor="generic", outcome="success") == 1
    assert value("resilience_call_duration_seconds_count", vendor="generic", outcome="success") == 1


def test_two_prometheus_hooks_share_one_registry() -> None:
    registry = CollectorRegistry()
    first, second = PrometheusHook(registry), PrometheusHook(registry)
    with (
        _client([200], instrumentation=[first]) as a,
        _client([200], instrumentation=[second]) as b,
    ):
        a.get("https://api.example/x")
        b.get("https://api.example/x")
    assert (
        registry.get_sample_value(
            "resilience_calls_total", {"vendor": "generic", "outcome": "success"}
        )
        == 2
    )


def test_opentelemetry_hook_records_metrics_events_and_the_resend_count() -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OpenTelemetryHook(meter_provider=MeterProvider(metric_readers=[reader]))
    tracer = tracer_provider.get_tracer("test")
    with (
        _client([503, 503, 200], instrumentation=[hook]) as client,
        tracer.start_as_current_span("call"),
    ):
        client.get("https://api.example/x")
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["http.request.resend_count"] == 2
    assert [e.name for e in span.events] == ["resilience.attempt"] * 3
    names = {
        m.name
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert names == {"resilience.attempts", "resilience.calls", "resilience.call.duration"}


def test_opentelemetry_hook_gives_a_retried_call_its_own_span_when_none_is_current() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OpenTelemetryHook(
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        tracer_provider=tracer_provider,
    )
    with _client([503, 200], instrumentation=[hook]) as client:
        client.get("https://api.example/x")
    (span,) = exporter.get_finished_spans()
    assert span.name == "HTTP GET"
    assert span.attributes is not None
    assert span.attributes["http.request.resend_count"] == 1


def test_nothing_is_imported_until_a_hook_is_used() -> None:
    code = (
        "import sys, httpx, resilience, resilience.instrumentation; "
        "resilience.ResilientTransport(); "
        "print('prometheus_client' in sys.modules, 'opentelemetry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
