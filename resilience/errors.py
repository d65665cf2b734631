"""Typed errors, one per category whose default action is not "return".

Hierarchy::

    ResilienceError
    ├── RateLimited              RATE_LIMITED (also raised, with no response,
    │                            when a local limit refuses to send)
    ├── ServerError              TRANSIENT
    ├── Conflict                 CONFLICT, CONFLICT_PENDING
    ├── CapacityUnavailable      CAPACITY
    ├── QuotaExhausted           QUOTA_EXHAUSTED
    ├── Unauthorized             UNAUTHORIZED
    ├── Forbidden                FORBIDDEN
    ├── NotFound                 NOT_FOUND
    ├── SessionLost              SESSION_LOST
    ├── InvalidRequest           INVALID_REQUEST
    ├── NotImplementedByServer   NOT_IMPLEMENTED
    ├── BusinessRejected         BUSINESS_REJECTED
    ├── ClientError              CLIENT_ERROR
    └── CircuitOpen              nothing sent: the circuit of the host/region is
                                 open (raised by the transports; also a
                                 requests.ConnectionError / httpx.ConnectError)

An error raised from the httpx hooks is also an ``httpx.HTTPStatusError``; one
raised from the requests hook is also a ``requests.HTTPError``, so existing
``except`` clauses keep catching. No ``str()`` or ``repr()`` shows a header or
a credential: only status, vendor, code, message, trace id and a redacted URL.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from resilience.core.classification import Category, Classification
from resilience.core.records import Attempt
from resilience.core.redact import redact_url

__all__ = [
    "BusinessRejected",
    "CapacityUnavailable",
    "CircuitOpen",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "NotImplementedByServer",
    "QuotaExhausted",
    "RateLimited",
    "ResilienceError",
    "ServerError",
    "SessionLost",
    "Unauthorized",
    "error_class",
    "mixed_class",
    "raise_for",
]


def _request_line(response: Any) -> str:
    try:
        request = response.request
    except Exception:  # httpx: no request attached
        return ""
    if request is None:
        return ""
    return f" for {getattr(request, 'method', '?')} {redact_url(getattr(request, 'url', ''))}"


class ResilienceError(Exception):
    """Base of every error this library raises about a vendor's answer.

    Attributes:
        classification: the verdict on the response.
        response: the response (``None`` when no request was sent).
        attempts: the attempt history of the call.
    """

    def __init__(
        self,
        classification: Classification,
        response: Any = None,
        attempts: Sequence[Attempt] = (),
        *,
        text: str | None = None,
    ) -> None:
        self.classification = classification
        self.attempts = list(attempts)
        self._text = text or self._describe(classification, response)
        Exception.__init__(self, self._text)
        # requests.HTTPError and httpx.HTTPStatusError keep ``response`` too.
        self.response = response

    @staticmethod
    def _describe(c: Classification, response: Any) -> str:
        what = c.code or c.category.value
        text = f"{c.status} {what}" if c.status else what
        if c.message:
            text += f": {c.message}"
        extra = f"vendor {c.vendor}"
        if c.trace_id:
            extra += f", trace id {c.trace_id}"
        return f"{text} ({extra}){_request_line(response)}"

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        c = self.classification
        return (
            f"{type(self).__name__}(status={c.status}, vendor={c.vendor!r}, "
            f"code={c.code!r}, trace_id={c.trace_id!r})"
        )

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self).__name__, self.classification, self.attempts, self._text))

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self.classification.status

    @property
    def vendor(self) -> str:
        """The vendor that answered."""
        return self.classification.vendor

    @property
    def code(self) -> str | None:
        """The vendor's machine code."""
        return self.classification.code

    @property
    def message(self) -> str | None:
        """The vendor's human message."""
        return self.classification.message

    @property
    def details(self) -> Mapping[str, Any]:
        """The vendor's details."""
        return self.classification.details

    @property
    def trace_id(self) -> str | None:
        """The trace id to give the vendor's support."""
        return self.classification.trace_id


class RateLimited(ResilienceError):
    """429: the vendor (or a local limit) refuses more requests for now."""


class ServerError(ResilienceError):
    """A transient server failure survived every attempt."""


class Conflict(ResilienceError):
    """409: a real conflict, or a pending one that outlasted the retries."""


class CapacityUnavailable(ResilienceError):
    """420: no capacity in any region tried."""


class QuotaExhausted(ResilienceError):
    """The account's quota is used up."""


class Unauthorized(ResilienceError):
    """401: credentials missing or invalid."""


class Forbidden(ResilienceError):
    """403: not allowed (inactive account, missing scope)."""


class NotFound(ResilienceError):
    """404."""


class SessionLost(ResilienceError):
    """The game session is gone (Playwave 404/410)."""


class InvalidRequest(ResilienceError):
    """400/422: the request is malformed."""


class NotImplementedByServer(ResilienceError):
    """501: the endpoint exists but does nothing yet."""


class BusinessRejected(ResilienceError):
    """HTTP 200 carrying a business refusal (Playwave ``reason``/``result``)."""


class ClientError(ResilienceError):
    """Any other 4xx."""


class CircuitOpen(ResilienceError):
    """Not sent: the circuit breaker of this host and region is open.

    Raised by the transports; it is also the library's own connection error
    (``requests.ConnectionError`` / ``httpx.ConnectError``), so code that
    handles an unreachable host handles this too.
    """


_BY_CATEGORY: Mapping[Category, type[ResilienceError]] = {
    Category.RATE_LIMITED: RateLimited,
    Category.TRANSIENT: ServerError,
    Category.CONFLICT: Conflict,
    Category.CONFLICT_PENDING: Conflict,
    Category.CAPACITY: CapacityUnavailable,
    Category.QUOTA_EXHAUSTED: QuotaExhausted,
    Category.UNAUTHORIZED: Unauthorized,
    Category.FORBIDDEN: Forbidden,
    Category.NOT_FOUND: NotFound,
    Category.SESSION_LOST: SessionLost,
    Category.INVALID_REQUEST: InvalidRequest,
    Category.NOT_IMPLEMENTED: NotImplementedByServer,
    Category.BUSINESS_REJECTED: BusinessRejected,
    Category.CLIENT_ERROR: ClientError,
}

_mixed: dict[tuple[type[ResilienceError], type[Exception]], type[ResilienceError]] = {}
_mixed_lock = threading.Lock()


def _rebuild(
    name: str, classification: Classification, attempts: list[Attempt], text: str
) -> ResilienceError:
    cls = globals().get(name)
    if not (isinstance(cls, type) and issubclass(cls, ResilienceError)):
        cls = error_class(classification.category)
    return cls(classification, None, attempts, text=text)


def mixed_class(
    base: type[ResilienceError], library_error: type[Exception]
) -> type[ResilienceError]:
    """A subclass of both ``base`` and ``library_error`` (made once, then cached)."""
    key = (base, library_error)
    cls = _mixed.get(key)
    if cls is None:
        with _mixed_lock:
            cls = _mixed.get(key)
            if cls is None:
                cls = type(base.__name__, (base, library_error), {"__module__": __name__})
                _mixed[key] = cls
    return cls


def error_class(
    category: Category, library_error: type[Exception] | None = None
) -> type[ResilienceError]:
    """The error class for ``category``, also a subclass of ``library_error`` if given."""
    base = _BY_CATEGORY.get(category, ResilienceError)
    return base if library_error is None else mixed_class(base, library_error)


def raise_for(
    classification: Classification,
    response: Any,
    attempts: Sequence[Attempt],
    library_error: type[Exception] | None = None,
) -> None:
    """Raise the error of ``classification``'s category."""
    cls = error_class(classification.category, library_error)
    error = cls(classification, response, attempts)
    if library_error is not None:
        # The library's own attributes (httpx: .request; requests: .request too).
        try:
            request = response.request
        except Exception:
            request = None
        if request is not None:
            # httpx.HTTPError.request (httpx2's too) is a property backed by ``_request``.
            is_httpx = library_error.__module__.startswith("httpx")
            setattr(error, "_request" if is_httpx else "request", request)
    raise error
