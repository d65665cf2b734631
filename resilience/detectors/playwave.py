"""Playwave game-server session and billing API.

Error body: ``{"success": false, "error": {"code", "message", "timestamp"}}``.
404/410 mean the session is gone; 409 ``ALREADY_ENDED`` (and 404 on session
end) mean it was already cleaned up. Business results arrive as HTTP 200: the
``reason`` of verify and the ``result`` of heartbeat (``OK`` is normal).

Playwave documents no retry rule beyond these codes, so its detector takes
every generic hook default. Its trace id is the body's ``requestId``; a 2xx
body is read only for business results, so a success whose body is not read
takes the ``X-Request-Id`` header, the generic default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView
from resilience.detectors._base import status_category, text_or_none, trace_header

__all__ = ["PlaywaveDetector"]

_CODES: Mapping[str, Category] = {
    "BAD_REQUEST": Category.INVALID_REQUEST,
    "INVALID_API_KEY": Category.UNAUTHORIZED,
    "RATE_LIMITED": Category.RATE_LIMITED,
    "SESSION_NOT_FOUND": Category.SESSION_LOST,
    "SESSION_ENDED": Category.SESSION_LOST,
    "SESSION_ENDING": Category.SESSION_LOST,
    "ALREADY_ENDED": Category.ALREADY_DONE,
    "INTERNAL_ERROR": Category.TRANSIENT,
}

_STATUSES: Mapping[int, Category] = {
    404: Category.SESSION_LOST,
    409: Category.ALREADY_DONE,
    410: Category.SESSION_LOST,
}


def _is_session_end(view: ResponseView) -> bool:
    return view.path is not None and view.path.rstrip("/").endswith("/end")


class PlaywaveDetector:
    """Playwave: error codes, session-gone statuses and HTTP 200 business results."""

    name = "playwave"
    success_body = True

    def matches(self, payload: Any) -> bool:
        """``{"success": false, "error": {...}}`` is Playwave's envelope."""
        return (
            isinstance(payload, dict)
            and payload.get("success") is False
            and isinstance(payload.get("error"), dict)
        )

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        """Classify a Playwave response."""
        body = payload if isinstance(payload, dict) else {}
        trace_id = text_or_none(body.get("requestId")) or trace_header(view)
        if 200 <= view.status < 300:
            return self._business(view, body, trace_id)
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        code = text_or_none(error.get("code"))
        if code is not None and code in _CODES:
            category = _CODES[code]
        else:
            category = _STATUSES.get(view.status) or status_category(view.status)
        if view.status in (404, 409) and _is_session_end(view):
            # "404/409 on session end means already cleaned up — safe to ignore"
            category = Category.ALREADY_DONE
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        return Classification.of(
            self.name,
            category,
            view.status,
            code=code,
            message=text_or_none(error.get("message")),
            details=details,
            trace_id=trace_id,
            retry_after=retry_after,
        )

    def _business(
        self, view: ResponseView, body: Mapping[str, Any], trace_id: str | None
    ) -> Classification:
        reason = text_or_none(body.get("reason"))
        result = text_or_none(body.get("result"))
        code = reason or result
        rejected = reason is not None or (result is not None and result != "OK")
        return Classification.of(
            self.name,
            Category.BUSINESS_REJECTED if rejected else Category.OK,
            view.status,
            code=code,
            message=text_or_none(body.get("message")),
            trace_id=trace_id,
        )
