"""What a response's rate-limit headers say: ``Retry-After``, ``RateLimit`` and its kin.

Understood: ``Retry-After``; ``RateLimit`` (``"name";r=0;t=30`` from
draft-ietf-httpapi-ratelimit-headers-08 on, ``limit=, remaining=, reset=`` in
-07); ``RateLimit-Policy`` (``"name";q=100;w=60``, or ``100;w=60`` in earlier
drafts); ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (-03 to -06);
``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``. Garbage is ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from resilience.core.retry_after import parse_retry_after

__all__ = ["LimitHeaders", "read_limit_headers"]


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


def _params(parts: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


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
    -06); ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``.

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

    if "ratelimit" in h:
        legacy: dict[str, str] = {}
        for member in _members(h["ratelimit"]):
            head, sep, value = member[0].partition("=")
            if sep:  # draft -07: limit=10, remaining=0, reset=5
                legacy[head.strip().lower()] = value
            else:
                p = _params(member[1:])
                seen.append((_number(p.get("r")), _number(p.get("t"))))
        if legacy:
            seen.append((_number(legacy.get("remaining")), _number(legacy.get("reset"))))

    for name in ("ratelimit-policy", "ratelimit-limit"):
        for member in _members(h.get(name, "")):
            p = _params(member[1:])
            if p.get("qu", "requests").strip('"') != "requests":
                continue
            quota = _number(p.get("q")) if "q" in p else _number(member[0])
            window = _number(p.get("w"))
            if quota is not None and window:
                rates.append(quota / window)

    for prefix in ("ratelimit-", "x-ratelimit-"):
        remaining = _number(h.get(prefix + "remaining"))
        reset = _number(h.get(prefix + "reset"))
        if reset is not None:
            reset = _reset_seconds(reset, wall_now)
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
