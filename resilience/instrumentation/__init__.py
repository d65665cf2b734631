"""What observes every attempt and every call: logging, Prometheus, OpenTelemetry.

Hooks in the manner of stamina's instrumentation: objects with
``on_attempt(event)`` and ``on_call(event)``. :func:`set_hooks` sets them for
the whole process; the ``instrumentation=`` keyword of a transport sets its
own. :class:`LoggingHook` is the default. :class:`PrometheusHook` and
:class:`OpenTelemetryHook` need their extras (``prometheus``,
``opentelemetry``) and import them only when built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resilience.instrumentation._events import AttemptEvent, CallEvent
from resilience.instrumentation._hooks import Hook, get_hooks, set_hooks
from resilience.instrumentation._logging import LoggingHook

if TYPE_CHECKING:
    from resilience.instrumentation._opentelemetry import OpenTelemetryHook
    from resilience.instrumentation._prometheus import PrometheusHook

__all__ = [
    "AttemptEvent",
    "CallEvent",
    "Hook",
    "LoggingHook",
    "OpenTelemetryHook",
    "PrometheusHook",
    "get_hooks",
    "set_hooks",
]


def __getattr__(name: str) -> Any:
    if name == "PrometheusHook":
        from resilience.instrumentation._prometheus import PrometheusHook

        return PrometheusHook
    if name == "OpenTelemetryHook":
        from resilience.instrumentation._opentelemetry import OpenTelemetryHook

        return OpenTelemetryHook
    raise AttributeError(f"module 'resilience.instrumentation' has no attribute {name!r}")
