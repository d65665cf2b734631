"""``python -m resilience demo``: a scripted day of a game backend.

Starts the embedded vendor simulator on 127.0.0.1 and plays calls that meet
the failures the vendors document, through requests, httpx and httpx async,
then prints what each call went through and how it ended.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import requests

from resilience.errors import ResilienceError
from resilience.retry.engine import Attempt
from resilience.shells.history import attempts
from resilience.shells.hooks import (
    async_httpx_event_hooks,
    httpx_event_hooks,
    requests_response_hook,
)
from resilience.shells.httpx_transport import AsyncResilientTransport, ResilientTransport
from resilience.shells.requests_adapter import ResilientAdapter
from resilience.testing import Reply, VendorSimulator

__all__ = ["CallReport", "run_demo"]

# Short waits so the day plays in seconds; the simulator's own Retry-After
# values (0.05 s) stand in for the vendors' real ones.
_POLICY: dict[str, Any] = {
    "backoff_initial": 0.05,
    "conflict_delay": 0.1,
    "regions": ["eu-west", "us-east"],
}


@dataclass(frozen=True, slots=True)
class CallReport:
    """What one call went through."""

    vendor: str
    client: str
    call: str
    statuses: list[str]
    waits: list[float]
    regions: list[str]
    outcome: str
    expected: str
    trace_id: str | None

    @property
    def as_expected(self) -> bool:
        """Whether the call ended as the script intends."""
        return self.outcome.startswith(self.expected)


@dataclass(frozen=True, slots=True)
class _Call:
    vendor: str
    client: str
    title: str
    method: str
    path: str
    script: Sequence[Reply]
    expected: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    before: tuple[str, str, dict[str, Any]] | None = None


def _calls() -> list[_Call]:
    session_id = str(uuid.uuid4())
    full = Reply.capacity(region="eu-west", retry_after=0.05)
    return [
        _Call(
            "gameye",
            "requests",
            "start a session; eu-west is full",
            "POST",
            "/gameye/session",
            [full, full],
            "201 ok",
            body={"id": str(uuid.uuid4()), "location": "eu-west", "image": "arena"},
        ),
        _Call(
            "gameye",
            "httpx",
            "start a session; the answer is lost",
            "POST",
            "/gameye/session",
            [Reply.drop_after_processing()],
            "409 already_done",
            body={"id": str(uuid.uuid4()), "location": "us-east", "image": "arena"},
        ),
        _Call(
            "gameye",
            "httpx async",
            "start a session whose id is taken",
            "POST",
            "/gameye/session",
            [],
            "raised Conflict",
            body={"id": session_id, "location": "us-east", "image": "arena"},
            before=(
                "POST",
                "/gameye/session",
                {"id": session_id, "location": "us-east", "image": "arena"},
            ),
        ),
        _Call(
            "gameye",
            "requests",
            "start a session; quota used up",
            "POST",
            "/gameye/session",
            [Reply.error(403)],
            "raised QuotaExhausted",
            body={"id": str(uuid.uuid4()), "location": "us-east", "image": "arena"},
        ),
        _Call(
            "8bitedge",
            "httpx async",
            "read the account; rate limited twice",
            "GET",
            "/8bitedge/api/v1/me",
            [Reply.rate_limited(retry_after=0.05), Reply.rate_limited(retry_after=0.05)],
            "200 ok",
        ),
        _Call(
            "8bitedge",
            "requests",
            "read the account; one 503",
            "GET",
            "/8bitedge/api/v1/me",
            [Reply.error(503)],
            "200 ok",
        ),
        _Call(
            "8bitedge",
            "httpx",
            "send a batch; the same key is in progress",
            "POST",
            "/8bitedge/api/v1/games/batch",
            [Reply.error(409, "idempotency_conflict")],
            "200 ok",
            body={"items": [{"game": "arena"}]},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        ),
        _Call(
            "8bitedge",
            "httpx",
            "read the account; key revoked",
            "GET",
            "/8bitedge/api/v1/me",
            [Reply.error(401)],
            "raised Unauthorized",
        ),
        _Call(
            "8bitedge",
            "requests",
            "call an endpoint not built yet",
            "GET",
            "/8bitedge/api/v1/me",
            [Reply.error(501)],
            "raised NotImplementedByServer",
        ),
        _Call(
            "playwave",
            "httpx async",
            "heartbeat; the player ran out of G-coin",
            "POST",
            "/playwave/heartbeat",
            [Reply.business(result="CHARGE_EXHAUSTED")],
            "raised BusinessRejected",
            body={"sessionId": "s-1"},
        ),
        _Call(
            "playwave",
            "httpx",
            "heartbeat; one 503",
            "POST",
            "/playwave/heartbeat",
            [Reply.error(503), Reply.business(result="OK")],
            "200 ok",
            body={"sessionId": "s-1"},
        ),
        _Call(
            "playwave",
            "requests",
            "end a session already ended",
            "POST",
            "/playwave/session/end",
            [Reply.error(409)],
            "409 already_done",
            body={"sessionId": "s-1"},
        ),
        _Call(
            "playwave",
            "httpx async",
            "heartbeat; the session has ended",
            "POST",
            "/playwave/heartbeat",
            [Reply.error(410)],
            "raised SessionLost",
            body={"sessionId": "s-1"},
        ),
    ]


def _report(call: _Call, outcome: str, history: list[Attempt], trace_id: str | None) -> CallReport:
    statuses = [str(a.status) if a.status is not None else (a.error or "?") for a in history]
    return CallReport(
        vendor=call.vendor,
        client=call.client,
        call=call.title,
        statuses=statuses,
        waits=[round(a.delay, 3) for a in history[1:]],
        regions=[a.region for a in history if a.region is not None],
        outcome=outcome,
        expected=call.expected,
        trace_id=trace_id,
    )


def _final(response: Any) -> tuple[str, list[Attempt], str | None]:
    history = attempts(response)
    last = history[-1].classification if history else None
    category = last.category.value if last is not None else "ok"
    return f"{response.status_code} {category}", history, last.trace_id if last else None


def _raised(error: ResilienceError) -> tuple[str, list[Attempt], str | None]:
    label = f"raised {type(error).__name__}"
    if error.code:
        label += f" ({error.code})"
    return label, error.attempts, error.trace_id


def _sync_call(send: Callable[..., Any], sim: VendorSimulator, call: _Call, key: str) -> CallReport:
    headers = {"X-Sim-Key": key, "Authorization": "Bearer demo-token", **(call.headers or {})}
    if call.before is not None:
        method, path, body = call.before
        send(method, sim.url + path, json=body, headers={"Authorization": "Bearer demo-token"})
    try:
        response = send(call.method, sim.url + call.path, json=call.body, headers=headers)
        return _report(call, *_final(response))
    except ResilienceError as error:
        return _report(call, *_raised(error))


async def _async_call(
    send: Callable[..., Awaitable[Any]], sim: VendorSimulator, call: _Call, key: str
) -> CallReport:
    headers = {"X-Sim-Key": key, "Authorization": "Bearer demo-token", **(call.headers or {})}
    if call.before is not None:
        method, path, body = call.before
        await send(
            method, sim.url + path, json=body, headers={"Authorization": "Bearer demo-token"}
        )
    try:
        response = await send(call.method, sim.url + call.path, json=call.body, headers=headers)
        return _report(call, *_final(response))
    except ResilienceError as error:
        return _report(call, *_raised(error))


async def _play_async(sim: VendorSimulator, calls: list[tuple[_Call, str]]) -> list[CallReport]:
    reports = []
    for call, key in calls:
        async with httpx.AsyncClient(
            transport=AsyncResilientTransport(vendor=call.vendor, **_POLICY),
            event_hooks=async_httpx_event_hooks(vendor=call.vendor),
        ) as client:
            reports.append(await _async_call(client.request, sim, call, key))
    return reports


def play(sim: VendorSimulator) -> list[CallReport]:
    """Play every scripted call against ``sim``; the reports in script order."""
    reports: dict[int, CallReport] = {}
    pending_async: list[tuple[_Call, str]] = []
    order: list[int] = []
    for index, call in enumerate(_calls()):
        key = f"demo-{index}"
        sim.script(key, call.script)
        order.append(index)
        if call.client == "requests":
            with requests.Session() as session:
                session.mount("http://", ResilientAdapter(vendor=call.vendor, **_POLICY))
                session.hooks["response"].append(requests_response_hook(vendor=call.vendor))
                reports[index] = _sync_call(session.request, sim, call, key)
        elif call.client == "httpx":
            with httpx.Client(
                transport=ResilientTransport(vendor=call.vendor, **_POLICY),
                event_hooks=httpx_event_hooks(vendor=call.vendor),
            ) as client:
                reports[index] = _sync_call(client.request, sim, call, key)
        else:
            pending_async.append((call, key))
    async_indexes = [i for i in order if i not in reports]
    for index, report in zip(
        async_indexes, asyncio.run(_play_async(sim, pending_async)), strict=True
    ):
        reports[index] = report
    return [reports[i] for i in order]


def _table(reports: list[CallReport]) -> str:
    header = ("vendor", "client", "call", "attempts", "waits (s)", "regions", "outcome", "trace id")
    rows = [
        (
            r.vendor,
            r.client,
            r.call,
            " > ".join(r.statuses),
            ", ".join(f"{w:g}" for w in r.waits) or "-",
            " > ".join(r.regions) or "-",
            r.outcome + ("" if r.as_expected else f"  (EXPECTED {r.expected})"),
            (r.trace_id or "-")[:13],
        )
        for r in reports
    ]
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def run_demo(*, as_json: bool = False, metrics: bool = False) -> int:
    """Run the demo; 0 when every call ended as scripted.

    Args:
        as_json: print the results as JSON.
        metrics: also print the Prometheus metrics of the calls (an own registry).
    """
    from resilience.instrumentation import get_hooks, set_hooks

    registry = None
    before = get_hooks()
    if metrics:
        from prometheus_client import CollectorRegistry

        from resilience.instrumentation import PrometheusHook

        registry = CollectorRegistry()
        set_hooks([*before, PrometheusHook(registry)])
    started = time.monotonic()
    try:
        with VendorSimulator() as sim:
            reports = play(sim)
            sent = len(sim.received)
    finally:
        set_hooks(list(before))
    if registry is not None:
        from prometheus_client import generate_latest

        print(generate_latest(registry).decode(), end="")
    elapsed = time.monotonic() - started
    ok = all(r.as_expected for r in reports)
    if as_json:
        print(
            json.dumps(
                {
                    "calls": [{**asdict(r), "as_expected": r.as_expected} for r in reports],
                    "requests_sent": sent,
                    "seconds": round(elapsed, 3),
                    "ok": ok,
                },
                indent=2,
            )
        )
    else:
        for vendor in ("gameye", "8bitedge", "playwave"):
            print(f"\n{vendor}")
            print(_table([r for r in reports if r.vendor == vendor]))
        verdict = "every call ended as scripted" if ok else "SOME CALLS DID NOT END AS SCRIPTED"
        print(f"\n{len(reports)} calls, {sent} requests, {elapsed:.2f} s: {verdict}")
    return 0 if ok else 1
