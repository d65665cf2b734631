"""The routes of the simulated vendors, for help texts and documentation."""

from __future__ import annotations

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/ping", 'health check: {"ok": true} (never faulted)'),
    ("POST", "/gameye/session", "{id, location, image}: 201; 409 if the id exists"),
    ("GET", "/gameye/session", "list the sessions"),
    ("GET", "/gameye/session/{id}", "one session, or 404"),
    ("DELETE", "/gameye/session/{id}", "stop a session: 204, or 404"),
    ("GET", "/8bitedge/api/v1/me", "organization, plan and quota used"),
    (
        "POST",
        "/8bitedge/api/v1/games/batch",
        "{items: [...]}, at most 50; Idempotency-Key replays",
    ),
    ("POST", "/playwave/verify", "{ott}: a new sessionId"),
    ("POST", "/playwave/heartbeat", '{sessionId}: result "OK"; 404 unknown, 410 ended'),
    ("POST", "/playwave/session/end", "{sessionId}: success; 404 unknown, 409 already ended"),
)
"""``(method, path, what it does)`` for every route; others answer 404 in the vendor's envelope."""


def routes_text() -> str:
    """The routes as aligned lines, one per route.

    Returns:
        The text.
    """
    width = max(len(path) for _, path, _ in ROUTES)
    return "\n".join(f"  {method:<6} {path:<{width}}  {what}" for method, path, what in ROUTES)
