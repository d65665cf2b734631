"""The checks every configuration class runs when it is built, worded once.

``Policy``, ``CircuitBreaker``, ``RateLimit``, ``RetryBudget``, the region
locators and the stores check each value here, so that a value is refused the
same way wherever it appears, and a value that is accepted works in a call:

* a value of the wrong type is a ``TypeError``, one of the right type out of
  range a ``ValueError``; the message starts with the field's name
  (``"retry_non_idempotent must be a bool, not str"``);
* a bool is a real ``bool`` (``"false"``, ``0`` and ``1`` are refused);
* an int is a real int (``True`` is not ``1``), at most ``10**9``;
* a number is an int or a float (not a bool), finite and within its range,
  returned as a ``float``; an int too large for a float (``10**400``) is a
  ``ValueError``, never an ``OverflowError``;
* text is a ``str`` that can be encoded as UTF-8 (a lone surrogate such as
  ``"\\udcff"`` cannot be sent to Redis or put in a request);
* where an object is expected, a class is refused with a message asking for
  an instance (``store=MemoryStore`` rather than ``store=MemoryStore()``).
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, TypeVar

__all__ = [
    "MAX_COUNT",
    "MAX_SECONDS",
    "boolean",
    "callable_or_none",
    "choice",
    "instance",
    "integer",
    "kind",
    "methods",
    "number",
    "shown",
    "text",
]

#: The longest duration, and the largest count, a setting may name (about 31
#: years in seconds): ``time.sleep`` and ``threading`` refuse waits past
#: ``threading.TIMEOUT_MAX`` with ``OverflowError``, and Redis expiries in
#: milliseconds must stay well inside a 64-bit integer.
MAX_SECONDS = 1e9

#: The largest count (attempts, calls, probes) a setting may name.
MAX_COUNT = 10**9

_T = TypeVar("_T")


def kind(value: object) -> str:
    """How a refused value is described: its type's name, or ``the class X``."""
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    return type(value).__name__


def shown(value: object) -> str:
    """``repr(value)``, short; an int too long to print in full is described."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} int of about {digits} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def boolean(name: str, value: object) -> bool:
    """``value`` when it is a ``bool``; anything else is a ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {kind(value)}")
    return value


def integer(name: str, value: object, *, low: int, high: int = MAX_COUNT) -> int:
    """``value`` as an ``int`` within ``[low, high]``; a bool is not an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {kind(value)}")
    result = int(value)
    if not low <= result <= high:
        raise ValueError(f"{name} must be an int from {low} to {high:_}, got {shown(value)}")
    return result


def number(
    name: str,
    value: object,
    *,
    low: float = 0.0,
    high: float = MAX_SECONDS,
    low_open: bool = False,
    unit: str = "",
) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low, high]`` if ``low_open``).

    Args:
        name: the field, for the message.
        value: an int or a float (any real number but a bool).
        low: the least value allowed.
        high: the largest value allowed.
        low_open: ``low`` itself is refused (``> 0`` rather than ``>= 0``).
        unit: said after the bounds in the message (``" seconds"``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {kind(value)}")
    try:
        result = float(value)
    except (OverflowError, ValueError):  # an int past 1.8e308: refused below
        result = math.inf
    too_low = result <= low if low_open else result < low
    if not math.isfinite(result) or too_low or result > high:
        bounds = f"> {low:g}" if low_open else f">= {low:g}"
        if high < sys.float_info.max:
            bounds += f" and <= {high:g}"
        raise ValueError(f"{name} must be a finite number {bounds}{unit}, got {shown(value)}")
    return result


def text(name: str, value: object, *, empty: bool = False) -> str:
    """``value`` when it is a ``str`` that UTF-8 can encode (non-empty unless ``empty``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {kind(value)}")
    if not value and not empty:
        raise ValueError(f"{name} must be a non-empty str")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{name} must be encodable as UTF-8 (no lone surrogates), got {shown(value)}"
        ) from None
    return value


def choice(name: str, value: object, choices: frozenset[str]) -> str:
    """``value`` when it is one of ``choices``; anything else is a ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(sorted(choices))}; got {shown(value)}")
    return value


def instance(name: str, value: _T, expected: type[Any] | tuple[type[Any], ...], what: str) -> _T:
    """``value`` when it is an instance of ``expected`` (a runtime-checkable protocol works).

    A class is refused even when it has the protocol's attributes (they are
    unbound functions there): the message asks for an instance.

    Args:
        name: the field, for the message.
        value: the value.
        expected: the class, classes or runtime-checkable protocol.
        what: how the message names what is expected (``"a resilience.RateLimit"``).
    """
    if isinstance(value, type):
        raise TypeError(
            f"{name} must be {what}, not {kind(value)}: pass an instance, {value.__name__}(...)"
        )
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be {what}, not {kind(value)}")
    return value


def callable_or_none(name: str, value: _T) -> _T:
    """``value`` when it is ``None`` or callable (a class is callable, and accepted)."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, not {kind(value)}")
    return value


def methods(name: str, value: object, names: tuple[str, ...], what: str) -> None:
    """Each of ``names`` on ``value`` is callable (a protocol check sees only that they exist)."""
    for method in names:
        found = getattr(value, method, None)
        if found is None:
            raise TypeError(f"{name} must be {what}, not {kind(value)}")
        if not callable(found):
            raise TypeError(f"{name} must be {what}: its {method} is not callable")
