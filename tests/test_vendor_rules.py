"""Vendor rules: a detector's optional hooks, their generic defaults, and the classifier's view."""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from requests.structures import CaseInsensitiveDict

from resilience import Category, Classification, classify, register_detector
from resilience.core.response import ResponseView
from resilience.detectors import (
    EightBitEdgeDetector,
    GameyeDetector,
    GenericDetector,
    PlaywaveDetector,
    VendorRules,
    detector_named,
    rules_of,
    unregister_detector,
)
from resilience.regions import Header, JsonField, RequestParts
from resilience.retry.classifier import Classifier
from tests._responses import LIBRARIES, Respond, responder

URL = "https://api.acme.example/v1/matches"
POST = RequestParts("POST", URL, (), b'{"ref": "m-1"}')


class LegacyDetector:
    """A plug-in written against the four-member protocol: no optional hook."""

    name = "legacy"
    success_body = False

    def matches(self, payload: Any) -> bool:
        return isinstance(payload, dict) and "legacy" in payload

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        return Classification.of(self.name, Category.QUOTA_EXHAUSTED, view.status)


class AcmeDetector(LegacyDetector):
    """A plug-in supplying every optional hook."""

    name = "acme"
    capacity_wait = (1.0, 3.0)
    region_locator = Header("X-Acme-Zone")
    conflict_after_unknown = Category.ALREADY_DONE

    def safe_to_repeat(self, request: RequestParts) -> bool:
        return request.header("x-acme-once") is not None

    def success_trace_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-acme-trace")


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered during the test, unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_detector(name)


def detector_with(**hooks: Any) -> Any:
    """A fresh legacy detector class carrying ``hooks``, instantiated."""
    return type("Hooked", (LegacyDetector,), {"name": "hooked", **hooks})()


# -- the four-member protocol still works -----------------------------------------------


def test_detector_without_hooks_gets_the_generic_rules() -> None:
    assert rules_of(LegacyDetector()) == VendorRules("legacy")


@pytest.mark.parametrize("library", LIBRARIES)
def test_detector_without_hooks_registers_and_classifies(
    library: str, registered: list[str]
) -> None:
    registered.append(register_detector(LegacyDetector()).name)
    c = classify(responder(library, url=URL)(400, {"legacy": True}))
    assert (c.vendor, c.category) == ("legacy", Category.QUOTA_EXHAUSTED)


def test_detector_without_hooks_is_not_safe_to_repeat() -> None:
    assert rules_of(LegacyDetector()).safe_to_repeat(POST) is False


def test_detector_without_hooks_takes_the_success_trace_id_from_x_request_id() -> None:
    assert rules_of(LegacyDetector()).success_trace_id({"x-request-id": "r-1"}) == "r-1"


# -- the generic rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    "detector",
    [GenericDetector(), EightBitEdgeDetector(), PlaywaveDetector()],
    ids=lambda d: d.name,
)
def test_detectors_without_vendor_rules_take_every_default(detector: Any) -> None:
    """8bitedge and Playwave document no retry rule the generic rule lacks."""
    assert rules_of(detector) == VendorRules(detector.name)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-request-id": "req-9"},
        CaseInsensitiveDict({"X-Request-Id": "req-9"}),
        httpx.Headers({"X-Request-ID": "req-9"}),
    ],
    ids=["lower-dict", "requests", "httpx"],
)
def test_generic_success_trace_id_is_the_x_request_id_header(headers: Any) -> None:
    assert rules_of(GenericDetector()).success_trace_id(headers) == "req-9"


def test_generic_success_trace_id_is_bounded_to_1024_characters() -> None:
    trace = rules_of(GenericDetector()).success_trace_id({"x-request-id": "r" * 5000})
    assert trace == "r" * 1024


@pytest.mark.parametrize(
    "headers", [{}, {"x-request-id": ""}, None], ids=["absent", "empty", "unreadable"]
)
def test_generic_success_trace_id_without_a_header_is_none(headers: Any) -> None:
    assert rules_of(GenericDetector()).success_trace_id(headers) is None


def test_generic_post_is_not_safe_to_repeat() -> None:
    """Gameye's POST /session rule is not everyone's."""
    request = RequestParts("POST", "https://api.example.com/session", (), b'{"id": "s-1"}')
    assert rules_of(GenericDetector()).safe_to_repeat(request) is False


# -- a plug-in supplies its own rules ------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("capacity_wait", (1.0, 3.0)),
        ("region_locator", Header("X-Acme-Zone")),
        ("conflict_after_unknown", Category.ALREADY_DONE),
    ],
)
def test_plugin_attribute_hook_is_its_rule(field: str, expected: Any) -> None:
    assert getattr(rules_of(AcmeDetector()), field) == expected


def test_plugin_safe_to_repeat_hook_is_asked() -> None:
    rules = rules_of(AcmeDetector())
    assert rules.safe_to_repeat(POST.with_header("X-Acme-Once", "1")) is True
    assert rules.safe_to_repeat(POST) is False


def test_plugin_success_trace_id_hook_is_asked() -> None:
    headers = {"x-acme-trace": "acme-1", "x-request-id": "r-1"}
    assert rules_of(AcmeDetector()).success_trace_id(headers) == "acme-1"


def test_plugin_success_trace_id_hook_may_answer_none() -> None:
    """``None`` is the vendor's answer ("no trace id"), not a failure."""
    assert rules_of(AcmeDetector()).success_trace_id({"x-request-id": "r-1"}) is None


def test_plugin_success_trace_id_is_bounded_to_1024_characters() -> None:
    detector = detector_with(success_trace_id=lambda self, headers: "t" * 2000)
    assert rules_of(detector).success_trace_id({}) == "t" * 1024


def test_plugin_capacity_wait_in_whole_seconds_becomes_floats() -> None:
    rules = rules_of(detector_with(capacity_wait=[1, 4]))
    assert rules.capacity_wait == (1.0, 4.0)
    assert all(type(v) is float for v in rules.capacity_wait)


def test_rules_name_the_detectors_vendor() -> None:
    assert rules_of(AcmeDetector()).vendor == "acme"


# -- a plug-in hook never breaks a call ------------------------------------------------------


def _raise(*args: Any) -> Any:
    raise RuntimeError("plug-in bug")


def test_safe_to_repeat_hook_that_raises_is_false() -> None:
    assert rules_of(detector_with(safe_to_repeat=_raise)).safe_to_repeat(POST) is False


def test_success_trace_id_hook_that_raises_gives_the_x_request_id() -> None:
    rules = rules_of(detector_with(success_trace_id=_raise))
    assert rules.success_trace_id({"x-request-id": "r-2"}) == "r-2"


@pytest.mark.parametrize("answer", ["yes", 1, None, [True]], ids=repr)
def test_safe_to_repeat_answer_other_than_true_is_false(answer: Any) -> None:
    """An unsure answer never makes a non-idempotent request repeatable."""
    rules = rules_of(detector_with(safe_to_repeat=lambda self, request: answer))
    assert rules.safe_to_repeat(POST) is False


@pytest.mark.parametrize("answer", [42, b"bytes", ["t"]], ids=repr)
def test_success_trace_id_answer_that_is_not_text_gives_the_x_request_id(answer: Any) -> None:
    rules = rules_of(detector_with(success_trace_id=lambda self, headers: answer))
    assert rules.success_trace_id({"x-request-id": "r-3"}) == "r-3"


@pytest.mark.parametrize("library", LIBRARIES)
def test_success_trace_id_hook_that_raises_does_not_break_classify(library: str) -> None:
    detector = detector_with(success_trace_id=_raise)
    response = responder(library, url=URL)(204, headers={"X-Request-Id": "r-4"})
    c = classify(response, vendor="hooked", detectors=[detector])
    assert (c.vendor, c.category, c.trace_id) == ("hooked", Category.OK, "r-4")


# -- a hook of the wrong type fails at registration ------------------------------------------


@pytest.mark.parametrize(
    ("hook", "value"),
    [
        ("capacity_wait", "2-5"),
        ("capacity_wait", 3.0),
        ("capacity_wait", (1.0,)),
        ("capacity_wait", (1.0, 2.0, 3.0)),
        ("capacity_wait", (1.0, "5")),
        ("capacity_wait", (True, 2.0)),
        ("region_locator", "location"),
        ("region_locator", JsonField),
        ("region_locator", object()),
        ("conflict_after_unknown", "already_done"),
        ("conflict_after_unknown", True),
        ("safe_to_repeat", True),
        ("success_trace_id", "x-request-id"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_hook_of_the_wrong_type_is_a_type_error_naming_detector_and_hook(
    hook: str, value: Any
) -> None:
    with pytest.raises(TypeError, match=rf"'hooked'.*'{hook}'"):
        rules_of(detector_with(**{hook: value}))


@pytest.mark.parametrize(
    "value",
    [(5.0, 2.0), (-1.0, 2.0), (math.nan, 1.0), (1.0, math.inf)],
    ids=["reversed", "negative", "nan", "infinite"],
)
def test_capacity_wait_out_of_range_is_a_value_error(value: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=r"'hooked'.*'capacity_wait'"):
        rules_of(detector_with(capacity_wait=value))


def test_hook_property_that_raises_is_a_type_error() -> None:
    class Unreadable(LegacyDetector):
        name = "unreadable"

        @property
        def capacity_wait(self) -> tuple[float, float]:
            raise LookupError("plug-in bug")

    with pytest.raises(TypeError, match=r"'unreadable'.*'capacity_wait'"):
        rules_of(Unreadable())


def test_register_detector_refuses_a_hook_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="capacity_wait"):
        register_detector(detector_with(capacity_wait="2-5"))
    assert detector_named("hooked") is None


def test_classifier_refuses_a_detector_with_a_hook_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="region_locator"):
        Classifier(detectors=[detector_with(region_locator="location")])


# -- rules are read once per detector, not per call ----------------------------------------


class Counted(LegacyDetector):
    """Counts how often its ``capacity_wait`` hook is read."""

    name = "counted"

    def __init__(self) -> None:
        self.reads = 0

    @property
    def capacity_wait(self) -> tuple[float, float]:
        self.reads += 1
        return (1.0, 2.0)


def test_classifier_reads_a_given_detectors_hooks_once() -> None:
    detector = Counted()
    classifier = Classifier(vendor_hosts={"api.acme.example": "counted"}, detectors=[detector])
    for _ in range(3):
        classifier.rules("counted")
        classifier.host_rules("api.acme.example")
        classifier.success(200, "api.acme.example", {})
    assert detector.reads == 1


def test_classifier_reads_a_registered_detectors_hooks_once(registered: list[str]) -> None:
    detector = Counted()
    registered.append(register_detector(detector).name)
    classifier = Classifier()
    classifier.rules("counted")
    read = detector.reads
    for _ in range(3):
        assert classifier.rules("counted").capacity_wait == (1.0, 2.0)
    assert detector.reads == read


def test_rules_of_does_not_share_rules_between_equal_detectors() -> None:
    """Equal is not the same: each instance is read for itself."""

    @dataclass
    class Configured(LegacyDetector):
        wait: float
        name = "configured"

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Configured)

        __hash__ = object.__hash__

        @property
        def capacity_wait(self) -> tuple[float, float]:
            return (self.wait, self.wait)

    assert rules_of(Configured(1.0)).capacity_wait == (1.0, 1.0)
    assert rules_of(Configured(2.0)).capacity_wait == (2.0, 2.0)


def test_rules_of_accepts_an_unhashable_detector() -> None:
    @dataclass
    class Unhashable(LegacyDetector):
        name = "unhashable"
        capacity_wait = (1.0, 2.0)

    assert rules_of(Unhashable()).capacity_wait == (1.0, 2.0)


def test_rules_of_does_not_keep_a_detector_alive() -> None:
    detector = AcmeDetector()
    rules_of(detector)
    ref = weakref.ref(detector)
    del detector
    gc.collect()
    assert ref() is None


# -- the classifier hands out rules --------------------------------------------------------


def test_classifier_rules_of_gameye_are_gameyes() -> None:
    assert Classifier().rules("gameye") == rules_of(detector_named("gameye"))


def test_classifier_rules_of_generic_are_the_generic_rules() -> None:
    assert Classifier().rules("generic") == VendorRules("generic")


def test_classifier_rules_of_an_unknown_vendor_are_the_generic_rules() -> None:
    assert Classifier().rules("nobody") == VendorRules("generic")


def test_classifier_rules_of_a_replaced_chain_come_from_that_chain() -> None:
    acme = AcmeDetector()
    classifier = Classifier(detectors=[acme])
    assert classifier.rules("acme") == rules_of(acme)
    assert classifier.rules("gameye") == VendorRules("generic")


def test_classifier_rules_see_a_detector_registered_after_it_was_built(
    registered: list[str],
) -> None:
    classifier = Classifier()
    assert classifier.rules("acme") == VendorRules("generic")
    registered.append(register_detector(AcmeDetector()).name)
    assert classifier.rules("acme").capacity_wait == (1.0, 3.0)


def test_classifier_host_rules_of_a_mapped_host_are_its_vendors() -> None:
    classifier = Classifier(vendor_hosts={"API.Gameye.IO": "gameye"})
    assert classifier.host_rules("api.gameye.io") == rules_of(detector_named("gameye"))


@pytest.mark.parametrize("host", ["api.gameye.io", "elsewhere.example", None])
def test_classifier_host_rules_without_a_mapping_are_generic(host: str | None) -> None:
    """A host no mapping names follows no vendor's rules, whatever its name."""
    classifier = Classifier(vendor_hosts={"edge.example": "8bitedge"})
    assert classifier.host_rules(host) == VendorRules("generic")


@pytest.mark.parametrize("host", ["api.gameye.io", "elsewhere.example", None])
def test_classifier_host_rules_of_a_pinned_vendor_hold_for_every_host(host: str | None) -> None:
    assert Classifier(vendor="gameye").host_rules(host).vendor == "gameye"


# -- the trace id of a success comes from the detector ---------------------------------------


def test_success_of_a_mapped_host_asks_its_detector_for_the_trace_id() -> None:
    classifier = Classifier(vendor_hosts={"api.acme.example": "acme"}, detectors=[AcmeDetector()])
    headers = httpx.Headers({"X-Acme-Trace": "acme-9", "X-Request-Id": "r-9"})
    c = classifier.success(200, "api.acme.example", headers)
    assert (c.vendor, c.category, c.status, c.trace_id) == ("acme", Category.OK, 200, "acme-9")


@pytest.mark.parametrize("host", ["elsewhere.example", None])
def test_success_of_an_unmapped_host_takes_the_x_request_id(host: str | None) -> None:
    classifier = Classifier(vendor_hosts={"api.acme.example": "acme"}, detectors=[AcmeDetector()])
    headers = CaseInsensitiveDict({"X-Acme-Trace": "acme-9", "X-Request-Id": "r-9"})
    c = classifier.success(204, host, headers)
    assert (c.vendor, c.trace_id) == ("generic", "r-9")


@pytest.mark.parametrize("library", LIBRARIES)
def test_classify_of_a_success_uses_the_detectors_trace_id(library: str) -> None:
    respond: Respond = responder(library, url=URL)
    response = respond(200, body=b"{}", headers={"X-Acme-Trace": "acme-7", "X-Request-Id": "r-7"})
    c = classify(response, vendor_hosts={"api.acme.example": "acme"}, detectors=[AcmeDetector()])
    assert (c.vendor, c.trace_id) == ("acme", "acme-7")


def test_gameye_rules_do_not_reach_an_unmapped_host() -> None:
    """Gameye's rules are Gameye's: a generic host's answer gets none of them."""
    rules = Classifier(vendor_hosts={"api.gameye.io": "gameye"}).host_rules("api.example.com")
    request = RequestParts("POST", "https://api.example.com/session", (), b'{"id": "s-1"}')
    assert (rules.capacity_wait, rules.region_locator, rules.conflict_after_unknown) == (
        None,
        None,
        None,
    )
    assert rules.safe_to_repeat(request) is False


def test_gameye_detector_rules_are_not_the_generic_ones() -> None:
    """Guards the tests above: Gameye does carry rules of its own."""
    assert rules_of(GameyeDetector()) != VendorRules("gameye")
