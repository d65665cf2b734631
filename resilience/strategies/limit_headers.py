"""What a response's rate-limit headers say: ``Retry-After``, ``RateLimit`` and its kin.

Understood: ``Retry-After``; ``RateLimit`` (``"name";r=0;t=30`` from
draft-ietf-httpapi-ratelimit-headers-08 on, ``limit=, remaining=, reset=`` in
-07); ``RateLimit-Policy`` (``"name";q=100;w=60``, or ``100;w=60`` in earlier
drafts); ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (-03 to -06);
``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``, and Discord's
``X-RateLimit-Reset-After`` (seconds, fractional).

Garbage is ignored, and so is everything it comes with: the draft says
"Malformed RateLimit header fields MUST be ignored" (section 7), so an item
one of whose fields is not a number ``>= 0`` or is given twice with two
values (``r=-1;t=10``, ``r=0;r=5``) counts for nothing, its valid fields
included; the same holds for a ``-Remaining`` / ``-Reset`` pair.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from resilience.core.retry_after import parse_retry_after

__all__ = ["LimitHeaders", "announces_limits", "read_limit_headers"]


@dataclass(frozen=True, slots=True)
class LimitHeaders:
    """What a response's rate-limit headers say, normalised.

    Attributes:
        retry_after: seconds from ``Retry-After``.
        remaining: the fewest requests left in any announced window.
        reset: seconds until an exhausted window resets (the longest, if
            several are), or the only reset announced.
        rate: the lowest announced quota per second (``RateLimit-Policy``).
    """

    retry_after: float | None = None
    remaining: float | None = None
    reset: float | None = None
    rate: float | None = None


_NUMBER = re.compile(r"\s*\"?\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*\"?\s*\Z")


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    match = _NUMBER.match(text)
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


class _Malformed(Exception):
    """A field of an item is not a number ``>= 0``, or is given twice with two values."""


def _members(value: str) -> list[list[str]]:
    """Split a structured-field list: members by ``,``, parameters by ``;``, outside quotes."""
    members: list[list[str]] = []
    current: list[str] = []
    token: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
            token.append(ch)
        elif not quoted and ch in ",;":
            current.append("".join(token).strip())
            token = []
            if ch == ",":
                members.append(current)
                current = []
        else:
            token.append(ch)
    current.append("".join(token).strip())
    members.append(current)
    return [m for m in members if any(m)]


def _params(parts: list[str]) -> dict[str, list[str]]:
    """Every ``name=value`` parameter, each name with all the values it was given."""
    out: dict[str, list[str]] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if sep:
            out.setdefault(name.strip().lower(), []).append(value.strip())
    return out


def _field(values: list[str] | None) -> float | None:
    """The number given by ``values`` (every time a field was given), ``None`` when absent.

    Raises:
        _Malformed: a value is not a number ``>= 0``, or two values differ.
    """
    if not values:
        return None
    numbers = {_number(v) for v in values}
    if None in numbers or len(numbers) != 1:
        raise _Malformed
    return numbers.pop()


def _header_values(h: Mapping[str, str], name: str) -> list[str] | None:
    """A header's values: a header given twice arrives joined by ``,``."""
    raw = h.get(name)
    return None if raw is None else raw.split(",")


def _reset_seconds(value: float, wall_now: float | None) -> float | None:
    """A reset that is a delay, or an epoch time in seconds or milliseconds."""
    if value >= 1e12:  # epoch milliseconds
        return None if wall_now is None else max(0.0, value / 1000.0 - wall_now)
    if value >= 1e9:  # epoch seconds (GitHub's X-RateLimit-Reset)
        return None if wall_now is None else max(0.0, value - wall_now)
    return value


def read_limit_headers(headers: Mapping[str, str], wall_now: float | None = None) -> LimitHeaders:
    """Read ``Retry-After`` and the rate-limit headers of a response; garbage is ignored.

    Understood: ``Retry-After``; ``RateLimit`` (``"name";r=0;t=30`` from
    draft-ietf-httpapi-ratelimit-headers-08 on, ``limit=, remaining=, reset=``
    in -07); ``RateLimit-Policy`` (``"name";q=100;w=60``, or ``100;w=60`` in
    earlier drafts); ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (-03 to
    -06); ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` /
    ``-Reset-After`` (Discord: seconds, fractional; it wins over an epoch
    ``X-RateLimit-Reset``). An item with a malformed field is ignored whole
    (see the module docstring).

    Args:
        headers: the response headers (any mapping; names compared case-insensitively).
        wall_now: seconds since the epoch, to read an HTTP-date ``Retry-After``
            and epoch resets; without it those are ignored.
    """
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    seen: list[tuple[float | None, float | None]] = []  # (remaining, reset seconds)
    rates: list[float] = []

    retry_after: float | None = None
    raw = h.get("retry-after")
    if raw is not None:
        retry_after = parse_retry_after(raw, wall_now) if wall_now is not None else _number(raw)

    # Draft section 7: "Malformed RateLimit header fields MUST be ignored". An
    # item with one bad field (r=-1;t=10) is ignored whole: keeping its t
    # would hold every caller on the word of a broken header.
    if "ratelimit" in h:
        legacy: dict[str, list[str]] = {}
        for member in _members(h["ratelimit"]):
            head, sep, value = member[0].partition("=")
            if sep:  # draft -07: limit=10, remaining=0, reset=5
                legacy.setdefault(head.strip().lower(), []).append(value)
                continue
            p = _params(member[1:])
            try:
                seen.append((_field(p.get("r")), _field(p.get("t"))))
            except _Malformed:
                continue
        if legacy:
            try:
                _field(legacy.get("limit"))
                seen.append((_field(legacy.get("remaining")), _field(legacy.get("reset"))))
            except _Malformed:
                pass

    for name in ("ratelimit-policy", "ratelimit-limit"):
        for member in _members(h.get(name, "")):
            params = {k: v[-1] for k, v in _params(member[1:]).items()}
            if params.get("qu", "requests").strip('"') != "requests":
                continue
            quota = _number(params.get("q")) if "q" in params else _number(member[0])
            window = _number(params.get("w"))
            if quota is not None and window:
                rates.append(quota / window)

    # The pairs (and Discord's X-RateLimit-Reset-After) are one item each: a
    # malformed member (negative, not a number, two different values) voids it.
    for prefix in ("ratelimit-", "x-ratelimit-"):
        try:
            remaining = _field(_header_values(h, prefix + "remaining"))
            reset = _field(_header_values(h, prefix + "reset"))
            after = _field(_header_values(h, prefix + "reset-after"))
        except _Malformed:
            continue
        if reset is not None:
            reset = _reset_seconds(reset, wall_now)
        if after is not None:  # a delay in seconds: surer than an epoch time
            reset = after
        if remaining is not None or reset is not None:
            seen.append((remaining, reset))

    remaining_all = [r for r, _ in seen if r is not None]
    exhausted = [t for r, t in seen if r == 0 and t is not None]
    resets = [t for _, t in seen if t is not None]
    reset_out: float | None = None
    if exhausted:
        reset_out = max(exhausted)
    elif not remaining_all and resets:
        reset_out = max(resets)
    return LimitHeaders(
        retry_after=retry_after,
        remaining=min(remaining_all) if remaining_all else None,
        reset=reset_out,
        rate=min(rates) if rates else None,
    )


def announces_limits(headers: Mapping[str, str]) -> bool:
    """Whether any header name holds ``ratelimit`` (one pass, no parsing): the
    cheap question a success asks before :func:`read_limit_headers`."""
    raw = getattr(headers, "raw", None)  # the (name, value) bytes as sent
    if isinstance(raw, list):
        return any(b"ratelimit" in name.lower() for name, _ in raw)
    return any("ratelimit" in name.lower() for name in headers)
