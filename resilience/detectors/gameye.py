"""Gameye session orchestration.

Error body: ``{"statusCode", "code", "message", "identifier", "path",
"timestamp"}``; ``identifier`` is the trace id support asks for. 403 means the
runtime quota is used up, 409 that a session with that id already exists, 420
that the region has no capacity (retry after 2-5 s, then another region).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView
from resilience.detectors._base import status_category, text_or_none, trace_header

__all__ = ["GameyeDetector"]

_CATEGORIES: Mapping[int, Category] = {
    401: Category.UNAUTHORIZED,
    403: Category.QUOTA_EXHAUSTED,
    404: Category.NOT_FOUND,
    409: Category.CONFLICT,
    420: Category.CAPACITY,
    422: Category.INVALID_REQUEST,
    500: Category.TRANSIENT,
}

_ENVELOPE = frozenset({"statusCode", "code", "message", "identifier", "path", "timestamp"})


class GameyeDetector:
    """Gameye: status decides, the body gives code, message and trace id."""

    name = "gameye"
    success_body = False

    def matches(self, payload: Any) -> bool:
        """``statusCode`` plus ``identifier`` (or ``code``/``message``) is Gameye's envelope."""
        return (
            isinstance(payload, dict)
            and "statusCode" in payload
            and ("identifier" in payload or ("code" in payload and "message" in payload))
        )

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        """Classify a Gameye response."""
        body = payload if isinstance(payload, dict) else {}
        category = _CATEGORIES.get(view.status) or status_category(view.status)
        details = {k: v for k, v in body.items() if k not in _ENVELOPE}
        return Classification.of(
            self.name,
            category,
            view.status,
            code=text_or_none(body.get("code")),
            message=text_or_none(body.get("message")),
            details=details,
            trace_id=text_or_none(body.get("identifier")) or trace_header(view),
            retry_after=retry_after,
        )
