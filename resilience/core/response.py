"""One read-only view over `requests` and `httpx` responses.

Detectors see a :class:`ResponseView` and never import an HTTP library. The view
holds the status, the headers and at most :data:`MAX_BODY` bytes of body that
are already in memory: building a view never reads from the network.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_BODY", "ResponseView", "bounded_decode", "content_length", "view_of"]

#: No more than this many bytes of a body are ever parsed (a vendor error
#: envelope is a few hundred bytes; anything larger is not one).
MAX_BODY = 64 * 1024

_NOT_PARSED: Any = object()


@dataclass(frozen=True, slots=True, eq=False)
class ResponseView:
    """What a detector may look at.

    Args:
        status: the HTTP status code.
        headers: a mapping whose keys are lower-cased header names.
        body: the body when it is in memory and at most :data:`MAX_BODY` bytes,
            else ``None`` (not read, streaming, or too large).
        host: the request's host name without port, when known.
        method: the request method, when known.
        path: the request path, when known.
        request_body: the request body when it is bytes, else ``None``.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes | None = None
    host: str | None = None
    method: str | None = None
    path: str | None = None
    request_body: bytes | None = None

    def header(self, name: str) -> str | None:
        """Return the header ``name`` (lower-case) or ``None``."""
        return self.headers.get(name)

    def json(self) -> Any:
        """Return the parsed body, or ``None`` when it is absent or not JSON."""
        return parse_json(self.body)


def content_length(headers: Any) -> int | None:
    """The ``Content-Length`` as an int, or ``None`` when absent or not 1*DIGIT.

    ``str.isdigit`` alone would accept "²" or 5,000 digits, which ``int()``
    then refuses: only ASCII digits, at most 19 of them, are a length.
    """
    value = headers.get("content-length")
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > 19 or not value.isascii() or not value.isdigit():
        return None
    return int(value)


# zlib window sizes: gzip container, zlib container, raw deflate.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def bounded_decode(raw: bytes, encoding: str | None) -> bytes | None:
    """Undo ``Content-Encoding`` on ``raw``, never producing more than :data:`MAX_BODY` bytes.

    A 49 KB gzip body can inflate to 50 MB: decompression stops at the cap.
    Returns ``None`` when the result would be larger, the encoding is unknown
    (``br``, ``zstd``, stacked codings) or the bytes do not decode; the caller
    then classifies from the status, and the caller's own read of the body
    meets the same error the library would raise anyway.
    """
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return raw if len(raw) <= MAX_BODY else None
    wbits = _WBITS.get(coding)
    if wbits is None:
        return None
    try:
        decoder = zlib.decompressobj(wbits)
        out = decoder.decompress(raw, MAX_BODY + 1)
        if coding == "deflate" and not out and raw:
            raise zlib.error("not zlib-wrapped")
    except zlib.error:
        if coding != "deflate":
            return None
        try:  # servers send raw deflate as "deflate" too
            out = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, MAX_BODY + 1)
        except zlib.error:
            return None
    return out if len(out) <= MAX_BODY else None


def parse_json(body: bytes | None) -> Any:
    """Parse ``body`` as JSON; ``None`` when empty, too large, or not JSON."""
    if not body or len(body) > MAX_BODY:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _lower_headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for key, value in headers.items():
            name = key.decode("latin-1") if isinstance(key, bytes) else str(key)
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            out[name.lower()] = text
    except Exception:  # garbage header containers: classify from the status alone
        return out
    return out


def _body_in_memory(response: Any) -> bytes | None:
    """The body if the response already holds it (never reads the network)."""
    module = type(response).__module__
    if module.startswith("httpx"):  # httpx and httpx2
        try:
            content = response.content  # raises ResponseNotRead while streaming
        except Exception:
            return None
    else:
        # requests: ``_content`` is False until the body has been read.
        content = getattr(response, "_content", None)
    if isinstance(content, bytes) and len(content) <= MAX_BODY:
        return content
    return None


def _request_of(response: Any) -> Any:
    try:
        return response.request
    except Exception:  # httpx raises RuntimeError when no request is attached
        return None


def view_of(response: Any, *, body: bytes | None = None) -> ResponseView:
    """Build a :class:`ResponseView` of a ``requests`` or ``httpx`` response.

    Args:
        response: a ``requests.Response`` or ``httpx.Response`` (anything with
            ``status_code`` and ``headers`` works).
        body: the body, when the caller has read it itself (bounded).
    """
    try:
        status = int(response.status_code)
    except Exception:
        status = 0
    headers = _lower_headers(getattr(response, "headers", {}))
    if body is None:
        body = _body_in_memory(response)
    elif len(body) > MAX_BODY:
        body = None
    request = _request_of(response)
    host = method = path = None
    request_body = None
    if request is not None:
        method = getattr(request, "method", None)
        url = getattr(request, "url", None)
        if url is not None:
            host, path = _host_and_path(url)
        raw = getattr(request, "body", None)  # requests.PreparedRequest
        if raw is None:
            try:
                raw = request.content  # httpx.Request, when replayable
            except Exception:
                raw = None
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        if isinstance(raw, bytes) and len(raw) <= MAX_BODY:
            request_body = raw
    return ResponseView(
        status=status,
        headers=headers,
        body=body,
        host=host,
        method=str(method).upper() if method else None,
        path=path,
        request_body=request_body,
    )


def _host_and_path(url: Any) -> tuple[str | None, str | None]:
    host = getattr(url, "host", None)  # httpx.URL
    if isinstance(host, str):
        return host.lower() or None, str(url.path)
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return None, None
    return (parts.hostname or None), (parts.path or "/")
