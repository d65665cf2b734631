"""Gameye session orchestration.

Error body: ``{"statusCode", "code", "message", "identifier", "path",
"timestamp"}``; ``identifier`` is the trace id support asks for. 403 means the
runtime quota is used up, 409 that a session with that id already exists, 420
that the region has no capacity (retry after 2-5 s, then another region).

Gameye's own retry rules are this detector's hooks, so they apply to Gameye
alone: the 2-5 s wait on 420, ``location`` as the region field of
POST /session, a POST /session made safe to repeat by its own ``id``, and a
409 after an unknown outcome meaning the lost attempt created the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView
from resilience.detectors._base import status_category, text_or_none, trace_header
from resilience.regions import JsonField, RegionLocator, RequestParts

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

_SESSION_ID = JsonField("id")

_ENVELOPE = frozenset({"statusCode", "code", "message", "identifier", "path", "timestamp"})


class GameyeDetector:
    """Gameye: status decides, the body gives code, message and trace id."""

    name = "gameye"
    success_body = False

    #: "Retry after 2-5 seconds" for a 420 (no capacity in the region).
    capacity_wait: tuple[float, float] | None = (2.0, 5.0)
    #: POST /session names its region in the ``location`` field.
    region_locator: RegionLocator | None = JsonField("location")
    #: A 409 ("a session with this id already exists") answering a retry whose
    #: earlier attempt was lost means that attempt created the session.
    conflict_after_unknown: Category | None = Category.ALREADY_DONE

    def safe_to_repeat(self, request: RequestParts) -> bool:
        """A POST /session whose JSON body has an ``id`` can be repeated.

        The session is named by the caller's ``id``, so a repeat cannot start
        a second session: a duplicate answers 409.
        """
        if request.method.upper() != "POST":
            return False
        try:
            path = urlsplit(request.url).path
        except ValueError:
            return False
        if not path.rstrip("/").endswith("/session"):
            return False
        return _SESSION_ID.region_of(request) is not None

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
