"""Request and response values passed between the HTTP layer and the simulator."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

MAX_BODY = 1 << 20
"""Largest request body kept (and handed to the endpoints), in bytes."""

VENDORS = ("gameye", "8bitedge", "playwave")
"""Vendor names, which are also the URL prefixes of their routes."""

_VENDOR_SET = frozenset(VENDORS)

_PHRASES: dict[int, str] = {int(status): status.phrase for status in HTTPStatus}
_PHRASES[420] = "Capacity Unavailable"

_STATUS_LINES: dict[int, str] = {}


def phrase(status: int) -> str:
    """Return the reason phrase of an HTTP status.

    Args:
        status: HTTP status.

    Returns:
        The phrase, ``"Unknown"`` for statuses without one.
    """
    return _PHRASES.get(status, "Unknown")


def status_line(status: int) -> str:
    """Return the HTTP/1.1 status line of ``status``, CRLF included.

    Args:
        status: HTTP status.

    Returns:
        The status line.
    """
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {phrase(status)}\r\n"
        _STATUS_LINES[status] = line
    return line


def status_name(status: int) -> str:
    """Return the upper-case name of an HTTP status (``SERVICE_UNAVAILABLE``).

    Args:
        status: HTTP status.

    Returns:
        The name, ``"ERROR"`` for statuses without one.
    """
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


def dumps(value: Any) -> bytes:
    """Encode a value as compact JSON bytes.

    Args:
        value: JSON-serialisable value.

    Returns:
        The encoded value.
    """
    return json.dumps(value, separators=(",", ":")).encode()


def iso_now(*, millis: bool = False) -> str:
    """Return the current UTC time in ISO 8601 with a ``Z`` suffix.

    Args:
        millis: Include milliseconds.

    Returns:
        The timestamp.
    """
    now = time.time()
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    if millis:
        return f"{text}.{int(now * 1000) % 1000:03d}Z"
    return text + "Z"


_UNPARSED: Any = object()


class Request:
    """A request as the endpoints see it.

    Attributes:
        method: Request method, upper case.
        route_method: Method used for routing (``GET`` for ``HEAD``).
        path: Path without the query string.
        query: Query string, without ``?``.
        headers: Headers with lower-case names.
        body: Body bytes (at most :data:`MAX_BODY`).
        key: Value of ``X-Sim-Key``, if any.
        vendor: Vendor whose prefix the path starts with, or ``None``.
        sub: Path after the vendor prefix (``/session``), or the whole path.
    """

    __slots__ = (
        "_json",
        "body",
        "headers",
        "key",
        "method",
        "path",
        "query",
        "route_method",
        "sub",
        "vendor",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        """Build the request and work out its vendor.

        Args:
            method: Request method, upper case.
            path: Path without the query string.
            query: Query string, without ``?``.
            headers: Headers with lower-case names.
            body: Body bytes.
        """
        self.method = method
        self.route_method = "GET" if method == "HEAD" else method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.key = headers.get("x-sim-key")
        self._json: Any = _UNPARSED
        self.vendor: str | None = None
        self.sub = path
        if path.startswith("/"):
            first, slash, rest = path[1:].partition("/")
            if first in _VENDOR_SET:
                self.vendor = first
                self.sub = slash + rest

    def json(self) -> Any:
        """Return the body parsed as JSON, or ``None`` when it is not JSON.

        Returns:
            The parsed body.
        """
        if self._json is _UNPARSED:
            try:
                self._json = json.loads(self.body) if self.body else None
            except (ValueError, RecursionError):
                self._json = None
        return self._json

    def region(self) -> str | None:
        """Return the region the request is for.

        Returns:
            The JSON body field ``location``, else the ``X-Region`` header, else
            the ``region`` query parameter, else ``None``.
        """
        data = self.json()
        if isinstance(data, dict):
            location = data.get("location")
            if isinstance(location, str):
                return location
        header = self.headers.get("x-region")
        if header:
            return header.strip()
        if self.query:
            values = parse_qs(self.query).get("region")
            if values:
                return values[0]
        return None


@dataclass(slots=True)
class Response:
    """A response for the HTTP layer to write.

    Attributes:
        status: HTTP status.
        body: Body bytes (ignored when ``stream`` is set).
        headers: Extra headers, in order.
        content_type: ``Content-Type`` value, ``None`` for none.
        stream: When >= 0, send a generated body of this many bytes instead.
        drop: Close the connection without answering.
        close: Close the connection after answering.
        content_length: ``Content-Length`` value to send instead of the real
            one (the connection is closed after the body).
    """

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "application/json"
    stream: int = -1
    drop: bool = False
    close: bool = False
    content_length: str | None = None

    def copy(self) -> Response:
        """Return a copy with its own header list.

        Returns:
            The copy.
        """
        return Response(
            self.status,
            self.body,
            list(self.headers),
            self.content_type,
            self.stream,
            self.drop,
            self.close,
            self.content_length,
        )

    def has_header(self, lower_name: str) -> bool:
        """Tell whether an extra header of that name is set.

        Args:
            lower_name: Header name, lower case.

        Returns:
            Whether the header is among ``headers``.
        """
        return any(name.lower() == lower_name for name, _ in self.headers)


def json_response(status: int, value: Any) -> Response:
    """Build a JSON response.

    Args:
        status: HTTP status.
        value: JSON-serialisable body.

    Returns:
        The response.
    """
    return Response(status, dumps(value))
