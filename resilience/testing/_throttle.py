"""Server-side rate limits of the simulator: a fixed or sliding window per API key.

A :class:`Throttle` admits at most ``limit`` requests per ``per`` seconds for
each value of one request header (``Authorization`` by default: 8bitedge counts
per API key, across every worker using it). It keeps no lock of its own and
reads no clock: the simulator calls :meth:`Throttle.admit` under its lock with
``time.monotonic()``.

Windows:

* ``"sliding"`` (a sliding log): a request is admitted when fewer than
  ``limit`` admitted requests of its key arrived in the last ``per`` seconds
  (``(now - per, now]``). A refused one is told to wait until the oldest of
  them leaves the window: ``oldest + per - now``. No span of ``per`` seconds
  ever holds more than ``limit`` admitted requests.
* ``"fixed"``: time is cut into windows of ``per`` seconds counted from when
  the limit was set, shared by every key (as calendar minutes are); each key
  gets ``limit`` requests per window, and a refused one is told to wait until
  the window ends. Up to ``2 * limit`` requests may pass around a boundary.

Only admitted requests count: a client that keeps knocking while refused does
not push its own slot further away.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

__all__ = ["Throttle", "Window", "window_label"]

Window = Literal["sliding", "fixed"]
"""How a :class:`Throttle` counts: ``"sliding"`` or ``"fixed"``."""

_WINDOW_NAMES = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86_400.0: "day"}
_MIN_RETRY_AFTER = 0.001


def window_label(per: float) -> str:
    """Name a window the way 8bitedge's ``details.window`` does.

    Args:
        per: Window length in seconds.

    Returns:
        ``"second"``, ``"minute"``, ``"hour"`` or ``"day"`` for those lengths,
        else the length in seconds (``"0.5s"``).
    """
    return _WINDOW_NAMES.get(float(per), f"{per:g}s")


def format_retry_after(seconds: float) -> str:
    """Format a wait as a ``Retry-After`` delay, rounded up to the millisecond.

    Rounding up means a client that waits exactly the value it was given finds
    the slot free; the value is never below 1 ms.

    Args:
        seconds: The wait.

    Returns:
        Delay-seconds with at most three decimals (``"0.734"``, ``"2"``).
    """
    millis = max(math.ceil(seconds * 1000.0 - 1e-6), int(_MIN_RETRY_AFTER * 1000))
    whole, frac = divmod(millis, 1000)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:03d}".rstrip("0")


class Throttle:
    """The limit and the counts of every key.

    Attributes:
        limit: Requests admitted per window and key.
        per: Window length in seconds.
        header: Lower-case name of the header whose value is the key.
        window: ``"sliding"`` or ``"fixed"``.
        label: The window's name in 8bitedge's details (see :func:`window_label`).
    """

    __slots__ = ("_fixed", "_log", "_origin", "header", "label", "limit", "per", "window")

    def __init__(
        self,
        limit: int,
        per: float,
        header: str,
        window: Window,
        origin: float,
    ) -> None:
        """Create a limit with no requests counted.

        Args:
            limit: Requests admitted per window and key, ``>= 1``.
            per: Window length in seconds, ``> 0``.
            header: Name of the header whose value is the key (any case).
            window: ``"sliding"`` or ``"fixed"``.
            origin: Monotonic time the fixed windows count from.

        Raises:
            TypeError: An argument has the wrong type.
            ValueError: An argument is out of range.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if isinstance(per, bool) or not isinstance(per, (int, float)):
            raise TypeError(f"per must be a number of seconds, not {type(per).__name__}")
        if not math.isfinite(per) or per <= 0:
            raise ValueError(f"per must be a finite number of seconds > 0, got {per}")
        if not isinstance(header, str):
            raise TypeError(f"key_header must be a str, not {type(header).__name__}")
        if not header or not header.isascii() or not header.isprintable() or ":" in header:
            raise ValueError(f"invalid key_header: {header!r}")
        if window not in ("sliding", "fixed"):
            raise ValueError(f"window must be 'sliding' or 'fixed', got {window!r}")
        self.limit = limit
        self.per = float(per)
        self.header = header.lower()
        self.window: Window = window
        self.label = window_label(self.per)
        self._origin = origin
        self._log: dict[str | None, deque[float]] = {}
        self._fixed: dict[str | None, tuple[int, int]] = {}

    def __repr__(self) -> str:
        """Show the limit, the window and the header."""
        return f"<Throttle {self.limit} per {self.per:g}s, {self.window}, by {self.header}>"

    def key_of(self, headers: dict[str, str]) -> str | None:
        """Return the key of a request: its header value, ``None`` without one.

        Args:
            headers: Request headers with lower-case names.

        Returns:
            The key; requests without the header share the key ``None``.
        """
        return headers.get(self.header)

    def admit(self, key: str | None, now: float) -> float | None:
        """Count a request of ``key`` at ``now``, or refuse it.

        Args:
            key: The request's key (see :meth:`key_of`).
            now: Monotonic seconds.

        Returns:
            ``None`` when admitted (and counted); else the seconds until the
            window frees a slot for this key (``> 0``).
        """
        if self.window == "sliding":
            return self._admit_sliding(key, now)
        return self._admit_fixed(key, now)

    def _admit_sliding(self, key: str | None, now: float) -> float | None:
        log = self._log.get(key)
        if log is None:
            log = self._log[key] = deque()
        horizon = now - self.per
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) < self.limit:
            log.append(now)
            return None
        return max(log[0] + self.per - now, _MIN_RETRY_AFTER)

    def _admit_fixed(self, key: str | None, now: float) -> float | None:
        index = math.floor((now - self._origin) / self.per)
        seen_index, count = self._fixed.get(key, (index, 0))
        if seen_index != index:
            count = 0
        if count < self.limit:
            self._fixed[key] = (index, count + 1)
            return None
        ends = self._origin + (index + 1) * self.per
        return max(ends - now, _MIN_RETRY_AFTER)
