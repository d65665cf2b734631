"""8bitedge's error-code table, row by row, for requests and httpx responses alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from resilience import Category, classify
from tests._responses import LIBRARIES, Respond, responder

BATCH_URL = "https://api.8bitedge.com/api/v1/games/batch"
REQUEST_ID = "5f3c1e2a-9d4b-4f87-b3e1-7a02c5d09b21"
HOSTS = {"api.8bitedge.com": "8bitedge"}


@pytest.fixture(params=LIBRARIES)
def respond(request: pytest.FixtureRequest) -> Respond:
    """Build a finished response of the parametrised library."""
    return responder(request.param, url=BATCH_URL)


def envelope(code: str, message: str, details: Mapping[str, Any] | None = None) -> Any:
    """8bitedge's documented error body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = dict(details)
    return {"error": error}


# One row per line of 8bitedge's "Error codes reference" table.
ROWS = [
    pytest.param(401, "unauthorized", Category.UNAUTHORIZED, False, None, id="401-unauthorized"),
    pytest.param(403, "account_inactive", Category.FORBIDDEN, False, None, id="403-inactive"),
    pytest.param(
        403,
        "insufficient_scope",
        Category.FORBIDDEN,
        False,
        {"required_scope": "games.read"},
        id="403-scope",
    ),
    pytest.param(402, "quota_exceeded", Category.QUOTA_EXHAUSTED, False, None, id="402-quota"),
    pytest.param(404, "not_found", Category.NOT_FOUND, False, None, id="404-not-found"),
    pytest.param(
        409, "idempotency_conflict", Category.CONFLICT_PENDING, True, None, id="409-pending"
    ),
    pytest.param(
        422, "validation_failed", Category.INVALID_REQUEST, False, None, id="422-validation"
    ),
    pytest.param(
        422,
        "batch_too_large",
        Category.INVALID_REQUEST,
        False,
        {"max_items": 50, "received": 75},
        id="422-batch",
    ),
    pytest.param(
        422, "idempotency_key_reuse", Category.INVALID_REQUEST, False, None, id="422-key-reuse"
    ),
    pytest.param(
        429,
        "rate_limit_exceeded",
        Category.RATE_LIMITED,
        True,
        {"window": "minute", "limit": 120},
        id="429-rate-limit",
    ),
    pytest.param(501, "not_implemented", Category.NOT_IMPLEMENTED, False, None, id="501"),
    pytest.param(500, "server_error", Category.TRANSIENT, True, None, id="500-server-error"),
]


@pytest.mark.parametrize(("status", "code", "category", "retryable", "details"), ROWS)
def test_eightbitedge_row_is_classified_from_its_envelope(
    respond: Respond,
    status: int,
    code: str,
    category: Category,
    retryable: bool,
    details: Mapping[str, Any] | None,
) -> None:
    """Recognised by body shape alone: category, code, message, details, trace id."""
    response = respond(
        status, envelope(code, f"{code} happened", details), headers={"X-Request-Id": REQUEST_ID}
    )
    c = classify(response)
    assert c.vendor == "8bitedge"
    assert c.category is category
    assert c.status == status
    assert c.code == code
    assert c.message == f"{code} happened"
    assert dict(c.details) == dict(details or {})
    assert c.trace_id == REQUEST_ID
    assert c.retryable is retryable


def test_eightbitedge_501_not_implemented_is_not_retryable(respond: Respond) -> None:
    """Unlike other 5xx, 501 will not get better by waiting."""
    c = classify(respond(501, envelope("not_implemented", "Not yet available.")))
    assert c.category is Category.NOT_IMPLEMENTED
    assert c.retryable is False


def test_eightbitedge_409_idempotency_conflict_is_retryable(respond: Respond) -> None:
    """'The original request is still in progress': wait and retry."""
    c = classify(respond(409, envelope("idempotency_conflict", "Still processing.")))
    assert c.category is Category.CONFLICT_PENDING
    assert c.retryable is True


def test_eightbitedge_422_idempotency_key_reuse_is_not_retryable(respond: Respond) -> None:
    c = classify(respond(422, envelope("idempotency_key_reuse", "Different payload.")))
    assert c.category is Category.INVALID_REQUEST
    assert c.retryable is False


def test_eightbitedge_x_request_id_is_the_trace_id(respond: Respond) -> None:
    response = respond(500, envelope("server_error", "Oops."), headers={"X-Request-Id": REQUEST_ID})
    assert classify(response).trace_id == REQUEST_ID


def test_eightbitedge_success_carries_the_x_request_id(respond: Respond) -> None:
    """'Every response ... both successful responses and errors' has the header."""
    response = respond(200, {"items": []}, headers={"X-Request-Id": REQUEST_ID})
    c = classify(response, vendor="8bitedge")
    assert (c.vendor, c.category, c.trace_id) == ("8bitedge", Category.OK, REQUEST_ID)


def test_eightbitedge_details_are_exposed(respond: Respond) -> None:
    payload = envelope("insufficient_scope", "Missing scope.", {"required_scope": "games.read"})
    c = classify(respond(403, payload))
    assert c.details["required_scope"] == "games.read"


def test_eightbitedge_missing_details_is_an_empty_mapping(respond: Respond) -> None:
    c = classify(respond(401, envelope("unauthorized", "Missing API key.")))
    assert dict(c.details) == {}


def test_eightbitedge_non_object_details_are_dropped(respond: Respond) -> None:
    payload = {"error": {"code": "validation_failed", "message": "x", "details": ["a", "b"]}}
    assert dict(classify(respond(422, payload)).details) == {}


def test_eightbitedge_429_retry_after_is_read(respond: Respond) -> None:
    payload = envelope("rate_limit_exceeded", "Slow down.", {"window": "minute", "limit": 120})
    c = classify(respond(429, payload, headers={"Retry-After": "17"}))
    assert c.retry_after == 17.0


def test_eightbitedge_unknown_code_falls_back_to_the_status(respond: Respond) -> None:
    c = classify(respond(503, envelope("maintenance", "Back soon.")), vendor_hosts=HOSTS)
    assert (c.vendor, c.category, c.code) == ("8bitedge", Category.TRANSIENT, "maintenance")


def test_eightbitedge_unknown_4xx_code_is_client_error(respond: Respond) -> None:
    c = classify(respond(405, envelope("method_not_allowed", "Use POST.")), vendor_hosts=HOSTS)
    assert (c.vendor, c.category, c.retryable) == ("8bitedge", Category.CLIENT_ERROR, False)


def test_envelope_with_an_undocumented_code_from_an_unmapped_host_is_generic(
    respond: Respond,
) -> None:
    """Only a code 8bitedge documents is evidence that 8bitedge answered."""
    c = classify(respond(503, envelope("maintenance", "Back soon.")))
    assert (c.vendor, c.category, c.code) == ("generic", Category.TRANSIENT, "maintenance")


@pytest.mark.parametrize(
    "extra",
    [{"type": "requests"}, {"param": None}, {"status": 429}],
    ids=["type", "param", "status"],
)
def test_envelope_with_a_field_8bitedge_does_not_send_is_generic(
    respond: Respond, extra: Mapping[str, Any]
) -> None:
    """``error`` holding anything but code, message and details is another API's envelope."""
    payload = {"error": {"code": "rate_limit_exceeded", "message": "Slow down.", **extra}}
    assert classify(respond(429, payload)).vendor == "generic"


def test_envelope_with_a_non_string_code_is_generic(respond: Respond) -> None:
    payload = {"error": {"code": ["rate_limit_exceeded"], "message": "Slow down."}}
    assert classify(respond(429, payload)).vendor == "generic"


def test_envelope_with_only_a_documented_code_is_eightbitedge(respond: Respond) -> None:
    """``message`` and ``details`` may be absent; the code alone is 8bitedge's."""
    c = classify(respond(404, {"error": {"code": "not_found"}}))
    assert (c.vendor, c.category) == ("8bitedge", Category.NOT_FOUND)


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, Category.UNAUTHORIZED),
        (402, Category.QUOTA_EXHAUSTED),
        (403, Category.FORBIDDEN),
        (404, Category.NOT_FOUND),
        (409, Category.CONFLICT_PENDING),
        (422, Category.INVALID_REQUEST),
        (429, Category.RATE_LIMITED),
        (500, Category.TRANSIENT),
        (501, Category.NOT_IMPLEMENTED),
    ],
)
def test_eightbitedge_status_decides_when_the_body_is_unreadable(
    respond: Respond, status: int, category: Category
) -> None:
    """Without a readable body each status means what 8bitedge's table says it means."""
    c = classify(respond(status, body=b"upstream timed out"), vendor="8bitedge")
    assert (c.vendor, c.category, c.code) == ("8bitedge", category, None)


def test_eightbitedge_shape_with_a_success_key_is_not_eightbitedge(respond: Respond) -> None:
    """``{"success": false, "error": {...}}`` is Playwave's envelope."""
    payload = {"success": False, "error": {"code": "rate_limit_exceeded", "message": "x"}}
    assert classify(respond(429, payload)).vendor == "playwave"
