"""Playwave's error and business tables, row by row, for requests and httpx alike."""

from __future__ import annotations

from typing import Any

import pytest

from resilience import Category, classify
from tests._responses import LIBRARIES, Respond, responder

BASE = "https://api.playwave.example/playwave"
HEARTBEAT = f"{BASE}/heartbeat"
VERIFY = f"{BASE}/verify"
SESSION_END = f"{BASE}/session/end"
TIMESTAMP = "2026-03-06T12:00:00.000Z"


@pytest.fixture(params=LIBRARIES)
def respond(request: pytest.FixtureRequest) -> Respond:
    """Build a finished response of the parametrised library."""
    return responder(request.param, url=HEARTBEAT)


def envelope(code: str, message: str) -> dict[str, Any]:
    """Playwave's documented error body."""
    return {"success": False, "error": {"code": code, "message": message, "timestamp": TIMESTAMP}}


# One row per line of Playwave's "HTTP error codes" table.
ERROR_ROWS = [
    pytest.param("BAD_REQUEST", 400, Category.INVALID_REQUEST, False, id="400-bad-request"),
    pytest.param("INVALID_API_KEY", 401, Category.UNAUTHORIZED, False, id="401-api-key"),
    pytest.param("RATE_LIMITED", 429, Category.RATE_LIMITED, True, id="429-rate-limited"),
    pytest.param("SESSION_NOT_FOUND", 404, Category.SESSION_LOST, False, id="404-not-found"),
    pytest.param("SESSION_ENDED", 410, Category.SESSION_LOST, False, id="410-ended"),
    pytest.param("SESSION_ENDING", 410, Category.SESSION_LOST, False, id="410-ending"),
    pytest.param("ALREADY_ENDED", 409, Category.ALREADY_DONE, False, id="409-already-ended"),
    pytest.param("INTERNAL_ERROR", 500, Category.TRANSIENT, True, id="500-internal"),
]


@pytest.mark.parametrize(("code", "status", "category", "retryable"), ERROR_ROWS)
def test_playwave_error_row_is_classified_from_its_envelope(
    respond: Respond, code: str, status: int, category: Category, retryable: bool
) -> None:
    """Recognised by body shape alone: category, code, message, details, trace id."""
    response = respond(status, envelope(code, f"{code} text"), headers={"X-Request-Id": "rq-1"})
    c = classify(response)
    assert c.vendor == "playwave"
    assert c.category is category
    assert c.status == status
    assert c.code == code
    assert c.message == f"{code} text"
    assert dict(c.details) == {"timestamp": TIMESTAMP}
    assert c.trace_id == "rq-1"
    assert c.retryable is retryable


# One row per line of the "verify response — reason" table.
@pytest.mark.parametrize(
    "reason", ["OTT_EXPIRED", "OTT_ALREADY_USED", "GAME_MISMATCH", "NOT_CHARGEABLE"]
)
def test_playwave_verify_reason_is_business_rejected(respond: Respond, reason: str) -> None:
    response = respond(200, {"success": True, "reason": reason}, url=VERIFY)
    c = classify(response, vendor="playwave")
    assert (c.vendor, c.category, c.status, c.code) == (
        "playwave",
        Category.BUSINESS_REJECTED,
        200,
        reason,
    )
    assert c.retryable is False


# One row per line of the "heartbeat response — result" table.
@pytest.mark.parametrize(
    ("result", "category"),
    [
        ("OK", Category.OK),
        ("CHARGE_EXHAUSTED", Category.BUSINESS_REJECTED),
        ("SESSION_REPLACED", Category.BUSINESS_REJECTED),
    ],
)
def test_playwave_heartbeat_result_row(respond: Respond, result: str, category: Category) -> None:
    c = classify(respond(200, {"success": True, "result": result}), vendor="playwave")
    assert (c.vendor, c.category, c.code, c.retryable) == ("playwave", category, result, False)


def test_playwave_409_already_ended_is_already_done(respond: Respond) -> None:
    c = classify(respond(409, envelope("ALREADY_ENDED", "Duplicate termination")))
    assert c.category is Category.ALREADY_DONE
    assert c.retryable is False


@pytest.mark.parametrize("status", [404, 410])
def test_playwave_404_and_410_without_body_are_session_lost(respond: Respond, status: int) -> None:
    """'404/410 errors mean the session is gone' even when only the status is known."""
    c = classify(respond(status, body=b""), vendor="playwave")
    assert c.category is Category.SESSION_LOST


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (404, envelope("SESSION_NOT_FOUND", "gone")),
        (404, None),
        (409, envelope("ALREADY_ENDED", "again")),
        (409, None),
    ],
)
def test_playwave_404_or_409_on_session_end_is_already_done(
    respond: Respond, status: int, payload: Any
) -> None:
    """'404/409 on session end means already cleaned up — safe to ignore'."""
    c = classify(respond(status, payload, url=SESSION_END), vendor="playwave")
    assert c.category is Category.ALREADY_DONE
    assert c.retryable is False


def test_playwave_404_on_session_end_by_body_shape_is_already_done(respond: Respond) -> None:
    c = classify(respond(404, envelope("SESSION_NOT_FOUND", "gone"), url=SESSION_END))
    assert (c.vendor, c.category) == ("playwave", Category.ALREADY_DONE)


def test_playwave_410_on_session_end_is_still_session_lost(respond: Respond) -> None:
    """Only 404 and 409 are listed as ignorable on session end."""
    c = classify(respond(410, envelope("SESSION_ENDED", "ended"), url=SESSION_END))
    assert c.category is Category.SESSION_LOST


def test_playwave_404_on_heartbeat_is_session_lost(respond: Respond) -> None:
    c = classify(respond(404, envelope("SESSION_NOT_FOUND", "gone"), url=HEARTBEAT))
    assert c.category is Category.SESSION_LOST


def test_playwave_business_result_is_read_when_vendor_hosts_names_playwave(
    respond: Respond,
) -> None:
    """The host is matched without its port."""
    url = "https://billing.playwave.example:8443/playwave/heartbeat"
    response = respond(200, {"success": True, "result": "CHARGE_EXHAUSTED"}, url=url)
    c = classify(response, vendor_hosts={"billing.playwave.example": "playwave"})
    assert (c.vendor, c.category, c.code) == (
        "playwave",
        Category.BUSINESS_REJECTED,
        "CHARGE_EXHAUSTED",
    )


def test_playwave_business_result_is_ignored_when_the_vendor_is_unknown(
    respond: Respond,
) -> None:
    """A 2xx from an unknown vendor is OK without reading the body."""
    c = classify(respond(200, {"success": True, "reason": "OTT_EXPIRED"}, url=VERIFY))
    assert (c.vendor, c.category, c.code) == ("generic", Category.OK, None)


def test_playwave_business_result_is_ignored_for_an_unmapped_host(respond: Respond) -> None:
    response = respond(200, {"success": True, "result": "SESSION_REPLACED"})
    c = classify(response, vendor_hosts={"other.example": "playwave"})
    assert c.category is Category.OK


def test_playwave_verify_without_reason_is_ok(respond: Respond) -> None:
    response = respond(200, {"success": True, "userId": "u-1", "reason": None}, url=VERIFY)
    c = classify(response, vendor="playwave")
    assert (c.category, c.code) == (Category.OK, None)


def test_playwave_2xx_with_non_json_body_is_ok(respond: Respond) -> None:
    c = classify(respond(200, body=b"OK"), vendor="playwave")
    assert c.category is Category.OK


def test_playwave_unknown_5xx_code_is_transient(respond: Respond) -> None:
    c = classify(respond(503, envelope("MAINTENANCE", "later")))
    assert (c.category, c.retryable) == (Category.TRANSIENT, True)


def test_playwave_429_keeps_retry_after(respond: Respond) -> None:
    response = respond(429, envelope("RATE_LIMITED", "slow"), headers={"Retry-After": "2"})
    assert classify(response).retry_after == 2.0
