"""Envelopes, default codes and stateful endpoints of the simulated vendors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from resilience.testing._wire import (
    Request,
    Response,
    dumps,
    iso_now,
    json_response,
    phrase,
    status_name,
)

GAMEYE_PORT_BASE = 30000
"""First host port handed to a simulated Gameye session."""

EIGHTBITEDGE_MAX_BATCH = 50
"""Largest batch 8bitedge accepts."""

EIGHTBITEDGE_QUOTA_LIMIT = 100_000
"""Monthly quota reported by the simulated 8bitedge ``/api/v1/me``."""


class Vendor:
    """Base of the simulated vendors: error envelope and normal behaviour."""

    name: ClassVar[str] = "generic"
    codes: ClassVar[Mapping[int, str]] = {}
    messages: ClassVar[Mapping[str, str]] = {}
    rate_limit_details: ClassVar[Mapping[str, Any] | None] = None
    not_found_code: ClassVar[str | None] = None
    server_error_code: ClassVar[str | None] = None
    """The code of a 5xx the vendor's table does not list (``None``: the status name)."""
    lower_case_codes: ClassVar[bool] = False
    """Whether the vendor's codes are lower case (8bitedge)."""

    def __init__(self) -> None:
        """Create the vendor with empty state."""
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget all state."""

    def default_code(self, status: int) -> str:
        """Return the vendor's code for an error status.

        Args:
            status: HTTP status.

        Returns:
            The code.
        """
        code = self.codes.get(status)
        if code is not None:
            return code
        if status >= 500 and self.server_error_code is not None:
            return self.server_error_code
        name = status_name(status)
        return name.lower() if self.lower_case_codes else name

    def default_message(self, code: str, status: int) -> str:
        """Return the vendor's message for a code.

        Args:
            code: Vendor error code.
            status: HTTP status.

        Returns:
            The message.
        """
        message = self.messages.get(code)
        if message is not None:
            return message
        return phrase(status) + "."

    def envelope(
        self,
        req: Request,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Build the error body.

        Args:
            req: The request answered.
            status: HTTP status.
            code: Vendor error code.
            message: Human-readable message.
            details: Vendor details, if any.

        Returns:
            The JSON body.
        """
        body: dict[str, Any] = {"error": message, "code": code}
        if details:
            body["details"] = dict(details)
        return body

    def error(
        self,
        req: Request,
        status: int,
        code: str | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Response:
        """Build an error response in the vendor's envelope.

        Args:
            req: The request answered.
            status: HTTP status.
            code: Vendor error code (``None``: the default for ``status``).
            message: Message (``None``: the default for the code).
            details: Vendor details, if any.

        Returns:
            The response.
        """
        if code is None:
            code = self.default_code(status)
        if message is None:
            message = self.default_message(code, status)
        return json_response(status, self.envelope(req, status, code, message, details))

    def not_found(self, req: Request) -> Response:
        """Answer a request for a route the vendor does not have.

        Args:
            req: The request answered.

        Returns:
            A 404 in the vendor's envelope.
        """
        return self.error(
            req,
            404,
            self.not_found_code,
            f"No route for {req.method} {req.sub or '/'}.",
        )

    def success_body(self) -> Any:
        """Return the minimal success body of the vendor.

        Returns:
            The JSON body.
        """
        return {}

    def handle(self, req: Request) -> Response:
        """Answer a request with the vendor's normal behaviour.

        Args:
            req: The request answered.

        Returns:
            The response.
        """
        return self.not_found(req)


_NOT_FOUND_BODY = dumps({"error": "not found"})
_PING_BODY = dumps({"ok": True})


class Generic(Vendor):
    """Routes outside the three vendor prefixes (``/ping`` and 404s)."""

    name = "generic"

    def default_message(self, code: str, status: int) -> str:
        """Return the lower-case reason phrase of ``status``.

        Args:
            code: Error code (unused).
            status: HTTP status.

        Returns:
            The message.
        """
        return phrase(status).lower()

    def envelope(
        self,
        req: Request,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Build ``{"error": message}`` (plus ``code`` and ``details`` when set).

        Args:
            req: The request answered.
            status: HTTP status.
            code: Error code; only sent when it is not the status's name.
            message: Message.
            details: Details, if any.

        Returns:
            The JSON body.
        """
        body: dict[str, Any] = {"error": message}
        if code != status_name(status):
            body["code"] = code
        if details:
            body["details"] = dict(details)
        return body

    def not_found(self, req: Request) -> Response:
        """Answer ``{"error": "not found"}``.

        Args:
            req: The request answered.

        Returns:
            The response.
        """
        return Response(404, _NOT_FOUND_BODY)

    def success_body(self) -> Any:
        """Return ``{"ok": true}``.

        Returns:
            The JSON body.
        """
        return {"ok": True}

    def handle(self, req: Request) -> Response:
        """Answer ``GET /ping``; anything else is a 404.

        Args:
            req: The request answered.

        Returns:
            The response.
        """
        if req.path == "/ping" and req.route_method == "GET":
            return Response(200, _PING_BODY)
        return self.not_found(req)


class Gameye(Vendor):
    """Gameye: session orchestration (``/gameye/session``)."""

    name = "gameye"
    server_error_code = "SERVICE_UNAVAILABLE"
    codes: ClassVar[Mapping[int, str]] = {
        401: "UNAUTHORIZED",
        403: "QUOTA_EXCEEDED",
        404: "NOT_FOUND",
        409: "CONFLICT",
        420: "CAPACITY_UNAVAILABLE",
        422: "INVALID_REQUEST",
        500: "INTERNAL_ERROR",
    }
    messages: ClassVar[Mapping[str, str]] = {
        "UNAUTHORIZED": "The API token is missing, malformed or invalid.",
        "QUOTA_EXCEEDED": "The runtime quota of this account is exhausted.",
        "NOT_FOUND": "The location, image or session does not exist.",
        "CONFLICT": "session already exists",
        "CAPACITY_UNAVAILABLE": "No capacity is available in the requested location.",
        "INVALID_REQUEST": "The request body is invalid or misses a required field.",
        "INTERNAL_ERROR": "An unexpected error occurred.",
        "SERVICE_UNAVAILABLE": "The service is temporarily unavailable.",
    }
    not_found_code = "NOT_FOUND"

    def __init__(self) -> None:
        """Create the vendor with no sessions."""
        super().__init__()
        self._sessions: dict[str, dict[str, Any]] = {}
        self._next_port = GAMEYE_PORT_BASE

    def reset(self) -> None:
        """Forget all sessions."""
        with self._lock:
            self._sessions.clear()
            self._next_port = GAMEYE_PORT_BASE

    def envelope(
        self,
        req: Request,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Build ``{statusCode, code, message, identifier, path, timestamp}``.

        Args:
            req: The request answered.
            status: HTTP status.
            code: Gameye error code.
            message: Message.
            details: Details, if any (sent as ``details``).

        Returns:
            The JSON body.
        """
        body: dict[str, Any] = {
            "statusCode": status,
            "code": code,
            "message": message,
            "identifier": str(uuid.uuid4()),
            "path": req.sub or "/",
            "timestamp": iso_now(),
        }
        if details:
            body["details"] = dict(details)
        return body

    def handle(self, req: Request) -> Response:
        """Serve ``POST/GET /session`` and ``GET/DELETE /session/{id}``.

        Args:
            req: The request answered.

        Returns:
            The response.
        """
        sub = req.sub.rstrip("/")
        method = req.route_method
        if sub == "/session":
            if method == "POST":
                return self._create(req)
            if method == "GET":
                return self._list()
        elif sub.startswith("/session/"):
            session_id = sub[9:]
            if method == "DELETE":
                return self._delete(req, session_id)
            if method == "GET":
                return self._get(req, session_id)
        return self.not_found(req)

    def _create(self, req: Request) -> Response:
        data = req.json()
        if not isinstance(data, dict):
            return self.error(req, 422, message="The request body is not a JSON object.")
        for name in ("id", "location"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                return self.error(req, 422, message=f"Missing or invalid field: {name}.")
        session_id: str = data["id"]
        image = data.get("image")
        with self._lock:
            if session_id in self._sessions:
                return self.error(req, 409, message=f"session already exists: {session_id}")
            port = self._next_port
            self._next_port += 1
            session = {
                "id": session_id,
                "location": data["location"],
                "host": "127.0.0.1",
                "port": {"type": "udp", "container": 7777, "host": port},
            }
            self._sessions[session_id] = {**session, "image": image}
        return json_response(201, session)

    def _list(self) -> Response:
        with self._lock:
            sessions = list(self._sessions.values())
        return json_response(200, {"sessions": sessions})

    def _get(self, req: Request, session_id: str) -> Response:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return self.error(req, 404, message=f"Session {session_id} does not exist.")
        return json_response(200, session)

    def _delete(self, req: Request, session_id: str) -> Response:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return self.error(req, 404, message=f"Session {session_id} does not exist.")
        return Response(204, content_type=None)


_IDEMPOTENCY_IN_FLIGHT = Response(0)


class EightBitEdge(Vendor):
    """8bitedge: game data API (``/8bitedge/api/v1/...``)."""

    name = "8bitedge"
    server_error_code = "server_error"
    lower_case_codes = True
    codes: ClassVar[Mapping[int, str]] = {
        401: "unauthorized",
        402: "quota_exceeded",
        403: "insufficient_scope",
        404: "not_found",
        409: "idempotency_conflict",
        422: "validation_failed",
        429: "rate_limit_exceeded",
        500: "server_error",
        501: "not_implemented",
    }
    messages: ClassVar[Mapping[str, str]] = {
        "unauthorized": "Missing or invalid API key.",
        "account_inactive": "The organization or API client is not active.",
        "insufficient_scope": "This API key is missing the required scope.",
        "quota_exceeded": "Monthly quota exhausted. Upgrade your plan or wait for the reset.",
        "not_found": "The requested resource does not exist.",
        "idempotency_conflict": "A request with this idempotency key is still being processed.",
        "validation_failed": "The request body failed validation.",
        "batch_too_large": "The batch exceeds the maximum allowed size for your plan.",
        "idempotency_key_reuse": "The idempotency key was reused with a different payload.",
        "rate_limit_exceeded": "Rate limit exceeded for the minute window.",
        "not_implemented": "This endpoint exists but is not implemented yet.",
        "server_error": "An unexpected server error occurred.",
    }
    rate_limit_details: ClassVar[Mapping[str, Any] | None] = {"window": "minute", "limit": 120}
    not_found_code = "not_found"

    def __init__(self) -> None:
        """Create the vendor with no stored idempotent responses."""
        super().__init__()
        self._used = 0
        self._idempotent: dict[str, tuple[tuple[str, str, bytes], Response]] = {}

    def reset(self) -> None:
        """Forget usage and stored idempotent responses."""
        with self._lock:
            self._used = 0
            self._idempotent.clear()

    def envelope(
        self,
        req: Request,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Build ``{"error": {code, message, details?}}``.

        Args:
            req: The request answered.
            status: HTTP status.
            code: 8bitedge error code.
            message: Message.
            details: Details, if any.

        Returns:
            The JSON body.
        """
        inner: dict[str, Any] = {"code": code, "message": message}
        if details:
            inner["details"] = dict(details)
        return {"error": inner}

    def handle(self, req: Request) -> Response:
        """Serve ``GET /api/v1/me`` and ``POST /api/v1/games/batch``.

        Args:
            req: The request answered.

        Returns:
            The response.
        """
        sub = req.sub.rstrip("/")
        method = req.route_method
        if sub == "/api/v1/me" and method == "GET":
            return self._me()
        if sub == "/api/v1/games/batch" and method == "POST":
            return self._idempotent_call(req)
        return self.not_found(req)

    def _count_use(self) -> int:
        with self._lock:
            self._used += 1
            return self._used

    def _me(self) -> Response:
        used = self._count_use()
        return json_response(
            200,
            {
                "organization": {"id": "org_simulated", "name": "Simulated Studio"},
                "plan": {"name": "pro", "max_batch_size": EIGHTBITEDGE_MAX_BATCH},
                "quota": {"used": used, "limit": EIGHTBITEDGE_QUOTA_LIMIT},
            },
        )

    def _idempotent_call(self, req: Request) -> Response:
        key = req.headers.get("idempotency-key")
        if not key:
            return self._batch(req)
        fingerprint = (req.route_method, req.sub.rstrip("/"), req.body)
        with self._lock:
            stored = self._idempotent.get(key)
            if stored is None:
                self._idempotent[key] = (fingerprint, _IDEMPOTENCY_IN_FLIGHT)
        if stored is not None:
            seen, response = stored
            if seen != fingerprint:
                return self.error(req, 422, "idempotency_key_reuse")
            if response is _IDEMPOTENCY_IN_FLIGHT:
                return self.error(req, 409, "idempotency_conflict")
            replay = response.copy()
            replay.headers.append(("Idempotent-Replayed", "true"))
            return replay
        try:
            response = self._batch(req)
        except BaseException:
            with self._lock:
                self._idempotent.pop(key, None)
            raise
        with self._lock:
            self._idempotent[key] = (fingerprint, response.copy())
        return response

    def _batch(self, req: Request) -> Response:
        self._count_use()
        data = req.json()
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return self.error(
                req,
                422,
                "validation_failed",
                "The field items is required and must be a list.",
                {"field": "items"},
            )
        if len(items) > EIGHTBITEDGE_MAX_BATCH:
            return self.error(
                req,
                422,
                "batch_too_large",
                details={"max_items": EIGHTBITEDGE_MAX_BATCH, "received": len(items)},
            )
        results = [{"index": i, "status": "ok", "item": item} for i, item in enumerate(items)]
        return json_response(200, {"results": results})


class Playwave(Vendor):
    """Playwave: billing sessions (``/playwave/verify``, ``/heartbeat``, ``/session/end``)."""

    name = "playwave"
    server_error_code = "INTERNAL_ERROR"
    codes: ClassVar[Mapping[int, str]] = {
        400: "BAD_REQUEST",
        401: "INVALID_API_KEY",
        404: "SESSION_NOT_FOUND",
        409: "ALREADY_ENDED",
        410: "SESSION_ENDED",
        429: "RATE_LIMITED",
        500: "INTERNAL_ERROR",
    }
    messages: ClassVar[Mapping[str, str]] = {
        "BAD_REQUEST": "Request body validation failed.",
        "INVALID_API_KEY": "API Key is invalid or inactive.",
        "SESSION_NOT_FOUND": "Game session not found.",
        "ALREADY_ENDED": "Game session has already ended.",
        "SESSION_ENDED": "Game session already terminated.",
        "SESSION_ENDING": "Game session termination in progress.",
        "RATE_LIMITED": "Request rate limit exceeded.",
        "INTERNAL_ERROR": "Internal server error.",
        "NOT_FOUND": "Route not found.",
    }
    not_found_code = "NOT_FOUND"

    def __init__(self) -> None:
        """Create the vendor with no sessions."""
        super().__init__()
        self._ended: dict[str, bool] = {}

    def reset(self) -> None:
        """Forget all sessions."""
        with self._lock:
            self._ended.clear()

    def envelope(
        self,
        req: Request,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Build ``{"success": false, "error": {code, message, timestamp}}``.

        Args:
            req: The request answered.
            status: HTTP status.
            code: Playwave error code.
            message: Message.
            details: Details, if any (sent inside ``error``).

        Returns:
            The JSON body.
        """
        inner: dict[str, Any] = {
            "code": code,
            "message": message,
            "timestamp": iso_now(millis=True),
        }
        if details:
            inner["details"] = dict(details)
        return {"success": False, "error": inner}

    def success_body(self) -> Any:
        """Return ``{"success": true}``.

        Returns:
            The JSON body.
        """
        return {"success": True}

    def handle(self, req: Request) -> Response:
        """Serve ``POST /verify``, ``/heartbeat`` and ``/session/end``.

        Args:
            req: The request answered.

        Returns:
            The response.
        """
        if req.route_method == "POST":
            sub = req.sub.rstrip("/")
            if sub == "/verify":
                return self._verify(req)
            if sub == "/heartbeat":
                return self._heartbeat(req)
            if sub == "/session/end":
                return self._end(req)
        return self.not_found(req)

    def _field(self, req: Request, name: str) -> str | Response:
        data = req.json()
        value = data.get(name) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            return self.error(req, 400, message=f"{name} is required.")
        return value

    def _verify(self, req: Request) -> Response:
        ott = self._field(req, "ott")
        if isinstance(ott, Response):
            return ott
        session_id = "pws_" + uuid.uuid4().hex
        with self._lock:
            self._ended[session_id] = False
        return json_response(200, {"success": True, "sessionId": session_id})

    def _heartbeat(self, req: Request) -> Response:
        session_id = self._field(req, "sessionId")
        if isinstance(session_id, Response):
            return session_id
        with self._lock:
            ended = self._ended.get(session_id)
        if ended is None:
            return self.error(req, 404)
        if ended:
            return self.error(req, 410)
        return json_response(200, {"success": True, "result": "OK"})

    def _end(self, req: Request) -> Response:
        session_id = self._field(req, "sessionId")
        if isinstance(session_id, Response):
            return session_id
        with self._lock:
            ended = self._ended.get(session_id)
            if ended is False:
                self._ended[session_id] = True
        if ended is None:
            return self.error(req, 404)
        if ended:
            return self.error(req, 409)
        return json_response(200, {"success": True})


def business_body(req: Request, reason: str | None, result: str | None) -> dict[str, Any]:
    """Build a Playwave business result body.

    Args:
        req: The request answered.
        reason: Verify ``reason``, if any.
        result: Heartbeat ``result``, if any.

    Returns:
        The JSON body.
    """
    if reason is None and result is None:
        if req.sub.rstrip("/") == "/verify":
            reason = "OTT_EXPIRED"
        else:
            result = "CHARGE_EXHAUSTED"
    body: dict[str, Any] = {"success": True}
    if reason is not None:
        body["reason"] = reason
    if result is not None:
        body["result"] = result
    return body


def make_vendors() -> dict[str | None, Vendor]:
    """Create one fresh instance of every vendor.

    Returns:
        The vendors by prefix; ``None`` maps to the generic routes.
    """
    return {
        None: Generic(),
        "gameye": Gameye(),
        "8bitedge": EightBitEdge(),
        "playwave": Playwave(),
    }
