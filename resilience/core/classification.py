"""What a response means: :class:`Category` and :class:`Classification`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["EMPTY_DETAILS", "RETRYABLE", "Category", "Classification"]

EMPTY_DETAILS: Mapping[str, Any] = MappingProxyType({})


class Category(str, enum.Enum):
    """What kind of answer a response is, and so what the default policy does."""

    OK = "ok"
    """Return it (2xx; Playwave heartbeat ``result: OK``)."""
    RATE_LIMITED = "rate_limited"
    """Retry after ``Retry-After``, else after backoff (429)."""
    TRANSIENT = "transient"
    """Retry with jittered exponential backoff (500, 502, 503, 504, network errors)."""
    CONFLICT_PENDING = "conflict_pending"
    """The same request is still being processed: retry after a few seconds (409)."""
    CONFLICT = "conflict"
    """A real conflict (Gameye: the session id already exists): no retry."""
    ALREADY_DONE = "already_done"
    """Benign: what was asked is already done (Playwave ``ALREADY_ENDED``)."""
    CAPACITY = "capacity"
    """No capacity in the region: retry after 2-5 s, then fail over (420)."""
    QUOTA_EXHAUSTED = "quota_exhausted"
    """Quota used up (Gameye 403, 8bitedge 402): no retry."""
    UNAUTHORIZED = "unauthorized"
    """Credentials missing or invalid (401): no retry."""
    FORBIDDEN = "forbidden"
    """Authenticated but not allowed (8bitedge 403): no retry."""
    NOT_FOUND = "not_found"
    """404: no retry."""
    SESSION_LOST = "session_lost"
    """The game session is gone (Playwave 404/410): no retry."""
    INVALID_REQUEST = "invalid_request"
    """The request is malformed (400, 422): no retry."""
    NOT_IMPLEMENTED = "not_implemented"
    """501: no retry."""
    BUSINESS_REJECTED = "business_rejected"
    """HTTP 200 carrying a business refusal (Playwave ``reason``/``result``): no retry."""
    CLIENT_ERROR = "client_error"
    """Any other 4xx: no retry."""

    def __str__(self) -> str:
        return self.value


#: Categories the default policy tries again (in the same or another region).
RETRYABLE = frozenset(
    {Category.RATE_LIMITED, Category.TRANSIENT, Category.CONFLICT_PENDING, Category.CAPACITY}
)


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one response.

    Attributes:
        vendor: ``"gameye"``, ``"8bitedge"``, ``"playwave"``, ``"generic"`` or a
            plugin's name.
        category: what kind of answer it is.
        status: the HTTP status.
        code: the vendor's machine code, if any.
        message: the vendor's human message, if any.
        details: the vendor's details (an empty mapping when none).
        trace_id: the id the vendor's support asks for.
        retry_after: seconds from ``Retry-After``; ``None`` when absent or unusable.
        retryable: whether the default policy would try again.
    """

    vendor: str
    category: Category
    status: int
    code: str | None = None
    message: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: EMPTY_DETAILS)
    trace_id: str | None = None
    retry_after: float | None = None
    retryable: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # ``details`` is a read-only proxy, which pickle refuses: send a dict.
        return (
            _restore,
            (
                self.vendor,
                self.category,
                self.status,
                self.code,
                self.message,
                dict(self.details),
                self.trace_id,
                self.retry_after,
                self.retryable,
            ),
        )

    @classmethod
    def of(
        cls,
        vendor: str,
        category: Category,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        retry_after: float | None = None,
    ) -> Classification:
        """Build a classification whose ``retryable`` follows from ``category``."""
        return cls(
            vendor=vendor,
            category=category,
            status=status,
            code=code,
            message=message,
            details=MappingProxyType(dict(details)) if details else EMPTY_DETAILS,
            trace_id=trace_id,
            retry_after=retry_after,
            retryable=category in RETRYABLE,
        )


def _restore(
    vendor: str,
    category: Category,
    status: int,
    code: str | None,
    message: str | None,
    details: dict[str, Any],
    trace_id: str | None,
    retry_after: float | None,
    retryable: bool,
) -> Classification:
    return Classification(
        vendor,
        category,
        status,
        code,
        message,
        MappingProxyType(details) if details else EMPTY_DETAILS,
        trace_id,
        retry_after,
        retryable,
    )
