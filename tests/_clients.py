"""One way to send a request through each of the three resilient shells.

Integration tests are parametrised over these so that every behaviour is shown
for the requests adapter, the httpx transport and the async httpx transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import requests

import resilience


@dataclass
class Outcome:
    """What a call ended with: a response (status, body) or an exception."""

    status: int | None
    attempts: list[resilience.Attempt]
    error: BaseException | None = None
    body: bytes = b""


def _via_requests(method: str, url: str, policy: dict[str, Any], **kw: Any) -> Outcome:
    with requests.Session() as session:
        session.mount("http://", resilience.ResilientAdapter(**policy))
        if "content" in kw:
            kw["data"] = kw.pop("content")
        try:
            response = session.request(method, url, timeout=5, **kw)
        except requests.RequestException as exc:
            return Outcome(None, resilience.attempts(exc), exc)
        return Outcome(response.status_code, resilience.attempts(response), body=response.content)


def _via_httpx(method: str, url: str, policy: dict[str, Any], **kw: Any) -> Outcome:
    with httpx.Client(transport=resilience.ResilientTransport(**policy), timeout=5) as client:
        try:
            response = client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            return Outcome(None, resilience.attempts(exc), exc)
        return Outcome(response.status_code, resilience.attempts(response), body=response.content)


def _via_httpx_async(
    method: str, url: str, policy: dict[str, Any], *, backend: str = "asyncio", **kw: Any
) -> Outcome:
    async def run() -> Outcome:
        sleep = policy.get("sleep")
        if sleep is not None and not asyncio.iscoroutinefunction(sleep):
            sync_sleep = sleep

            async def async_sleep(seconds: float) -> None:
                sync_sleep(seconds)

            policy_async = {**policy, "sleep": async_sleep}
        else:
            policy_async = policy
        transport = resilience.AsyncResilientTransport(**policy_async)
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            try:
                response = await client.request(method, url, **kw)
            except httpx.HTTPError as exc:
                return Outcome(None, resilience.attempts(exc), exc)
            return Outcome(
                response.status_code, resilience.attempts(response), body=response.content
            )

    result: Outcome = anyio.run(run, backend=backend)
    return result


def _via_httpx_trio(method: str, url: str, policy: dict[str, Any], **kw: Any) -> Outcome:
    return _via_httpx_async(method, url, policy, backend="trio", **kw)


#: The async shell under trio, for behaviour whose code differs by runtime.
TRIO_SHELL: dict[str, Callable[..., Outcome]] = {"httpx-async-trio": _via_httpx_trio}

SHELLS: dict[str, Callable[..., Outcome]] = {
    "requests": _via_requests,
    "httpx": _via_httpx,
    "httpx-async": _via_httpx_async,
}
