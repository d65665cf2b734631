"""Scripted replies understood by :class:`~resilience.testing.VendorSimulator`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

ReplyKind = Literal[
    "ok",
    "error",
    "business",
    "when",
    "drop",
    "drop_after_processing",
    "slow",
    "huge",
    "raw",
]

_FORBIDDEN_IN_HEADERS = frozenset("\r\n\0")
_TOKEN_SEPARATORS = frozenset('()<>@,;:\\"/[]?={} \t')


def _check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"status must be an int, not {type(status).__name__}")
    if not 200 <= status <= 999:
        raise ValueError(f"status must be between 200 and 999, got {status}")
    return status


def _check_headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    checked: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        if (
            not name
            or not name.isascii()
            or not name.isprintable()
            or _TOKEN_SEPARATORS.intersection(name)
        ):
            raise ValueError(f"invalid header name: {name!r}")
        if _FORBIDDEN_IN_HEADERS.intersection(value):
            raise ValueError(f"header {name!r} has a value with CR, LF or NUL in it")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} has a value that is not latin-1") from None
        checked.append((name, value))
    return tuple(checked)


def _check_json(value: Mapping[str, Any] | None, what: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {exc}") from exc
    return value


def _format_retry_after(value: float | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"retry_after must be a number or a str, not {type(value).__name__}")
    return str(value)


def _check_seconds(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return float(seconds)


def _check_reply(value: Reply | None, what: str) -> Reply | None:
    if value is not None and not isinstance(value, Reply):
        raise TypeError(f"{what} must be a Reply, not {type(value).__name__}")
    return value


@dataclass(frozen=True, repr=False)
class Reply:
    """One scripted answer of the simulator.

    Build replies with the classmethod constructors (``Reply.error(503)``,
    ``Reply.drop()``, ...) rather than the initialiser. A reply renders in the
    envelope of the vendor whose route the request hit (``/gameye/...``,
    ``/8bitedge/...``, ``/playwave/...``; a generic JSON body elsewhere).

    Attributes:
        kind: What the reply does.
        status: HTTP status, when the reply sets one.
        code: Vendor error code (``None``: the vendor's code for ``status``).
        message: Vendor error message (``None``: the vendor's default).
        retry_after: ``Retry-After`` header value, already formatted.
        details: Vendor error details.
        headers: Extra response headers.
        body: JSON body of an ``ok`` reply (``None``: the endpoint's own).
        raw_body: Exact body bytes of a ``raw`` reply.
        size: Body size in bytes of a ``huge`` reply.
        seconds: Server-side wait of a ``slow`` reply.
        then: Reply used after a ``slow`` wait or when a ``when`` matches.
        region: Region a ``when`` reply applies to.
        consume: Whether a ``when`` reply that does not match is still
            consumed from its script.
        reason: Playwave verify ``reason`` of a ``business`` reply.
        result: Playwave heartbeat ``result`` of a ``business`` reply.
    """

    kind: ReplyKind
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    details: Mapping[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())
    body: Mapping[str, Any] | None = None
    raw_body: bytes = b""
    size: int = 0
    seconds: float = 0.0
    then: Reply | None = None
    region: str | None = None
    consume: bool = False
    reason: str | None = None
    result: str | None = None

    def __repr__(self) -> str:
        """Show the kind and the fields that differ from their defaults."""
        parts = []
        for spec in fields(self):
            if spec.name == "kind":
                continue
            value = getattr(self, spec.name)
            if value != spec.default:
                parts.append(f"{spec.name}={value!r}")
        inner = ", ".join(parts)
        return f"Reply.{self.kind}({inner})"

    @classmethod
    def ok(
        cls,
        body: Mapping[str, Any] | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A success.

        Args:
            body: JSON body to send. ``None`` runs the endpoint's normal
                behaviour (side effects included) and sends its success body;
                should that behaviour fail, a minimal success body of the
                vendor is sent instead.
            status: HTTP status. ``None`` keeps the endpoint's own success
                status (201 for a Gameye session, 204 for a delete, ...), or
                200 when ``body`` is given.
            headers: Extra response headers.

        Returns:
            The reply.
        """
        return cls(
            kind="ok",
            status=None if status is None else _check_status(status),
            body=_check_json(body, "body"),
            headers=_check_headers(headers),
        )

    @classmethod
    def error(
        cls,
        status: int,
        code: str | None = None,
        message: str | None = None,
        *,
        retry_after: float | str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An error in the vendor's envelope.

        Args:
            status: HTTP status.
            code: Vendor error code; ``None`` uses the vendor's documented code
                for ``status``.
            message: Human-readable message; ``None`` uses a default.
            retry_after: ``Retry-After`` header, sent verbatim (``0.05`` gives
                ``"0.05"``, ``2`` gives ``"2"``, a str is sent as it is).
            details: Vendor error details.
            headers: Extra response headers.

        Returns:
            The reply.
        """
        return cls(
            kind="error",
            status=_check_status(status),
            code=code,
            message=message,
            retry_after=_format_retry_after(retry_after),
            details=_check_json(details, "details"),
            headers=_check_headers(headers),
        )

    @classmethod
    def rate_limited(
        cls,
        retry_after: float | str | None = 0.05,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A 429 in the vendor's envelope.

        8bitedge replies carry ``details`` ``{"window": "minute", "limit": 120}``.

        Args:
            retry_after: ``Retry-After`` header (``None`` sends none).
            headers: Extra response headers.

        Returns:
            The reply.
        """
        return cls(
            kind="error",
            status=429,
            retry_after=_format_retry_after(retry_after),
            headers=_check_headers(headers),
        )

    @classmethod
    def capacity(
        cls,
        region: str | None = None,
        *,
        retry_after: float | str | None = None,
        consume: bool = False,
    ) -> Reply:
        """A Gameye 420 (no capacity in the region).

        Args:
            region: When given, the reply only applies to requests for this
                region (see :meth:`when`); other requests get the endpoint's
                normal behaviour.
            retry_after: ``Retry-After`` header (``None`` sends none).
            consume: With ``region``, whether a request for another region
                still consumes the reply from its script.

        Returns:
            The reply.
        """
        reply = cls(kind="error", status=420, retry_after=_format_retry_after(retry_after))
        if region is None:
            return reply
        return cls.when(region, reply, consume=consume)

    @classmethod
    def when(cls, region: str, then: Reply, *, consume: bool = False) -> Reply:
        """A reply that only applies to requests for one region.

        The region of a request is the JSON body field ``location``, else the
        ``X-Region`` header, else the ``region`` query parameter. A request for
        another region (or none) gets the endpoint's normal behaviour.

        Args:
            region: Region the reply applies to.
            then: Reply sent when the region matches.
            consume: Whether a request that does not match still consumes the
                reply from its script (by default it waits for a matching one).

        Returns:
            The reply.
        """
        if not isinstance(region, str):
            raise TypeError(f"region must be a str, not {type(region).__name__}")
        if then is None:
            raise TypeError("then must be a Reply")
        return cls(
            kind="when",
            region=region,
            then=_check_reply(then, "then"),
            consume=bool(consume),
        )

    @classmethod
    def business(cls, reason: str | None = None, result: str | None = None) -> Reply:
        """A Playwave business result delivered as HTTP 200.

        Gives ``{"success": true, "reason": reason}`` (verify) and/or
        ``{"success": true, "result": result}`` (heartbeat). With neither, the
        verify route gets reason ``OTT_EXPIRED`` and any other route result
        ``CHARGE_EXHAUSTED``. No side effect is performed.

        Args:
            reason: Verify ``reason`` (``OTT_EXPIRED``, ``OTT_ALREADY_USED``, ...).
            result: Heartbeat ``result`` (``CHARGE_EXHAUSTED``, ...).

        Returns:
            The reply.
        """
        return cls(kind="business", status=200, reason=reason, result=result)

    @classmethod
    def drop(cls) -> Reply:
        """Read the request, then close the connection without answering.

        Returns:
            The reply.
        """
        return cls(kind="drop")

    @classmethod
    def drop_after_processing(cls) -> Reply:
        """Perform the endpoint's normal side effect, then close without answering.

        Returns:
            The reply.
        """
        return cls(kind="drop_after_processing")

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> Reply:
        """Wait on the server side, then answer.

        The wait ends early when the simulator stops.

        Args:
            seconds: Time to wait before answering.
            then: Reply sent after the wait; ``None`` uses the endpoint's normal
                behaviour.

        Returns:
            The reply.
        """
        return cls(kind="slow", seconds=_check_seconds(seconds), then=_check_reply(then, "then"))

    @classmethod
    def huge(
        cls,
        size: int,
        status: int = 500,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A non-JSON ``text/plain`` body of ``size`` bytes, streamed in pieces.

        Args:
            size: Body size in bytes.
            status: HTTP status.
            headers: Extra response headers.

        Returns:
            The reply.
        """
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        return cls(
            kind="huge",
            status=_check_status(status),
            size=size,
            headers=_check_headers(headers),
        )

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Exactly these body bytes.

        ``Content-Type`` is ``application/json`` unless ``headers`` sets one.
        A ``Content-Length`` in ``headers`` is sent instead of the real length
        and the connection is closed after the body, so a larger value gives the
        client a truncated body.

        Args:
            status: HTTP status.
            body: Body bytes, sent unchanged.
            headers: Extra response headers.

        Returns:
            The reply.
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        return cls(
            kind="raw",
            status=_check_status(status),
            raw_body=bytes(body),
            headers=_check_headers(headers),
        )
