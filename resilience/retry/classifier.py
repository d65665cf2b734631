"""Which vendor answered, and :func:`classify`.

Order of resolution: the ``vendor=`` argument, then the ``vendor_hosts``
mapping (host name without port -> vendor), then the shape of the error body,
then the generic rule.

A :class:`Classifier` also hands out each vendor's
:class:`~resilience.detectors.VendorRules` (:meth:`Classifier.rules`,
:meth:`Classifier.host_rules`), read once from the detectors' optional hooks,
so the retry flow asks a vendor's rules, never its name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from resilience.core.classification import Category, Classification
from resilience.core.response import ResponseView, parse_json, view_of
from resilience.core.retry_after import parse_retry_after
from resilience.detectors import (
    Detector,
    GenericDetector,
    VendorRules,
    registered_detectors,
    rules_of,
)

__all__ = ["Classifier", "classify"]

_log = logging.getLogger(__name__)
_GENERIC = GenericDetector()
_GENERIC_RULES = rules_of(_GENERIC)


class Classifier:
    """Classifies responses for one configuration of vendor resolution.

    Args:
        vendor: pin every response to this vendor's detector (``"generic"``
            pins the generic rule).
        vendor_hosts: host name (without port) -> vendor name.
        detectors: use these detectors instead of the registered chain.
    """

    __slots__ = (
        "_custom",
        "_custom_rules",
        "_fixed_rules",
        "_host_rules",
        "_hosts",
        "_pinned",
        "_pinned_rules",
        "_registry_rules",
    )

    def __init__(
        self,
        vendor: str | None = None,
        vendor_hosts: Mapping[str, str] | None = None,
        detectors: Iterable[Detector] | None = None,
    ) -> None:
        self._custom = tuple(detectors) if detectors is not None else None
        # Rules are read here, once per detector (or once per registry change),
        # never per call: rules() and host_rules() serve every attempt.
        read = _RulesReader()
        self._custom_rules: dict[str, VendorRules] | None = None
        if self._custom is not None:
            self._custom_rules = {}
            for detector in self._custom:
                self._custom_rules.setdefault(detector.name, read(detector))
        self._pinned = self._named(vendor) if vendor is not None else None
        self._pinned_rules = read(self._pinned) if self._pinned is not None else None
        self._hosts: dict[str, Detector] = {}
        for host, name in (vendor_hosts or {}).items():
            try:
                self._hosts[host.lower()] = self._named(name)
            except ValueError as exc:
                raise ValueError(f"vendor_hosts[{host!r}]: {exc}") from None
        self._host_rules = {host: read(d) for host, d in self._hosts.items()}
        self._fixed_rules: dict[str, VendorRules] = {}
        for rules in (self._pinned_rules, *self._host_rules.values()):
            if rules is not None:
                self._fixed_rules.setdefault(rules.vendor, rules)
        self._registry_rules: tuple[tuple[Detector, ...], dict[str, VendorRules]] = ((), {})

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

    def rules(self, vendor: str) -> VendorRules:
        """The rules of the detector named ``vendor`` (a :attr:`Classification.vendor`).

        ``"generic"``, or a name no detector of this classifier carries, gives
        the generic rules. A detector fixed by ``vendor=`` or ``vendor_hosts``
        answers for its name before the chain does.
        """
        rules = self._fixed_rules.get(vendor)
        if rules is not None:
            return rules
        if vendor == _GENERIC.name:
            return _GENERIC_RULES
        if self._custom_rules is not None:
            by_name = self._custom_rules
        else:
            chain = registered_detectors()
            seen, by_name = self._registry_rules
            if seen is not chain:  # the registry changed: read the new chain once
                by_name = _registry_rules_by_name(chain)
                self._registry_rules = (chain, by_name)
        return by_name.get(vendor, _GENERIC_RULES)

    def host_rules(self, host: str | None) -> VendorRules:
        """The rules of the detector fixed for ``host`` by ``vendor=`` or ``vendor_hosts``.

        The generic rules when neither names a vendor for ``host``: an unmapped
        host's requests follow no vendor's rules, whatever its answers look like.
        """
        if self._pinned_rules is not None:
            return self._pinned_rules
        if host is not None and self._host_rules:
            return self._host_rules.get(host, _GENERIC_RULES)
        return _GENERIC_RULES

    def reads_success_body(self, host: str | None) -> bool:
        """Whether 2xx answers from ``host`` may carry business results."""
        detector = self.known_detector(host)
        return detector is not None and detector.success_body

    def success(self, status: int, host: str | None, headers: Any) -> Classification:
        """The classification of a 2xx/3xx answer whose body is not looked at.

        Args:
            status: the HTTP status.
            host: the request's host name without port, when known.
            headers: the response headers: a case-insensitive mapping
                (``httpx.Headers``, requests' ``CaseInsensitiveDict``) or a dict
                with lower-case keys. The trace id is what the detector fixed
                for ``host`` reads from them (by default ``X-Request-Id``).
        """
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


class _RulesReader:
    """``rules_of`` that reads each detector object once (the generic one never)."""

    __slots__ = ("_read",)

    def __init__(self) -> None:
        self._read: list[tuple[Detector, VendorRules]] = [(_GENERIC, _GENERIC_RULES)]

    def __call__(self, detector: Detector) -> VendorRules:
        for known, rules in self._read:
            if known is detector:
                return rules
        rules = rules_of(detector)
        self._read.append((detector, rules))
        return rules


def _registry_rules_by_name(chain: tuple[Detector, ...]) -> dict[str, VendorRules]:
    """Name -> rules of the registered chain; the first detector of a name wins.

    Runs while serving a call: a detector whose hooks no longer read cleanly
    (they were checked when it was registered) gets the generic rules rather
    than failing the call.
    """
    by_name: dict[str, VendorRules] = {}
    for detector in chain:
        if detector.name in by_name:
            continue
        try:
            by_name[detector.name] = rules_of(detector)
        except (TypeError, ValueError):
            _log.warning("detector %r: bad hook; generic rules used", detector.name, exc_info=True)
            by_name[detector.name] = VendorRules(detector.name)
    return by_name


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
