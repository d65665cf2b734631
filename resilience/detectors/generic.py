"""The generic rule, used when no vendor is recognised."""

from __future__ import annotations

from typing import Any

from resilience.core.classification import Classification
from resilience.core.response import ResponseView
from resilience.detectors._base import status_category, text_or_none, trace_header

__all__ = ["GenericDetector"]


class GenericDetector:
    """Classify by status alone, picking up ``code``/``message`` when present.

    Reads ``{"code": ..., "message": ...}``, ``{"error": {"code", "message",
    ...}}`` or ``{"error": "..."}`` bodies for the code and message, but the
    category always follows the status. It has none of the optional hooks, so
    its rules are the generic defaults: no capacity wait of its own, no region
    field, a conflict stays a conflict, no POST/PATCH carries its own
    idempotency, and a success's trace id is the ``X-Request-Id`` header.
    """

    name = "generic"
    success_body = False

    def matches(self, payload: Any) -> bool:
        """The generic rule is the fallback; it never claims a body."""
        return False

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        """Classify ``view`` by its status (see :func:`status_category`)."""
        code = message = None
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, dict):
                code = text_or_none(error.get("code"))
                message = text_or_none(error.get("message"))
            else:
                code = text_or_none(payload.get("code"))
                message = text_or_none(payload.get("message")) or text_or_none(error)
        return Classification.of(
            self.name,
            status_category(view.status),
            view.status,
            code=code,
            message=message,
            trace_id=trace_header(view),
            retry_after=retry_after,
        )
