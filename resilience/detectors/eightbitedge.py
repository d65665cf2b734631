"""8bitedge game data API.

Error body: ``{"error": {"code", "message", "details"?}}`` with stable string
codes; ``X-Request-Id`` on every response. Retry 429 after ``Retry-After``, 5xx
with jittered backoff, no 4xx except 409 ``idempotency_conflict`` ("the
original request is still in progress"). 501 ``not_implemented`` is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView
from resilience.detectors._base import status_category, text_or_none, trace_header

__all__ = ["EightBitEdgeDetector"]

_CODES: Mapping[str, Category] = {
    "unauthorized": Category.UNAUTHORIZED,
    "account_inactive": Category.FORBIDDEN,
    "insufficient_scope": Category.FORBIDDEN,
    "quota_exceeded": Category.QUOTA_EXHAUSTED,
    "not_found": Category.NOT_FOUND,
    "idempotency_conflict": Category.CONFLICT_PENDING,
    "validation_failed": Category.INVALID_REQUEST,
    "batch_too_large": Category.INVALID_REQUEST,
    "idempotency_key_reuse": Category.INVALID_REQUEST,
    "rate_limit_exceeded": Category.RATE_LIMITED,
    "not_implemented": Category.NOT_IMPLEMENTED,
    "server_error": Category.TRANSIENT,
}

# Statuses whose meaning on 8bitedge differs from the generic rule, for when
# the body is missing or unreadable: 402 is only ever ``quota_exceeded``.
_STATUSES: Mapping[int, Category] = {402: Category.QUOTA_EXHAUSTED}


class EightBitEdgeDetector:
    """8bitedge: the ``error.code`` decides, the status when the code is unknown."""

    name = "8bitedge"
    success_body = False

    def matches(self, payload: Any) -> bool:
        """``{"error": {"code": ...}}`` with no ``success`` key (that is Playwave)."""
        return (
            isinstance(payload, dict)
            and "success" not in payload
            and isinstance(payload.get("error"), dict)
            and "code" in payload["error"]
        )

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        """Classify an 8bitedge response."""
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        code = text_or_none(error.get("code"))
        category = _STATUSES.get(view.status) or status_category(view.status)
        if category is not Category.OK and code is not None and code in _CODES:
            category = _CODES[code]
        details = error.get("details")
        return Classification.of(
            self.name,
            category,
            view.status,
            code=code,
            message=text_or_none(error.get("message")),
            details=details if isinstance(details, dict) else None,
            trace_id=trace_header(view),
            retry_after=retry_after,
        )
