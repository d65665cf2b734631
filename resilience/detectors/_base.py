"""The detector protocol and the status rules every detector falls back on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView

__all__ = ["Detector", "status_category", "text_or_none", "trace_header"]


@runtime_checkable
class Detector(Protocol):
    """What a vendor detector provides.

    Only the four members below are required. A detector may also carry
    optional hooks that tell the retry flow its vendor's own rules; each is
    read once, when the detector is registered or first used (see
    :func:`~resilience.detectors.rules_of`), and a hook that is absent takes
    the generic default. A hook holding a value of the wrong type is a
    ``TypeError`` naming the detector and the hook at that point; a hook
    method that raises during a call gives the default instead.

    Attributes:
        name: the vendor name put in :attr:`Classification.vendor`.
        success_body: ``True`` when the vendor delivers business results in
            2xx bodies (Playwave); only then is a 2xx body ever parsed.

    Optional hooks:
        capacity_wait (``tuple[float, float] | None``): a same-region retry
            after a ``CAPACITY`` answer waits uniform ``low..high`` seconds
            (``Retry-After`` wins if given). Default ``None``: the policy's
            backoff.
        region_locator (``RegionLocator | None``): where the region lives in
            this vendor's requests, used for failover when the policy names
            no ``region_locator``. Default ``None``: the vendor has none.
        conflict_after_unknown (``Category | None``): what a ``CONFLICT``
            answering a retried POST/PATCH means when an earlier attempt ended
            with an unknown outcome (read timeout, dropped connection, 5xx).
            Default ``None``: it stays a ``CONFLICT``.
        safe_to_repeat(request: RequestParts) -> bool: whether this POST/PATCH
            carries its own idempotency, so that repeating it after an unknown
            outcome cannot repeat its effect. Default: ``False`` (only an
            ``Idempotency-Key`` header or ``retry_non_idempotent`` make it
            repeatable).
        success_trace_id(headers) -> str | None: the trace id of a 2xx/3xx
            answer whose body is not read; ``headers`` is a case-insensitive
            mapping or a dict with lower-case keys. Default: the
            ``X-Request-Id`` header.
    """

    name: str
    success_body: bool

    def matches(self, payload: Any) -> bool:
        """Whether a parsed error body has this vendor's shape."""

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        """Classify a response known to come from this vendor.

        Args:
            view: status, headers and (bounded) body of the response.
            payload: the parsed JSON body, or ``None`` when there is none.
            retry_after: seconds from ``Retry-After`` (already parsed).
        """


def status_category(status: int) -> Category:
    """The generic rule: what a status means when no vendor says otherwise.

    No retry on 4xx except 409 (``CONFLICT_PENDING``) and 429 (``RATE_LIMITED``);
    420 is ``CAPACITY``; 5xx other than 501 is ``TRANSIENT``.
    """
    if 100 <= status < 400:
        return Category.OK
    category = _STATUS_CATEGORIES.get(status)
    if category is not None:
        return category
    if 500 <= status < 600:
        return Category.TRANSIENT
    return Category.CLIENT_ERROR


_STATUS_CATEGORIES: Mapping[int, Category] = {
    400: Category.INVALID_REQUEST,
    401: Category.UNAUTHORIZED,
    403: Category.FORBIDDEN,
    404: Category.NOT_FOUND,
    409: Category.CONFLICT_PENDING,
    420: Category.CAPACITY,
    422: Category.INVALID_REQUEST,
    429: Category.RATE_LIMITED,
    501: Category.NOT_IMPLEMENTED,
}


def text_or_none(value: Any) -> str | None:
    """``value`` when it is a non-empty string (bounded), else ``None``."""
    if isinstance(value, str) and value:
        return value[:1024]
    return None


def trace_header(view: ResponseView) -> str | None:
    """The ``X-Request-Id`` header, the trace id most APIs send."""
    return text_or_none(view.headers.get("x-request-id"))
