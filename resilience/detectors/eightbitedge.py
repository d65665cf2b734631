"""8bitedge game data API.

Error body: ``{"error": {"code", "message", "details"?}}`` with stable string
codes; ``X-Request-Id`` on every response. Retry 429 after ``Retry-After``, 5xx
with jittered backoff, no 4xx except 409 ``idempotency_conflict`` ("the
original request is still in progress"). 501 ``not_implemented`` is final.
8bitedge documents no retry rule of its own beyond these, so its detector
takes every generic hook default (the trace id of a success is the
``X-Request-Id`` header, which 8bitedge sends on every response).
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

_ENVELOPE = frozenset({"code", "message", "details"})

# Statuses whose meaning on 8bitedge differs from the generic rule, for when
# the body is missing or unreadable: 402 is only ever ``quota_exceeded``.
_STATUSES: Mapping[int, Category] = {402: Category.QUOTA_EXHAUSTED}


class EightBitEdgeDetector:
    """8bitedge: the ``error.code`` decides, the status when the code is unknown."""

    name = "8bitedge"
    success_body = False

    def matches(self, payload: Any) -> bool:
        """8bitedge's own envelope, not just any ``{"error": {...}}``.

        Many APIs answer ``{"error": {...}}`` (OpenAI's carries ``type`` and
        ``param``, and its 429 code is ``rate_limit_exceeded`` too), so the
        shape alone is no evidence: ``error`` must hold nothing but ``code``,
        ``message`` and ``details``, ``code`` must be one 8bitedge documents,
        and there is no ``success`` key (that is Playwave). ``vendor_hosts``
        or ``vendor=`` name 8bitedge whatever the body.
        """
        if not isinstance(payload, dict) or "success" in payload:
            return False
        error = payload.get("error")
        if not isinstance(error, dict) or not error.keys() <= _ENVELOPE:
            return False
        code = error.get("code")
        return isinstance(code, str) and code in _CODES

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
