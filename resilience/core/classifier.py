"""Which vendor answered, and :func:`classify`.

Order of resolution: the ``vendor=`` argument, then the ``vendor_hosts``
mapping (host name without port -> vendor), then the shape of the error body,
then the generic rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView, parse_json, view_of
from resilience.core.retry_after import parse_retry_after
from resilience.detectors import Detector, GenericDetector, registered_detectors
from resilience.detectors.rules import GENERIC_RULES, VendorRules

__all__ = ["Classifier", "classify"]

_GENERIC = GenericDetector()


class Classifier:
    """Classifies responses for one configuration of vendor resolution.

    Args:
        vendor: pin every response to this vendor's detector (``"generic"``
            pins the generic rule).
        vendor_hosts: host name (without port) -> vendor name.
        detectors: use these detectors instead of the registered chain.
    """

    __slots__ = ("_chain", "_custom", "_hosts", "_pinned")

    def __init__(
        self,
        vendor: str | None = None,
        vendor_hosts: Mapping[str, str] | None = None,
        detectors: Iterable[Detector] | None = None,
    ) -> None:
        self._custom = tuple(detectors) if detectors is not None else None
        self._chain: tuple[Detector, ...] | None = self._custom
        self._pinned = self._named(vendor) if vendor is not None else None
        self._hosts: dict[str, Detector] = {
            host.lower(): self._named(name) for host, name in (vendor_hosts or {}).items()
        }

    def _detectors(self) -> tuple[Detector, ...]:
        return self._custom if self._custom is not None else registered_detectors()

    def _named(self, name: str) -> Detector:
        if name == _GENERIC.name:
            return _GENERIC
        for detector in self._detectors():
            if detector.name == name:
                return detector
        known = sorted({d.name for d in self._detectors()} | {_GENERIC.name})
        raise ValueError(f"vendor: no detector named {name!r} (known: {', '.join(known)})")

    def known_detector(self, host: str | None) -> Detector | None:
        """The detector fixed by ``vendor=`` or ``vendor_hosts`` for ``host``."""
        if self._pinned is not None:
            return self._pinned
        if host is not None and self._hosts:
            return self._hosts.get(host)
        return None

    def reads_success_body(self, host: str | None) -> bool:
        """Whether 2xx answers from ``host`` may carry business results."""
        detector = self.known_detector(host)
        return detector is not None and detector.success_body

    def rules(self, vendor: str) -> VendorRules:
        """The rules of the detector named ``vendor``."""
        return GENERIC_RULES

    def host_rules(self, host: str | None) -> VendorRules:
        """The rules of the detector fixed for ``host``."""
        detector = self.known_detector(host)
        return GENERIC_RULES if detector is None else VendorRules(detector.name)

    def success(self, status: int, host: str | None, headers: Any) -> Classification:
        """The classification of a 2xx/3xx answer whose body is not looked at."""
        rules = self.host_rules(host)
        return Classification(
            vendor=rules.vendor,
            category=Category.OK,
            status=status,
            trace_id=rules.success_trace_id(headers),
        )

    def classify_view(self, view: ResponseView, now: float) -> Classification:
        """Classify a response view; ``now`` is wall-clock time for HTTP-dates."""
        detector = self.known_detector(view.host)
        if view.status < 400 and (detector is None or not detector.success_body):
            return self.success(view.status, view.host, view.headers)
        payload = parse_json(view.body)
        if detector is None:
            detector = self._by_shape(payload)
        retry_after = parse_retry_after(view.headers.get("retry-after"), now)
        try:
            return detector.classify(view, payload, retry_after)
        except Exception:
            if detector is _GENERIC:
                raise
            return _GENERIC.classify(view, None, retry_after)

    def _by_shape(self, payload: Any) -> Detector:
        if isinstance(payload, dict):
            for detector in self._detectors():
                try:
                    if detector.matches(payload):
                        return detector
                except Exception:
                    continue
        return _GENERIC

    def classify(
        self, response: Any, *, body: bytes | None = None, now: float | None = None
    ) -> Classification:
        """Classify a ``requests`` or ``httpx`` response (never raises for a response)."""
        view = view_of(response, body=body)
        return self.classify_view(view, time.time() if now is None else now)


_DEFAULT: Classifier | None = None


def classify(
    response: Any,
    *,
    vendor: str | None = None,
    vendor_hosts: Mapping[str, str] | None = None,
    detectors: Iterable[Detector] | None = None,
) -> Classification:
    """Classify a ``requests.Response`` or ``httpx.Response``.

    Pure: never reads from the network. The body is looked at only when it is
    already in memory and at most 64 KiB; otherwise the status decides.

    Args:
        response: the response to classify.
        vendor: the vendor that answered (``"gameye"``, ``"8bitedge"``,
            ``"playwave"``, ``"generic"`` or a plugin's name); ``None`` to
            recognise it from ``vendor_hosts`` or the body.
        vendor_hosts: host name (without port) -> vendor name.
        detectors: use these detectors instead of the registered ones.

    Raises:
        ValueError: ``vendor`` names no known detector.
    """
    global _DEFAULT
    if vendor is None and vendor_hosts is None and detectors is None:
        if _DEFAULT is None:
            _DEFAULT = Classifier()
        classifier = _DEFAULT
    else:
        classifier = Classifier(vendor, vendor_hosts, detectors)
    return classifier.classify(response)
