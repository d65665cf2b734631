"""classify(): the generic rule, which vendor answers, pluggable detectors, bad input."""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from resilience import Category, Classification, Detector, classify, register_detector
from resilience.core.response import MAX_BODY, ResponseView
from resilience.detectors import _registry, registered_detectors, unregister_detector
from tests._responses import LIBRARIES, Respond, responder

URL = "https://api.example.com/v1/things"
GAMEYE_BODY = {
    "statusCode": 403,
    "code": "QUOTA_EXCEEDED",
    "message": "Runtime quota exhausted.",
    "identifier": "trace-1",
    "path": "/session",
    "timestamp": "2026-03-05T12:00:00Z",
}


@pytest.fixture(params=LIBRARIES)
def respond(request: pytest.FixtureRequest) -> Respond:
    """Build a finished response of the parametrised library."""
    return responder(request.param, url=URL)


# -- the generic rule ------------------------------------------------------------

GENERIC_ROWS = [
    (400, Category.INVALID_REQUEST, False),
    (401, Category.UNAUTHORIZED, False),
    (402, Category.CLIENT_ERROR, False),
    (403, Category.FORBIDDEN, False),
    (404, Category.NOT_FOUND, False),
    (405, Category.CLIENT_ERROR, False),
    (408, Category.CLIENT_ERROR, False),
    (409, Category.CONFLICT_PENDING, True),
    (410, Category.CLIENT_ERROR, False),
    (418, Category.CLIENT_ERROR, False),
    (420, Category.CAPACITY, True),
    (422, Category.INVALID_REQUEST, False),
    (429, Category.RATE_LIMITED, True),
    (451, Category.CLIENT_ERROR, False),
    (500, Category.TRANSIENT, True),
    (501, Category.NOT_IMPLEMENTED, False),
    (502, Category.TRANSIENT, True),
    (503, Category.TRANSIENT, True),
    (504, Category.TRANSIENT, True),
    (507, Category.TRANSIENT, True),
    (599, Category.TRANSIENT, True),
]


@pytest.mark.parametrize(("status", "category", "retryable"), GENERIC_ROWS)
def test_generic_rule_classifies_by_status(
    respond: Respond, status: int, category: Category, retryable: bool
) -> None:
    c = classify(respond(status, body=b"something went wrong"))
    assert (c.vendor, c.category, c.status, c.retryable) == (
        "generic",
        category,
        status,
        retryable,
    )
    assert (c.code, c.message, dict(c.details)) == (None, None, {})


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_generic_2xx_and_3xx_are_ok(respond: Respond, status: int) -> None:
    c = classify(respond(status, body=b""))
    assert (c.vendor, c.category, c.retryable) == ("generic", Category.OK, False)


def test_generic_4xx_other_than_409_420_429_are_not_retryable(respond: Respond) -> None:
    retried = {s for s in range(400, 500) if classify(respond(s, body=b"")).retryable}
    assert retried == {409, 420, 429}


def test_generic_5xx_other_than_501_are_retryable(respond: Respond) -> None:
    final = {s for s in range(500, 600) if not classify(respond(s, body=b"")).retryable}
    assert final == {501}


def test_generic_error_x_request_id_is_the_trace_id(respond: Respond) -> None:
    c = classify(respond(502, body=b"", headers={"X-Request-Id": "req-42"}))
    assert c.trace_id == "req-42"


def test_generic_success_x_request_id_is_the_trace_id(respond: Respond) -> None:
    c = classify(respond(200, body=b"{}", headers={"x-request-id": "req-43"}))
    assert c.trace_id == "req-43"


def test_generic_reads_code_and_message_of_a_flat_body(respond: Respond) -> None:
    c = classify(respond(400, {"code": "E_BAD", "message": "bad thing"}))
    assert (c.vendor, c.code, c.message) == ("generic", "E_BAD", "bad thing")


def test_generic_reads_an_error_string_as_the_message(respond: Respond) -> None:
    c = classify(respond(400, {"error": "bad thing"}))
    assert (c.vendor, c.code, c.message) == ("generic", None, "bad thing")


def test_generic_category_follows_the_status_not_the_body(respond: Respond) -> None:
    c = classify(respond(503, {"code": "NOT_FOUND", "message": "x"}))
    assert c.category is Category.TRANSIENT


def test_generic_retry_after_is_read(respond: Respond) -> None:
    c = classify(respond(503, body=b"", headers={"Retry-After": "0.05"}))
    assert c.retry_after == 0.05


def test_generic_unusable_retry_after_is_none(respond: Respond) -> None:
    c = classify(respond(429, body=b"", headers={"Retry-After": "-3"}))
    assert c.retry_after is None
    assert c.category is Category.RATE_LIMITED


def test_classification_is_frozen(respond: Respond) -> None:
    c = classify(respond(500, body=b""))
    with pytest.raises(AttributeError):
        c.status = 200  # type: ignore[misc]


# -- which vendor answers ----------------------------------------------------------


def test_vendor_argument_beats_vendor_hosts_and_body(respond: Respond) -> None:
    response = respond(403, GAMEYE_BODY, url="https://api.gameye.io/session")
    c = classify(response, vendor="8bitedge", vendor_hosts={"api.gameye.io": "gameye"})
    assert (c.vendor, c.category) == ("8bitedge", Category.FORBIDDEN)


def test_vendor_hosts_beats_body_shape(respond: Respond) -> None:
    response = respond(403, GAMEYE_BODY, url="https://edge.example.net/v1/x")
    c = classify(response, vendor_hosts={"edge.example.net": "8bitedge"})
    assert (c.vendor, c.category) == ("8bitedge", Category.FORBIDDEN)


def test_vendor_hosts_matches_the_hostname_without_port(respond: Respond) -> None:
    response = respond(403, body=b"", url="https://api.gameye.io:8443/session")
    c = classify(response, vendor_hosts={"api.gameye.io": "gameye"})
    assert (c.vendor, c.category) == ("gameye", Category.QUOTA_EXHAUSTED)


def test_vendor_hosts_with_a_port_in_the_key_does_not_match(respond: Respond) -> None:
    """The mapping's keys are host names; ``host:port`` names no host."""
    response = respond(403, body=b"", url="https://api.gameye.io:8443/session")
    c = classify(response, vendor_hosts={"api.gameye.io:8443": "gameye"})
    assert c.vendor == "generic"


def test_vendor_hosts_is_case_insensitive(respond: Respond) -> None:
    response = respond(403, body=b"", url="https://api.gameye.io/session")
    c = classify(response, vendor_hosts={"API.Gameye.IO": "gameye"})
    assert c.vendor == "gameye"


def test_unmapped_host_falls_back_to_body_shape(respond: Respond) -> None:
    response = respond(403, GAMEYE_BODY, url="https://elsewhere.example/session")
    c = classify(response, vendor_hosts={"api.gameye.io": "8bitedge"})
    assert (c.vendor, c.category) == ("gameye", Category.QUOTA_EXHAUSTED)


@pytest.mark.parametrize(
    ("payload", "vendor"),
    [
        (GAMEYE_BODY, "gameye"),
        ({"success": False, "error": {"code": "SESSION_ENDED", "message": "x"}}, "playwave"),
        ({"error": {"code": "quota_exceeded", "message": "x"}}, "8bitedge"),
        ({"code": "quota_exceeded", "message": "x"}, "generic"),
        ({"error": {"message": "no code"}}, "generic"),
    ],
)
def test_body_shape_picks_the_vendor(respond: Respond, payload: Any, vendor: str) -> None:
    assert classify(respond(410, payload)).vendor == vendor


OPENAI_429 = {
    "error": {
        "message": "Rate limit reached for requests.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


def test_openai_style_429_from_an_unmapped_host_is_generic(respond: Respond) -> None:
    """Its code is one 8bitedge documents, but ``type`` and ``param`` are not 8bitedge's."""
    c = classify(respond(429, OPENAI_429, url="https://api.openai.com/v1/chat/completions"))
    assert (c.vendor, c.category, c.code, c.message) == (
        "generic",
        Category.RATE_LIMITED,
        "rate_limit_exceeded",
        "Rate limit reached for requests.",
    )


@pytest.mark.parametrize(
    "pin",
    [{"vendor_hosts": {"api.openai.com": "8bitedge"}}, {"vendor": "8bitedge"}],
    ids=["vendor_hosts", "vendor"],
)
def test_openai_style_429_from_a_host_pinned_to_eightbitedge_is_eightbitedge(
    respond: Respond, pin: dict[str, Any]
) -> None:
    response = respond(429, OPENAI_429, url="https://api.openai.com/v1/chat/completions")
    c = classify(response, **pin)
    assert (c.vendor, c.category, c.code) == (
        "8bitedge",
        Category.RATE_LIMITED,
        "rate_limit_exceeded",
    )


def test_explicit_generic_vendor_ignores_the_body_shape(respond: Respond) -> None:
    c = classify(respond(403, GAMEYE_BODY), vendor="generic")
    assert (c.vendor, c.category) == ("generic", Category.FORBIDDEN)


def test_unknown_vendor_name_is_a_value_error(respond: Respond) -> None:
    with pytest.raises(ValueError, match="nope"):
        classify(respond(500, body=b""), vendor="nope")


def test_unknown_vendor_in_vendor_hosts_is_a_value_error(respond: Respond) -> None:
    with pytest.raises(ValueError, match="nope"):
        classify(respond(500, body=b""), vendor_hosts={"api.example.com": "nope"})


# -- pluggable detectors -------------------------------------------------------------


class AcmeDetector:
    """A third-party vendor: ``{"acme": {"kind": ..., "ref": ...}}``."""

    name = "acme"
    success_body = False

    def matches(self, payload: Any) -> bool:
        return isinstance(payload, dict) and isinstance(payload.get("acme"), dict)

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        acme = payload.get("acme", {}) if isinstance(payload, dict) else {}
        category = Category.CAPACITY if acme.get("kind") == "full" else Category.CLIENT_ERROR
        return Classification.of(
            self.name,
            category,
            view.status,
            code=acme.get("kind"),
            trace_id=acme.get("ref"),
            retry_after=retry_after,
        )


class ExplodingDetector:
    """A detector with bugs: it claims every body and fails to classify it."""

    name = "exploding"
    success_body = False

    def matches(self, payload: Any) -> bool:
        return True

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        raise RuntimeError("detector bug")


class BrokenMatcher:
    name = "broken-matcher"
    success_body = False

    def matches(self, payload: Any) -> bool:
        raise KeyError("detector bug")

    def classify(
        self, view: ResponseView, payload: Any, retry_after: float | None
    ) -> Classification:
        raise AssertionError("never asked")


ACME_BODY = {"acme": {"kind": "full", "ref": "acme-7"}}


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered during the test, unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_detector(name)


def test_builtin_detectors_are_in_the_registered_chain() -> None:
    names = [d.name for d in registered_detectors()]
    assert {"gameye", "8bitedge", "playwave"} <= set(names)
    assert "generic" not in names


def test_builtin_detectors_satisfy_the_detector_protocol() -> None:
    assert all(isinstance(d, Detector) for d in registered_detectors())


def test_registered_detector_is_recognised_by_body_shape(
    respond: Respond, registered: list[str]
) -> None:
    registered.append(register_detector(AcmeDetector()).name)
    c = classify(respond(503, ACME_BODY, headers={"Retry-After": "4"}))
    assert (c.vendor, c.category, c.code, c.trace_id, c.retry_after, c.retryable) == (
        "acme",
        Category.CAPACITY,
        "full",
        "acme-7",
        4.0,
        True,
    )


def test_registered_detector_can_be_named_as_vendor(
    respond: Respond, registered: list[str]
) -> None:
    registered.append(register_detector(AcmeDetector()).name)
    c = classify(respond(400, body=b"not json"), vendor="acme")
    assert (c.vendor, c.category) == ("acme", Category.CLIENT_ERROR)


def test_registered_detector_can_be_named_in_vendor_hosts(
    respond: Respond, registered: list[str]
) -> None:
    registered.append(register_detector(AcmeDetector()).name)
    c = classify(respond(400, body=b""), vendor_hosts={"api.example.com": "acme"})
    assert c.vendor == "acme"


def test_register_detector_instantiates_a_class(registered: list[str]) -> None:
    detector = register_detector(AcmeDetector)
    registered.append(detector.name)
    assert isinstance(detector, AcmeDetector)


def test_register_detector_refuses_a_taken_name(registered: list[str]) -> None:
    registered.append(register_detector(AcmeDetector()).name)
    with pytest.raises(ValueError, match="acme"):
        register_detector(AcmeDetector())


def test_register_detector_replace_swaps_the_detector(
    respond: Respond, registered: list[str]
) -> None:
    class AcmeV2(AcmeDetector):
        def classify(
            self, view: ResponseView, payload: Any, retry_after: float | None
        ) -> Classification:
            return Classification.of(self.name, Category.NOT_FOUND, view.status)

    registered.append(register_detector(AcmeDetector()).name)
    register_detector(AcmeV2(), replace=True)
    assert [d.name for d in registered_detectors()].count("acme") == 1
    assert classify(respond(503, ACME_BODY)).category is Category.NOT_FOUND


def test_register_detector_refuses_an_object_without_the_protocol() -> None:
    with pytest.raises(TypeError):
        register_detector(object())


def test_register_detector_refuses_an_empty_name() -> None:
    class Nameless(AcmeDetector):
        name = ""

    with pytest.raises(ValueError, match="name"):
        register_detector(Nameless())


def test_a_failing_detector_falls_back_to_the_generic_rule(
    respond: Respond, registered: list[str]
) -> None:
    registered.append(register_detector(ExplodingDetector()).name)
    c = classify(respond(420, {"anything": 1}), vendor="exploding")
    assert (c.vendor, c.category) == ("generic", Category.CAPACITY)


def test_a_detector_whose_matches_raises_is_skipped(
    respond: Respond, registered: list[str]
) -> None:
    registered.append(register_detector(BrokenMatcher()).name)
    c = classify(respond(403, GAMEYE_BODY))
    assert c.vendor == "gameye"


def test_detectors_argument_replaces_the_chain(respond: Respond) -> None:
    c = classify(respond(403, GAMEYE_BODY), detectors=[AcmeDetector()])
    assert c.vendor == "generic"
    assert classify(respond(503, ACME_BODY), detectors=[AcmeDetector()]).vendor == "acme"


def test_vendor_outside_a_replaced_chain_is_a_value_error(respond: Respond) -> None:
    with pytest.raises(ValueError, match="gameye"):
        classify(respond(403, GAMEYE_BODY), vendor="gameye", detectors=[AcmeDetector()])


def test_detector_with_success_body_reads_2xx_when_pinned(respond: Respond) -> None:
    class Business(AcmeDetector):
        success_body = True

        def classify(
            self, view: ResponseView, payload: Any, retry_after: float | None
        ) -> Classification:
            return Classification.of(self.name, Category.BUSINESS_REJECTED, view.status)

    detector = Business()
    c = classify(respond(200, {"verdict": "no"}), vendor="acme", detectors=[detector])
    assert c.category is Category.BUSINESS_REJECTED


# -- the entry-point group ----------------------------------------------------------

PLUGIN_MODULE = """
from resilience import Category, Classification


class PluginDetector:
    name = "plugged"
    success_body = False

    def matches(self, payload):
        return isinstance(payload, dict) and "plugged" in payload

    def classify(self, view, payload, retry_after):
        return Classification.of(self.name, Category.QUOTA_EXHAUSTED, view.status)


class Impostor(PluginDetector):
    name = "gameye"
"""

PLUGIN_ENTRY_POINTS = """
[resilience.detectors]
plugged = plugged_detector:PluginDetector
missing = plugged_detector:DoesNotExist
gameye = plugged_detector:Impostor
"""


@pytest.fixture
def plugin_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution advertising detectors, and a registry that has not loaded any yet."""
    (tmp_path / "plugged_detector.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    info = tmp_path / "plugged_detector-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugged-detector\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(PLUGIN_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "_chain", _registry._chain)
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    yield
    sys.modules.pop("plugged_detector", None)


@pytest.mark.usefixtures("plugin_installed")
def test_entry_point_detector_is_loaded_on_first_use(respond: Respond) -> None:
    c = classify(respond(400, {"plugged": True}))
    assert (c.vendor, c.category) == ("plugged", Category.QUOTA_EXHAUSTED)


@pytest.mark.usefixtures("plugin_installed")
def test_entry_point_that_fails_to_load_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="resilience"):
        names = [d.name for d in registered_detectors()]
    assert "missing" not in names
    assert "plugged" in names
    assert "missing" in caplog.text


@pytest.mark.usefixtures("plugin_installed")
def test_entry_point_cannot_take_a_builtin_name(respond: Respond) -> None:
    c = classify(respond(403, GAMEYE_BODY))
    assert (c.vendor, c.category) == ("gameye", Category.QUOTA_EXHAUSTED)
    assert [d.name for d in registered_detectors()].count("gameye") == 1


# -- bad input ---------------------------------------------------------------------

BAD_BODIES = {
    "empty": b"",
    "not-json": b"<html><body>502 Bad Gateway</body></html>",
    "truncated": b'{"statusCode": 403, "code": "QUOTA_EXCEEDED", "identifier": "abc',
    "non-utf8": b'{"error": {"code": "\xff\xfe\xfd", "message": "\x80"}}',
    "json-array": json.dumps([GAMEYE_BODY]).encode(),
    "json-string": b'"QUOTA_EXCEEDED"',
    "json-null": b"null",
    "nested-within-cap": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "nested-100k-deep": b"[" * 100_000 + b"]" * 100_000,
    "multi-megabyte": b'{"error": {"code": "x", "message": "' + b"a" * 3_000_000 + b'"}}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize(
    ("status", "category"),
    [(403, Category.FORBIDDEN), (420, Category.CAPACITY), (503, Category.TRANSIENT)],
)
def test_bad_body_is_classified_from_the_status_alone(
    respond: Respond, body: bytes, status: int, category: Category
) -> None:
    c = classify(respond(status, body=body))
    assert (c.vendor, c.category, c.code, c.message) == ("generic", category, None, None)


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("vendor", ["gameye", "8bitedge", "playwave"])
def test_bad_body_from_a_known_vendor_is_classified_from_the_status(
    respond: Respond, body: bytes, vendor: str
) -> None:
    c = classify(respond(420, body=body), vendor=vendor)
    assert (c.vendor, c.category, c.code) == (vendor, Category.CAPACITY, None)


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_2xx_body_from_playwave_is_ok(respond: Respond, body: bytes) -> None:
    c = classify(respond(200, body=body), vendor="playwave")
    assert c.category is Category.OK


def _padded(payload: Any, size: int) -> bytes:
    """``payload`` as JSON, padded with trailing whitespace to exactly ``size`` bytes."""
    raw = json.dumps(payload).encode()
    return raw + b" " * (size - len(raw))


def test_envelope_of_exactly_64_kib_is_parsed(respond: Respond) -> None:
    c = classify(respond(403, body=_padded(GAMEYE_BODY, MAX_BODY)))
    assert (c.vendor, c.category, c.code) == ("gameye", Category.QUOTA_EXHAUSTED, "QUOTA_EXCEEDED")


def test_envelope_padded_past_64_kib_is_not_parsed(respond: Respond) -> None:
    """A valid Gameye envelope one byte over the cap is classified by status only."""
    c = classify(respond(403, body=_padded(GAMEYE_BODY, MAX_BODY + 1)))
    assert (c.vendor, c.category, c.code, c.trace_id) == (
        "generic",
        Category.FORBIDDEN,
        None,
        None,
    )


def test_envelope_past_64_kib_from_a_pinned_vendor_is_not_parsed(respond: Respond) -> None:
    c = classify(respond(403, body=_padded(GAMEYE_BODY, MAX_BODY + 1)), vendor="gameye")
    assert (c.vendor, c.category, c.code, c.trace_id) == (
        "gameye",
        Category.QUOTA_EXHAUSTED,
        None,
        None,
    )


def test_classify_does_not_read_an_unread_httpx_body() -> None:
    response = httpx.Response(
        403,
        stream=httpx.ByteStream(json.dumps(GAMEYE_BODY).encode()),
        request=httpx.Request("POST", URL),
    )
    c = classify(response)
    assert (c.vendor, c.category) == ("generic", Category.FORBIDDEN)
    assert not response.is_stream_consumed


def test_classify_does_not_read_an_unread_requests_body() -> None:
    response = requests.Response()
    response.status_code = 403
    response.raw = io.BytesIO(json.dumps(GAMEYE_BODY).encode())
    response.request = requests.Request("POST", URL).prepare()
    c = classify(response)
    assert (c.vendor, c.category) == ("generic", Category.FORBIDDEN)
    assert response.raw.tell() == 0


def test_requests_response_without_request_is_classified() -> None:
    response = requests.Response()
    response.status_code = 409
    response._content = json.dumps(GAMEYE_BODY).encode()
    c = classify(response)
    assert (c.vendor, c.category) == ("gameye", Category.CONFLICT)


def test_httpx_response_without_request_is_classified() -> None:
    c = classify(httpx.Response(409, json=GAMEYE_BODY))
    assert (c.vendor, c.category) == ("gameye", Category.CONFLICT)


def test_unusable_headers_container_is_classified_from_the_status() -> None:
    response = requests.Response()
    response.status_code = 503
    response.headers = None  # type: ignore[assignment]
    response._content = b""
    assert classify(response).category is Category.TRANSIENT
