"""``deadline`` bounds the whole call, network included; ``attempt_timeout`` each attempt.

The servers misbehave for real on 127.0.0.1, so these tests wait for real:
deadlines of a few hundred milliseconds, and the call must end within 0.25 s
after its deadline (the target of the contract) on every shell.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import requests

import resilience
from tests._clients import Outcome
from tests._hostile import Hostile, drip_body, late, silent

DEADLINE = 0.3
OVERSHOOT = 0.25


@pytest.fixture(params=["requests", "httpx", "httpx-async"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _timed(shell: str, url: str, method: str = "GET", **policy: Any) -> tuple[Outcome, float]:
    """The outcome of one call, and how long the call took (the client is built first)."""
    policy = {"backoff_initial": 0.05, **policy}
    if shell == "requests":
        with requests.Session() as session:
            session.mount("http://", resilience.ResilientAdapter(**policy))
            started = time.monotonic()
            try:
                status, error = session.request(method, url, timeout=5).status_code, None
            except requests.RequestException as exc:
                status, error = None, exc
            took = time.monotonic() - started
    elif shell == "httpx":
        transport = resilience.ResilientTransport(**policy)
        with httpx.Client(transport=transport, timeout=5) as client:
            started = time.monotonic()
            try:
                status, error = client.request(method, url).status_code, None
            except httpx.HTTPError as exc:
                status, error = None, exc
            took = time.monotonic() - started
    else:

        async def main() -> tuple[int | None, BaseException | None, float]:
            transport = resilience.AsyncResilientTransport(**policy)
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                started = time.monotonic()
                try:
                    answer: int | None = (await client.request(method, url)).status_code
                    failure: BaseException | None = None
                except httpx.HTTPError as exc:
                    answer, failure = None, exc
                return answer, failure, time.monotonic() - started

        status, error, took = asyncio.run(main())
    history = resilience.attempts(error) if error is not None else []
    return Outcome(status, history, error), took


def _is_client_timeout(error: BaseException | None) -> bool:
    return isinstance(error, (httpx.TimeoutException, requests.Timeout))


def test_a_server_that_never_answers_holds_the_call_no_longer_than_the_deadline(
    shell: str,
) -> None:
    with Hostile(silent) as server:
        out, took = _timed(shell, server.url + "/x", deadline=DEADLINE)
    assert took < DEADLINE + OVERSHOOT
    assert _is_client_timeout(out.error)


def test_the_timeout_at_the_deadline_carries_the_attempt_history(shell: str) -> None:
    with Hostile(silent) as server:
        out, _ = _timed(shell, server.url + "/x", deadline=DEADLINE)
    assert out.attempts
    assert out.attempts[-1].error is not None


def test_a_dripping_error_body_holds_the_call_no_longer_than_the_deadline(shell: str) -> None:
    with Hostile(drip_body(503, every=0.05)) as server:
        out, took = _timed(shell, server.url + "/x", deadline=DEADLINE)
    assert took < DEADLINE + OVERSHOOT
    assert out.status == 503 or _is_client_timeout(out.error)


def test_a_second_attempt_gets_only_the_time_left(shell: str) -> None:
    """An attempt cut by attempt_timeout is retried, and the retry is cut to the deadline.

    The first attempt ends at 0.3 s, its backoff by 0.35 s: the second gets the
    0.2 s or so left of 0.55 s (not its 0.3 s), room enough for it to start
    even when the machine is slow to notice the first one's timeout.
    """
    deadline = 0.55
    with Hostile(silent) as server:
        out, took = _timed(shell, server.url + "/x", deadline=deadline, attempt_timeout=0.3)
        connections = server.accepted(2)
    assert connections == 2
    assert took < deadline + OVERSHOOT
    assert _is_client_timeout(out.error)


def test_an_attempt_that_runs_out_is_retried_when_safe(shell: str) -> None:
    with Hostile(silent) as server:
        out, _took = _timed(shell, server.url + "/x", attempt_timeout=0.05, max_attempts=3)
        connections = server.accepted(3)
    assert connections == 3
    assert [a.error is not None for a in out.attempts] == [True, True, True]


def test_an_attempt_that_runs_out_of_a_post_is_not_repeated(shell: str) -> None:
    """Read timeout: the POST may have been processed."""
    with Hostile(silent) as server:
        out, _ = _timed(shell, server.url + "/x", "POST", attempt_timeout=0.05)
        connections = server.accepted(1)
    assert connections == 1
    assert _is_client_timeout(out.error)


def test_an_answer_within_the_deadline_is_returned(shell: str) -> None:
    with Hostile(late(0.05)) as server:
        out, _ = _timed(shell, server.url + "/x", deadline=1.0)
    assert out.status == 200


def test_no_attempt_starts_when_the_deadline_leaves_no_time_for_it(shell: str) -> None:
    """A backoff that would end right at the deadline is not slept, and nothing more is sent."""
    with Hostile(late(0.0, status=503)) as server:
        out, _ = _timed(
            shell, server.url + "/x", deadline=0.05, backoff_initial=0.05, jitter="none"
        )
        connections = server.connections
    assert out.status == 503
    assert connections == 1


def _timeouts_sent(client_timeout: float, deadline: float, *, asynchronous: bool) -> Any:
    """The timeouts an httpx request reached the wrapped transport with."""
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        return httpx.Response(200)

    if asynchronous:

        async def main() -> None:
            transport = resilience.AsyncResilientTransport(
                transport=httpx.MockTransport(handler), deadline=deadline
            )
            async with httpx.AsyncClient(transport=transport, timeout=client_timeout) as client:
                await client.get("http://vendor.test/")

        asyncio.run(main())
    else:
        transport = resilience.ResilientTransport(
            transport=httpx.MockTransport(handler), deadline=deadline
        )
        with httpx.Client(transport=transport, timeout=client_timeout) as client:
            client.get("http://vendor.test/")
    return seen[0]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["httpx", "httpx-async"])
def test_timeouts_that_fit_the_deadline_are_sent_as_they_are(asynchronous: bool) -> None:
    sent = _timeouts_sent(5.0, 30.0, asynchronous=asynchronous)
    assert sent == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["httpx", "httpx-async"])
def test_the_same_timeouts_are_cut_once_a_deadline_is_shorter(asynchronous: bool) -> None:
    # The first call finds 5 s timeouts fitting 30 s; the same timeouts do not fit 2 s.
    _timeouts_sent(5.0, 30.0, asynchronous=asynchronous)
    sent = _timeouts_sent(5.0, 2.0, asynchronous=asynchronous)
    assert set(sent) == {"connect", "read", "write", "pool"}
    assert all(0.0 < value <= 2.0 for value in sent.values())
