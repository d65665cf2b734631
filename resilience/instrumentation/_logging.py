"""``LoggingHook``: the default, on stdlib logging, with structured fields in ``extra``."""

from __future__ import annotations

import logging

from resilience.instrumentation._events import AttemptEvent, CallEvent

__all__ = ["LoggingHook"]


#: Reasons of attempts raced against hedged copies (see :mod:`resilience.retry.racing`).
_RACED = frozenset({"hedge", "cancelled", "superseded"})


class LoggingHook:
    """Logs retries, failovers and giving up at WARNING, the end of a call at DEBUG.

    Every record carries the fields ``attempt``, ``delay``, ``vendor``,
    ``category``, ``status``, ``error``, ``method``, ``region`` and ``reason`` in
    ``extra``, so structured loggers (structlog, python-json-logger) get them as
    fields. No credential appears: URLs are redacted before they get here.

    Args:
        logger: the logger to use (default: ``resilience.instrumentation``, under
            the ``resilience`` hierarchy as every logger of the library).
    """

    observes_successes = False

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("resilience.instrumentation")

    def on_attempt(self, event: AttemptEvent) -> None:
        """Retry, failover and give-up at WARNING, a hedged copy at INFO, a
        copy that lost the race at DEBUG; an answer returned is not logged."""
        if event.reason == "return" or not self.logger.isEnabledFor(logging.WARNING):
            return
        if event.status is not None:
            label = event.code or (event.category.value if event.category else "")
            what: str | None = f"{event.status} {label}".strip()
        else:
            what = event.error
        fields = {
            "attempt": event.attempt,
            "delay": event.delay,
            "vendor": event.vendor,
            "category": event.category.value if event.category is not None else None,
            "status": event.status,
            "error": event.error,
            "method": event.method,
            "region": event.region,
            "reason": event.reason,
        }
        if event.reason in _RACED:
            self._raced(event, fields)
            return
        if event.reason == "give_up":
            self.logger.warning(
                "%s %s: %s, giving up: %s (vendor %s, trace id %s)",
                event.method,
                event.url,
                what,
                event.why,
                event.vendor,
                event.trace_id or "-",
                extra=fields,
            )
            return
        failover = event.reason == "failover"
        self.logger.warning(
            "%s %s: %s; %s in %.3fs%s (vendor %s, trace id %s)",
            event.method,
            event.url,
            what,
            "failing over" if failover else "retrying",
            event.delay,
            f" to {event.next_region}" if failover else "",
            event.vendor,
            event.trace_id or "-",
            extra=fields,
        )

    def _raced(self, event: AttemptEvent, fields: dict[str, object]) -> None:
        # Hedging is the tail being cut, not trouble: INFO for a copy sent,
        # DEBUG for a copy that lost.
        if event.reason == "hedge":
            self.logger.info(
                "%s %s: no answer after %.3fs; sent a hedged copy (attempt %d)",
                event.method,
                event.url,
                event.delay,
                event.attempt,
                extra=fields,
            )
        else:
            self.logger.debug(
                "%s %s: attempt %d %s (another copy answered)",
                event.method,
                event.url,
                event.attempt,
                event.reason,
                extra=fields,
            )

    def on_call(self, event: CallEvent) -> None:
        """The end of a call that needed more than one attempt, at DEBUG."""
        if len(event.attempts) > 1 and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(
                "%s %s: %s after %d attempts in %.3fs",
                event.method,
                event.url,
                event.outcome,
                len(event.attempts),
                event.duration,
                extra={
                    "attempts": len(event.attempts),
                    "duration": event.duration,
                    "outcome": event.outcome,
                    "vendor": event.vendor,
                    "method": event.method,
                },
            )
