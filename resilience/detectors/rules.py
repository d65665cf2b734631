"""A vendor's rules for the retry flow, read from its detector's optional hooks.

The core asks :class:`VendorRules`, never a vendor name, what a vendor's
requests and answers mean beyond their classification: how long to wait before
retrying a region without capacity, where the region lives in a request, what a
conflict means after an attempt whose outcome is unknown, which POST/PATCH
requests carry their own idempotency, and where a success's trace id is.

A detector written against the four-member protocol (``name``,
``success_body``, ``matches``, ``classify``) has none of these hooks and gets
the generic rules; :func:`rules_of` validates the hooks a detector does have, so
a bad hook fails when the detector is registered, not during a call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resilience.core.classification import Category
from resilience.detectors._base import text_or_none
from resilience.regions import RegionLocator, RequestParts

__all__ = ["GENERIC_RULES", "VendorRules", "rules_of"]

_log = logging.getLogger(__name__)


def _header_trace_id(headers: Any) -> str | None:
    """The ``X-Request-Id`` header, the trace id most APIs send (bounded)."""
    try:
        return text_or_none(headers.get("x-request-id"))
    except Exception:  # a headers container that cannot be read has no trace id
        return None


@dataclass(frozen=True, slots=True)
class VendorRules:
    """What one vendor's detector says about retrying its calls.

    Built by :func:`rules_of` from a detector's optional hooks; every field left
    at its default is the generic rule, so ``VendorRules("acme")`` is a vendor
    with no rules of its own.

    Attributes:
        vendor: the detector's name.
        capacity_wait: ``(low, high)``: a same-region retry after a
            ``CAPACITY`` answer waits a uniform ``low..high`` seconds
            (``Retry-After`` wins if given). ``None``: the policy's backoff.
        region_locator: where the region lives in this vendor's requests, used
            when the policy names none. ``None``: the vendor has none.
        conflict_after_unknown: what a ``CONFLICT`` answering a retried
            POST/PATCH, whose earlier attempt ended with an unknown outcome,
            means (Gameye: ``ALREADY_DONE``, the lost attempt created the
            session). ``None``: it stays a ``CONFLICT``.
        repeat_hook: the detector's ``safe_to_repeat``; ``None``: no POST/PATCH
            of this vendor carries its own idempotency. Call
            :meth:`safe_to_repeat` rather than this.
        trace_hook: the detector's ``success_trace_id``; ``None``: the
            ``X-Request-Id`` header. Call :meth:`success_trace_id` rather than
            this.
    """

    vendor: str
    capacity_wait: tuple[float, float] | None = None
    region_locator: RegionLocator | None = None
    conflict_after_unknown: Category | None = None
    repeat_hook: Callable[[RequestParts], Any] | None = field(default=None, repr=False)
    trace_hook: Callable[[Any], Any] | None = field(default=None, repr=False)

    def safe_to_repeat(self, request: RequestParts) -> bool:
        """Whether the vendor says this POST/PATCH carries its own idempotency.

        ``False`` when the detector has no ``safe_to_repeat`` hook, or when the
        hook raises or answers anything but ``True``: an unsure answer must
        never make a non-idempotent request repeatable.
        """
        if self.repeat_hook is None:
            return False
        try:
            answer = self.repeat_hook(request)
        except Exception:
            _log.debug("%s: safe_to_repeat() raised; treated as False", self.vendor, exc_info=True)
            return False
        return answer is True

    def success_trace_id(self, headers: Mapping[str, str]) -> str | None:
        """The trace id of a 2xx/3xx answer whose body is not read.

        Args:
            headers: the response headers: a case-insensitive mapping
                (``httpx.Headers``, requests' ``CaseInsensitiveDict``) or a
                dict with lower-case keys.

        Returns:
            The detector's ``success_trace_id`` answer (at most 1024
            characters; an empty string is ``None``), or the ``X-Request-Id``
            header when the detector has no such hook, or its hook raises or
            answers something other than a string or ``None``.
        """
        if self.trace_hook is None:
            return _header_trace_id(headers)
        try:
            answer = self.trace_hook(headers)
        except Exception:
            _log.debug(
                "%s: success_trace_id() raised; X-Request-Id used", self.vendor, exc_info=True
            )
            return _header_trace_id(headers)
        if answer is None:
            return None
        if isinstance(answer, str):
            return text_or_none(answer)
        return _header_trace_id(headers)


def _hook(detector: object, name: str, hook: str) -> Any:
    try:
        return getattr(detector, hook, None)
    except Exception as exc:  # a property that raises
        raise TypeError(f"detector {name!r}: reading hook {hook!r} raised {exc!r}") from exc


def _capacity_wait(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    where = f"detector {name!r}: hook 'capacity_wait'"
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"{where} must be None or a (low, high) pair of seconds; got {value!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{where} must hold two numbers of seconds; got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)) or not 0.0 <= low <= high:
        raise ValueError(f"{where} needs finite 0 <= low <= high; got {value!r}")
    return (low, high)


def _region_locator(value: Any, name: str) -> RegionLocator | None:
    if value is None:
        return None
    if isinstance(value, type) or not isinstance(value, RegionLocator):
        raise TypeError(
            f"detector {name!r}: hook 'region_locator' must be None or a locator instance "
            f"with region_of() and with_region(); got {value!r}"
        )
    return value


def _conflict_after_unknown(value: Any, name: str) -> Category | None:
    if value is None or isinstance(value, Category):
        return value
    raise TypeError(
        f"detector {name!r}: hook 'conflict_after_unknown' must be None or a "
        f"resilience.Category; got {value!r}"
    )


def _method(value: Any, name: str, hook: str) -> Callable[..., Any] | None:
    if value is None:
        return None
    if not callable(value):
        raise TypeError(f"detector {name!r}: hook {hook!r} must be a method; got {value!r}")
    return value  # type: ignore[no-any-return]


def rules_of(detector: object) -> VendorRules:
    """The :class:`VendorRules` of ``detector``, read from its optional hooks.

    A hook the detector does not have takes the generic default (see
    :class:`~resilience.detectors.Detector`). Each call reads the hooks again;
    :func:`~resilience.detectors.register_detector` calls this to refuse a bad
    hook, and a classifier calls it once per detector and keeps the answer, so
    no call of a transport reads a hook attribute.

    Raises:
        TypeError: ``detector`` has no name, or a hook holds a value of the
            wrong type; the message names the detector and the hook.
        ValueError: ``capacity_wait`` is not ``0 <= low <= high`` (finite).
    """
    name = getattr(detector, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"a detector needs a non-empty string name; got {detector!r}")
    return VendorRules(
        vendor=name,
        capacity_wait=_capacity_wait(_hook(detector, name, "capacity_wait"), name),
        region_locator=_region_locator(_hook(detector, name, "region_locator"), name),
        conflict_after_unknown=_conflict_after_unknown(
            _hook(detector, name, "conflict_after_unknown"), name
        ),
        repeat_hook=_method(_hook(detector, name, "safe_to_repeat"), name, "safe_to_repeat"),
        trace_hook=_method(_hook(detector, name, "success_trace_id"), name, "success_trace_id"),
    )


#: The rules of a vendor that claims none: the generic rule's safe defaults.
GENERIC_RULES = VendorRules("generic")
