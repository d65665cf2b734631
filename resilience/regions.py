"""Where the region of a request lives, for ``CAPACITY`` failover.

A region locator reads the region of a request and rewrites a request to
another region. The built-in ones cover a JSON body field, a host mapping, a
header and a query parameter; any object with the same two methods works.

None of them knows a vendor: which field holds a vendor's region is that
vendor's detector's ``region_locator`` hook (Gameye's detector answers
``JsonField("location")``), and :class:`JsonField` always names its field.

Locators work on :class:`RequestParts`, a library-neutral copy of the request,
and change only what holds the region: other headers and body fields are kept
byte for byte, and ``Content-Length`` is corrected when the body changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlsplit, urlunsplit

from resilience.core import checks

__all__ = [
    "Header",
    "HostMap",
    "JsonField",
    "QueryParam",
    "RegionLocator",
    "RequestParts",
    "check_locator",
    "check_region",
]

# RFC 9110 section 5.6.2: a header name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RequestParts:
    """A request as plain values.

    Attributes:
        method: upper-case method.
        url: the full URL.
        headers: header pairs in order (names as sent).
        body: the body bytes, or ``None`` when there is none.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def with_header(self, name: str, value: str) -> RequestParts:
        """A copy with header ``name`` set to ``value`` (replacing any)."""
        lowered = name.lower()
        kept = tuple((k, v) for k, v in self.headers if k.lower() != lowered)
        return replace(self, headers=(*kept, (name, value)))

    def with_body(self, body: bytes) -> RequestParts:
        """A copy with ``body`` and a matching ``Content-Length``."""
        parts = replace(self, body=body)
        if self.header("content-length") is not None or body:
            parts = parts.with_header("Content-Length", str(len(body)))
        return parts


@runtime_checkable
class RegionLocator(Protocol):
    """Reads and rewrites the region of a request."""

    def region_of(self, request: RequestParts) -> str | None:
        """The region the request targets, or ``None`` when it names none."""

    def with_region(self, request: RequestParts, region: str) -> RequestParts:
        """A copy of ``request`` aimed at ``region``."""


@dataclass(frozen=True, slots=True)
class JsonField:
    """The region is a top-level field of a JSON object body, e.g. ``JsonField("location")``.

    The rewrite replaces only that field's value in the original bytes, so
    every other byte of the body is unchanged.

    Args:
        name: the field's name; required (no API's field is everyone's).
    """

    name: str

    def __post_init__(self) -> None:
        checks.text("JsonField.name", self.name)

    def _pattern(self) -> re.Pattern[bytes]:
        key = re.escape(json.dumps(self.name).encode())
        return re.compile(rb"(" + key + rb'\s*:\s*)("(?:[^"\\]|\\.)*")')

    def region_of(self, request: RequestParts) -> str | None:
        """The field's value when the body is a JSON object holding a string there."""
        if not request.body:
            return None
        try:
            document = json.loads(request.body)
        except (ValueError, RecursionError):
            return None
        value = document.get(self.name) if isinstance(document, dict) else None
        return value if isinstance(value, str) else None

    def with_region(self, request: RequestParts, region: str) -> RequestParts:
        """Replace the field's value in place; other bytes are untouched."""
        if not request.body or self.region_of(request) is None:
            return request
        document = json.loads(request.body)
        new_value = json.dumps(region).encode()
        body = request.body
        for match in self._pattern().finditer(body):
            # Only the top-level occurrence: check that decoding the value at
            # this position gives the top-level value.
            if json.loads(match.group(2)) == document[self.name]:
                candidate = body[: match.start(2)] + new_value + body[match.end(2) :]
                try:
                    rewritten = json.loads(candidate)
                except ValueError:
                    continue
                if isinstance(rewritten, dict) and rewritten.get(self.name) == region:
                    return request.with_body(candidate)
        document[self.name] = region
        return request.with_body(json.dumps(document, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class HostMap:
    """Each region has its own base URL: ``{"eu-west": "https://eu.api.example", ...}``.

    Only the matching base URL prefix of the request URL is swapped, so
    credentials are only ever sent to hosts this mapping names.
    """

    bases: Mapping[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.bases, Mapping):
            raise TypeError(
                f"HostMap.bases must be a mapping of region to base URL, "
                f"not {checks.kind(self.bases)}"
            )
        bases: dict[str, str] = {}
        for region, base in self.bases.items():
            check_region("HostMap region", region)
            checks.text(f"HostMap.bases[{region!r}]", base)
            try:
                split = urlsplit(base)
                valid = split.scheme in ("http", "https") and bool(split.hostname)
            except ValueError:
                valid = False
            if not valid or _CONTROL.search(base):
                raise ValueError(
                    f"HostMap.bases[{region!r}] must be an http:// or https:// URL "
                    f"with a host, got {checks.shown(base)}"
                )
            bases[region] = base
        # A copy: a mapping changed later must not move requests elsewhere.
        object.__setattr__(self, "bases", bases)

    def region_of(self, request: RequestParts) -> str | None:
        """The region whose base URL prefixes the request URL (longest wins)."""
        best: tuple[int, str] | None = None
        for region, base in self.bases.items():
            prefix = base.rstrip("/")
            matches = request.url == prefix or request.url.startswith((prefix + "/", prefix + "?"))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), region)
        return best[1] if best else None

    def with_region(self, request: RequestParts, region: str) -> RequestParts:
        """Swap the base URL of the current region for the one of ``region``."""
        current = self.region_of(request)
        if current is None or region not in self.bases:
            return request
        old = self.bases[current].rstrip("/")
        new = self.bases[region].rstrip("/")
        parts = replace(request, url=new + request.url[len(old) :])
        host = urlsplit(new).netloc
        if request.header("host") is not None and host:
            parts = parts.with_header("Host", host)
        return parts


@dataclass(frozen=True, slots=True)
class Header:
    """The region is a request header, e.g. ``X-Region``."""

    name: str = "X-Region"

    def __post_init__(self) -> None:
        checks.text("Header.name", self.name)
        if not _TOKEN.match(self.name):
            raise ValueError(
                f"Header.name must be an HTTP header name (a token), got {checks.shown(self.name)}"
            )

    def region_of(self, request: RequestParts) -> str | None:
        """The header's value."""
        return request.header(self.name)

    def with_region(self, request: RequestParts, region: str) -> RequestParts:
        """Set the header to ``region``."""
        return request.with_header(self.name, region)


@dataclass(frozen=True, slots=True)
class QueryParam:
    """The region is a query parameter, e.g. ``?region=eu-west``."""

    name: str = "region"

    def __post_init__(self) -> None:
        checks.text("QueryParam.name", self.name)

    def region_of(self, request: RequestParts) -> str | None:
        """The parameter's first value."""
        for key, value in parse_qsl(urlsplit(request.url).query, keep_blank_values=True):
            if key == self.name:
                return value
        return None

    def with_region(self, request: RequestParts, region: str) -> RequestParts:
        """Set the parameter to ``region``; other parameters are kept byte for byte.

        Re-encoding the whole query would change other parameters' spelling
        (``a,b`` -> ``a%2Cb``, ``%20`` -> ``+``) and break signed URLs.
        """
        split = urlsplit(request.url)
        value = quote_plus(region, safe="")
        segments = split.query.split("&") if split.query else []
        found = False
        for i, segment in enumerate(segments):
            key = segment.split("=", 1)[0]
            if unquote_plus(key) == self.name:
                segments[i] = f"{key}={value}"
                found = True
        if not found:
            segments.append(f"{quote_plus(self.name, safe='')}={value}")
        return replace(request, url=urlunsplit(split._replace(query="&".join(segments))))


def check_region(name: str, region: object) -> str:
    """``region`` when it can name a region: a non-empty str, UTF-8, no control characters.

    A region name is written into requests (a header, a query, a JSON body, a
    store key): a lone surrogate or a line break could not be sent.
    """
    checks.text(name, region)
    assert isinstance(region, str)
    if _CONTROL.search(region):
        raise ValueError(f"{name} must not hold control characters, got {checks.shown(region)}")
    return region


def check_locator(name: str, locator: object) -> RegionLocator:
    """``locator`` when it is an instance with callable ``region_of`` and ``with_region``."""
    what = "a region locator (an object with region_of() and with_region())"
    checks.instance(name, locator, RegionLocator, what)
    checks.methods(name, locator, ("region_of", "with_region"), what)
    assert isinstance(locator, RegionLocator)
    return locator
