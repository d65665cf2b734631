"""A random mix of vendor faults, drawn per request (``VendorSimulator.serve_faults``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from resilience.testing._replies import Reply

Fault = Literal["5xx", "429", "420", "slow", "tail", "normal"]
"""What a :class:`FaultMix` did to one request (``"normal"``: nothing)."""

FAULTS: tuple[Fault, ...] = ("5xx", "429", "420", "slow", "tail", "normal")
"""Every :data:`Fault`, in the order the summaries list them."""

TAIL_SHAPE = 2.0
"""Pareto shape of tail waits: a wait exceeds ``k * tail_seconds`` with probability ``k**-2``.

A shape of 2 has a finite mean and an infinite variance, the heavy tail that
hedged requests are for (Dean and Barroso, "The Tail at Scale")."""

TAIL_CAP = 10.0
"""Tail waits stop at ``TAIL_CAP * tail_seconds`` (1% of them with :data:`TAIL_SHAPE` 2),
so that no single draw holds a test or a benchmark for minutes."""


def check_share(value: object, what: str) -> float:
    """Check that ``value`` is a share of requests, a number in [0, 1].

    Args:
        value: The value to check.
        what: Its name in the error message (a field, a flag or a key).

    Returns:
        The share as a float.

    Raises:
        TypeError: Not a number (``bool`` is refused).
        ValueError: Outside [0, 1], or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number between 0 and 1, not {type(value).__name__}")
    if not 0.0 <= value <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"{what} must be between 0 and 1, got {value}")
    return float(value)


def check_seconds(value: object, what: str) -> float:
    """Check that ``value`` is a finite number of seconds, 0 or more.

    Args:
        value: The value to check.
        what: Its name in the error message.

    Returns:
        The seconds as a float.

    Raises:
        TypeError: Not a number (``bool`` is refused).
        ValueError: Negative, infinite or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value}")
    return float(value)


def check_region(region: object, what: str) -> str:
    """Check that ``region`` is a region name: a non-empty str without spaces around it.

    Args:
        region: The value to check.
        what: Its name in the error message.

    Returns:
        The region.

    Raises:
        TypeError: Not a str.
        ValueError: Empty or blank, or with spaces around it.
    """
    if not isinstance(region, str):
        raise TypeError(f"{what} must name a region with a str, not {type(region).__name__}")
    if not region.strip():
        raise ValueError(f"{what} has an empty region name")
    if region != region.strip():
        raise ValueError(f"{what} has a region name with spaces around it: {region!r}")
    return region


def seconds_text(seconds: float) -> str:
    """Write seconds as delay-seconds to the millisecond (``"2"``, ``"1.5"``, ``"0.05"``).

    Args:
        seconds: Finite seconds, 0 or more.

    Returns:
        The text, without exponent or trailing zeros.
    """
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def check_total(parts: Iterable[tuple[str, float]]) -> None:
    """Check that shares that may hit the same request add up to at most 1.

    Args:
        parts: ``(name, share)`` pairs, named as the caller wants them reported.

    Raises:
        ValueError: The shares add up to more than 1.
    """
    given = [(name, share) for name, share in parts if share > 0]
    total = math.fsum(share for _, share in given)
    # A little slack for shares written in decimal (0.1 + 0.2 + 0.7).
    if total > 1.0 + 1e-9:
        terms = " + ".join(f"{name}={share:g}" for name, share in given)
        raise ValueError(f"the shares add up to {total:g} ({terms}); at most 1 is allowed")


@dataclass(frozen=True, slots=True)
class FaultMix:
    """Shares of requests the simulator answers with a fault instead of normally.

    Every request to a vendor route (``/gameye``, ``/8bitedge``, ``/playwave``)
    that :meth:`VendorSimulator.fail_all` and the scripts leave alone draws one
    number ``u`` in [0, 1) and falls into one band, in this order::

        [0, server_error)                        5xx   in the vendor's envelope
        [.., + rate_limited)                     429   with Retry-After
        [.., + slow)                             slow  normal answer after slow_seconds
        [.., + tail)                             tail  normal answer after a heavy-tailed wait
        [.., + capacity[region])                 420   Gameye requests for that region only
        [.., 1)                                  normal

    Other routes (``/ping``) are never faulted. A request outside the 420 band's
    region (another vendor, another region, no region) is answered normally
    when it falls into that band, so the shares of 5xx, 429 and slow answers
    are the same for every request. The region of a request is its JSON
    ``location`` field, else its ``X-Region`` header, else its ``region``
    query parameter (as for :meth:`Reply.when`).

    Attributes:
        server_error: Share answered with ``server_error_status``.
        server_error_status: Status of those answers, 500 to 599 (503 by default).
        rate_limited: Share answered with 429.
        retry_after: ``Retry-After`` of the 429s in seconds (written ``"1.5"``,
            ``"2"``); ``None`` sends none.
        slow: Share answered normally after ``slow_seconds`` (a wait the
            simulator cuts short when it stops).
        slow_seconds: The wait of slow answers.
        tail: Share answered normally after a wait drawn from a heavy tail
            (:meth:`tail_wait`): at least ``tail_seconds``, more than ``k``
            times that with probability ``1/k**2``, at most ``TAIL_CAP`` (10)
            times that. Unlike ``slow``, whose answers all wait alike, this is
            the latency of a server that is fast except for a few answers that
            take much longer, each drawn on its own: two copies of one request
            are both slow only ``tail**2`` of the time.
        tail_seconds: The least wait of tail answers (0.2 s by default).
        capacity: Share of Gameye requests for a region answered with 420
            (``{"eu-west": 0.5}``); regions are case-sensitive, as the vendor's are.

    Each share is in [0, 1]; ``server_error + rate_limited + slow + tail`` plus the
    largest ``capacity`` share is at most 1 (those are the bands one request
    can fall into). All zero, the default, is a mix that faults nothing.

    Raises:
        TypeError: A value has the wrong type.
        ValueError: A share outside [0, 1], shares adding up to more than 1,
            a status outside 500-599, negative or infinite seconds, or an empty
            region name.
    """

    server_error: float = 0.0
    server_error_status: int = 503
    rate_limited: float = 0.0
    retry_after: float | None = 1.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    capacity: Mapping[str, float] = field(default_factory=dict)
    tail: float = 0.0
    tail_seconds: float = 0.2

    def __post_init__(self) -> None:
        """Validate every value; keep ``capacity`` as a read-only copy."""
        set_ = object.__setattr__
        set_(self, "server_error", check_share(self.server_error, "server_error"))
        set_(self, "rate_limited", check_share(self.rate_limited, "rate_limited"))
        set_(self, "slow", check_share(self.slow, "slow"))
        set_(self, "tail", check_share(self.tail, "tail"))
        status = self.server_error_status
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"server_error_status must be an int, not {type(status).__name__}")
        if not 500 <= status <= 599:
            raise ValueError(f"server_error_status must be between 500 and 599, got {status}")
        if self.retry_after is not None:
            set_(self, "retry_after", check_seconds(self.retry_after, "retry_after"))
        set_(self, "slow_seconds", check_seconds(self.slow_seconds, "slow_seconds"))
        set_(self, "tail_seconds", check_seconds(self.tail_seconds, "tail_seconds"))
        if not isinstance(self.capacity, Mapping):
            raise TypeError(
                f"capacity must map regions to shares, not {type(self.capacity).__name__}"
            )
        capacity = {
            check_region(region, "capacity"): check_share(share, f"capacity[{region!r}]")
            for region, share in self.capacity.items()
        }
        set_(self, "capacity", MappingProxyType(capacity))
        check_total(self.bands())

    def __hash__(self) -> int:
        """Hash the values, ``capacity`` as its sorted items."""
        return hash(
            (
                self.server_error,
                self.server_error_status,
                self.rate_limited,
                self.retry_after,
                self.slow,
                self.slow_seconds,
                tuple(sorted(self.capacity.items())),
                self.tail,
                self.tail_seconds,
            )
        )

    def bands(self) -> list[tuple[str, float]]:
        """The shares one request can fall into, by field name, with the largest 420 share.

        Returns:
            ``(name, share)`` pairs, the 420 one named ``capacity[region]``.
        """
        parts: list[tuple[str, float]] = [
            ("server_error", self.server_error),
            ("rate_limited", self.rate_limited),
            ("slow", self.slow),
            ("tail", self.tail),
        ]
        if self.capacity:
            region, share = max(self.capacity.items(), key=lambda item: item[1])
            parts.append((f"capacity[{region!r}]", share))
        return parts

    @property
    def faults_nothing(self) -> bool:
        """Whether every share is zero."""
        return not any(share for _, share in self.bands())

    def pick(self, draw: float, vendor: str | None, region: str | None) -> Fault:
        """Choose the fault of one request.

        Args:
            draw: A number in [0, 1), ``random.Random.random()``.
            vendor: Vendor whose route the request hit (``None``: another route).
            region: Region the request is for, if any.

        Returns:
            The fault.
        """
        if vendor is None:
            return "normal"
        edge = self.server_error
        if draw < edge:
            return "5xx"
        edge += self.rate_limited
        if draw < edge:
            return "429"
        edge += self.slow
        if draw < edge:
            return "slow"
        edge += self.tail
        if draw < edge:
            return "tail"
        if vendor == "gameye" and region is not None:
            share = self.capacity.get(region)
            if share and draw < edge + share:
                return "420"
        return "normal"

    def tail_wait(self, draw: float) -> float:
        """The wait of one tail answer: a Pareto draw from ``tail_seconds``, capped.

        ``tail_seconds * (1 - draw) ** (-1 / TAIL_SHAPE)``, at most
        ``TAIL_CAP * tail_seconds``: half the waits are under 1.41 times
        ``tail_seconds``, one in 20 over 4.47 times, one in 100 at the cap.

        Args:
            draw: A number in [0, 1), a second ``random.Random.random()`` of
                the request (not the one that chose its band).

        Returns:
            The wait in seconds.
        """
        factor: float = (1.0 - draw) ** (-1.0 / TAIL_SHAPE)
        return self.tail_seconds * min(TAIL_CAP, factor)

    def reply(self, fault: Fault, draw: float = 0.0) -> Reply | None:
        """The scripted reply that carries out a fault.

        Args:
            fault: The fault.
            draw: For ``"tail"``, the draw of its wait (:meth:`tail_wait`);
                ignored otherwise.

        Returns:
            The reply, ``None`` for ``"normal"``.
        """
        if fault == "5xx":
            return Reply.error(self.server_error_status)
        if fault == "429":
            retry_after = None if self.retry_after is None else seconds_text(self.retry_after)
            return Reply.rate_limited(retry_after=retry_after)
        if fault == "slow":
            return Reply.slow(self.slow_seconds)
        if fault == "tail":
            return Reply.slow(self.tail_wait(draw))
        if fault == "420":
            return Reply.capacity()
        return None

    def describe(self) -> str:
        """A one-line summary (``5xx 10% (503), 429 5% (Retry-After 1.5), ...``).

        Returns:
            The summary, ``"no faults"`` when every share is zero.
        """
        parts = []
        if self.server_error:
            parts.append(f"5xx {_percent(self.server_error)} ({self.server_error_status})")
        if self.rate_limited:
            wait = (
                "no Retry-After"
                if self.retry_after is None
                else f"Retry-After {seconds_text(self.retry_after)}"
            )
            parts.append(f"429 {_percent(self.rate_limited)} ({wait})")
        for region, share in self.capacity.items():
            if share:
                parts.append(f"420 {region} {_percent(share)}")
        if self.slow:
            parts.append(f"slow {_percent(self.slow)} ({seconds_text(self.slow_seconds)} s)")
        if self.tail:
            parts.append(
                f"tail {_percent(self.tail)} ({seconds_text(self.tail_seconds)} s"
                f" to {seconds_text(TAIL_CAP * self.tail_seconds)} s)"
            )
        return ", ".join(parts) or "no faults"
