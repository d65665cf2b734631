"""Gameye's error table, row by row, for requests and httpx responses alike."""

from __future__ import annotations

from typing import Any

import pytest

from resilience import Category, classify
from resilience.detectors import GameyeDetector, rules_of
from resilience.regions import JsonField, RequestParts
from tests._responses import LIBRARIES, Respond, responder

SESSION_URL = "https://api.gameye.io/session"
TRACE = "3bc545b7-4750-47e6-a918-c93debc58663"


@pytest.fixture(params=LIBRARIES)
def respond(request: pytest.FixtureRequest) -> Respond:
    """Build a finished response of the parametrised library."""
    return responder(request.param, url=SESSION_URL)


def envelope(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """Gameye's documented error body."""
    return {
        "statusCode": status,
        "code": code,
        "message": message,
        "identifier": TRACE,
        "path": "/session",
        "timestamp": "2026-03-05T12:00:00Z",
        **extra,
    }


# One row per line of Gameye's "Error Codes" table.
ERROR_ROWS = [
    pytest.param(401, "UNAUTHORIZED", Category.UNAUTHORIZED, False, id="401-unauthorized"),
    pytest.param(403, "QUOTA_EXCEEDED", Category.QUOTA_EXHAUSTED, False, id="403-quota"),
    pytest.param(404, "NOT_FOUND", Category.NOT_FOUND, False, id="404-not-found"),
    pytest.param(409, "CONFLICT", Category.CONFLICT, False, id="409-conflict"),
    pytest.param(420, "CAPACITY_UNAVAILABLE", Category.CAPACITY, True, id="420-capacity"),
    pytest.param(422, "INVALID_REQUEST", Category.INVALID_REQUEST, False, id="422-invalid"),
    pytest.param(500, "INTERNAL_ERROR", Category.TRANSIENT, True, id="500-internal"),
]


@pytest.mark.parametrize(("status", "code", "category", "retryable"), ERROR_ROWS)
def test_gameye_error_row_is_classified_from_its_envelope(
    respond: Respond, status: int, code: str, category: Category, retryable: bool
) -> None:
    """Recognised by body shape alone: category, code, message, trace id, retryable."""
    c = classify(respond(status, envelope(status, code, f"message for {status}")))
    assert c.vendor == "gameye"
    assert c.category is category
    assert c.status == status
    assert c.code == code
    assert c.message == f"message for {status}"
    assert dict(c.details) == {}
    assert c.trace_id == TRACE
    assert c.retryable is retryable


@pytest.mark.parametrize("status", [200, 201])
def test_gameye_success_row_is_ok(respond: Respond, status: int) -> None:
    c = classify(respond(status, {"id": "s-1", "location": "eu-west"}), vendor="gameye")
    assert (c.vendor, c.category, c.status, c.retryable) == ("gameye", Category.OK, status, False)
    assert c.code is None


def test_gameye_409_is_conflict_not_conflict_pending(respond: Respond) -> None:
    """Gameye's 409 means the session id exists: unlike the generic 409, never retried."""
    c = classify(respond(409, envelope(409, "CONFLICT", "session already exists")))
    assert c.category is Category.CONFLICT
    assert c.retryable is False


def test_gameye_420_is_capacity_and_retryable(respond: Respond) -> None:
    c = classify(respond(420, envelope(420, "CAPACITY_UNAVAILABLE", "no capacity")))
    assert c.category is Category.CAPACITY
    assert c.retryable is True


def test_gameye_420_keeps_retry_after(respond: Respond) -> None:
    payload = envelope(420, "CAPACITY_UNAVAILABLE", "no capacity")
    c = classify(respond(420, payload, headers={"Retry-After": "3"}))
    assert c.retry_after == 3.0


def test_gameye_403_is_quota_exhausted_not_forbidden(respond: Respond) -> None:
    """Gameye documents 403 as the trial quota being used up."""
    c = classify(respond(403, envelope(403, "QUOTA_EXCEEDED", "runtime quota exhausted")))
    assert c.category is Category.QUOTA_EXHAUSTED


def test_gameye_500_identifier_is_the_trace_id(respond: Respond) -> None:
    payload = envelope(500, "INTERNAL_ERROR", "An unexpected error occurred.")
    c = classify(respond(500, payload))
    assert c.trace_id == "3bc545b7-4750-47e6-a918-c93debc58663"


def test_gameye_identifier_wins_over_x_request_id(respond: Respond) -> None:
    payload = envelope(500, "INTERNAL_ERROR", "boom")
    c = classify(respond(500, payload, headers={"X-Request-Id": "from-header"}))
    assert c.trace_id == TRACE


def test_gameye_without_identifier_falls_back_to_x_request_id(respond: Respond) -> None:
    payload = {"statusCode": 500, "code": "INTERNAL_ERROR", "message": "boom"}
    c = classify(respond(500, payload, headers={"X-Request-Id": "from-header"}))
    assert c.vendor == "gameye"
    assert c.trace_id == "from-header"


def test_gameye_fields_beyond_the_envelope_are_details(respond: Respond) -> None:
    payload = envelope(422, "INVALID_REQUEST", "bad body", field="image")
    c = classify(respond(422, payload))
    assert dict(c.details) == {"field": "image"}


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, Category.UNAUTHORIZED),
        (403, Category.QUOTA_EXHAUSTED),
        (404, Category.NOT_FOUND),
        (409, Category.CONFLICT),
        (420, Category.CAPACITY),
        (422, Category.INVALID_REQUEST),
        (500, Category.TRANSIENT),
    ],
)
def test_gameye_status_decides_when_the_body_is_not_json(
    respond: Respond, status: int, category: Category
) -> None:
    """A proxy's HTML page from a host known to be Gameye still follows Gameye's table."""
    response = respond(status, body=b"<html>Bad Gateway</html>")
    c = classify(response, vendor_hosts={"api.gameye.io": "gameye"})
    assert (c.vendor, c.category, c.code, c.trace_id) == ("gameye", category, None, None)


# -- Gameye's retry rules (the detector's hooks) -------------------------------------

GAMEYE_RULES = rules_of(GameyeDetector())
SESSION_BODY = b'{"id": "a1b2c3", "image": "arena", "location": "eu-west"}'


def test_gameye_waits_two_to_five_seconds_before_retrying_a_full_region() -> None:
    """ "Retry after 2-5 seconds" (420, no capacity in the region)."""
    assert GAMEYE_RULES.capacity_wait == (2.0, 5.0)


def test_gameye_region_is_the_location_field() -> None:
    assert GAMEYE_RULES.region_locator == JsonField("location")


def test_gameye_conflict_after_an_unknown_outcome_means_already_done() -> None:
    """The lost attempt created the session; "already exists" now means done."""
    assert GAMEYE_RULES.conflict_after_unknown is Category.ALREADY_DONE


def test_gameye_rules_name_gameye() -> None:
    assert GAMEYE_RULES.vendor == "gameye"


@pytest.mark.parametrize(
    "url",
    [
        SESSION_URL,
        SESSION_URL + "/",
        SESSION_URL + "?dry=1",
        "https://eu.api.gameye.io/v2/session",
    ],
    ids=["plain", "trailing-slash", "query", "prefixed-path"],
)
def test_gameye_post_session_with_an_id_is_safe_to_repeat(url: str) -> None:
    """The session is named by the caller's id: a repeat cannot start a second one."""
    assert GAMEYE_RULES.safe_to_repeat(RequestParts("POST", url, (), SESSION_BODY)) is True


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", SESSION_URL, b'{"image": "arena", "location": "eu-west"}'),
        ("POST", SESSION_URL, b'{"env": {"id": "nested"}}'),
        ("POST", SESSION_URL, b'{"id": null}'),
        ("POST", SESSION_URL, b'[{"id": "a1b2c3"}]'),
        ("POST", SESSION_URL, b'{"id": "a1b2'),
        ("POST", SESSION_URL, None),
        ("PATCH", SESSION_URL, SESSION_BODY),
        ("POST", "https://api.gameye.io/sessions", SESSION_BODY),
        ("POST", "https://api.gameye.io/session/a1b2c3/stop", SESSION_BODY),
        ("POST", "https://api.gameye.io/artifact?next=/session", SESSION_BODY),
    ],
    ids=[
        "no-id",
        "nested-id",
        "null-id",
        "array-body",
        "truncated-body",
        "no-body",
        "patch",
        "sessions",
        "sub-resource",
        "session-in-query",
    ],
)
def test_gameye_other_requests_are_not_safe_to_repeat(
    method: str, url: str, body: bytes | None
) -> None:
    assert GAMEYE_RULES.safe_to_repeat(RequestParts(method, url, (), body)) is False


def test_gameye_success_trace_id_is_the_x_request_id_header() -> None:
    """A success's body is not read, so Gameye's ``identifier`` is not there to take."""
    assert GAMEYE_RULES.success_trace_id({"x-request-id": TRACE}) == TRACE
