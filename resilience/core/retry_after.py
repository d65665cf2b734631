"""``Retry-After`` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

RFC 9110 asks for whole seconds, but servers send fractions (``0.05``); we are
lenient in what we accept. Anything unusable (negative, NaN, infinite, text)
is ``None`` so that the caller falls back to backoff, as httpx-retries does,
rather than raising as urllib3's ``parse_retry_after`` does.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import timezone
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]

_log = logging.getLogger(__name__)

# delay-seconds, leniently with a fraction: "120", "0.05", ".5".
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")  # DIGIT is ASCII


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value.

    Args:
        value: the header value, or ``None`` when absent.
        now: the current wall-clock time in seconds since the epoch, used for
            HTTP-dates (a date in the past gives ``0.0``).

    Returns:
        A finite number of seconds ``>= 0``, or ``None`` when the value is
        absent or cannot be used.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    if text[0] in "0123456789+-.":
        _log.debug("ignoring unusable Retry-After %r", text[:64])
        return None
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            # An HTTP-date is always GMT (RFC 9110 §5.6.7); the asctime form and
            # "-0000" carry no zone and must not be read as local time.
            when = when.replace(tzinfo=timezone.utc)
        timestamp = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        _log.debug("ignoring unparseable Retry-After %r", text[:64])
        return None
    if not math.isfinite(timestamp):
        return None
    return max(0.0, timestamp - now)
