"""``deadline`` bounds the whole call, network included; ``attempt_timeout`` each attempt.

The servers misbehave for real on 127.0.0.1, so these tests wait for real:
deadlines of a few hundred milliseconds, and the call must end within 0.25 s
after its deadline (the target of the contract) on every shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import requests

from tests._clients import SHELLS, Outcome
from tests._hostile import Hostile, drip_body, late, silent

Shell = Callable[..., Outcome]

DEADLINE = 0.3
OVERSHOOT = 0.25


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> Shell:
    return SHELLS[request.param]


def _timed(shell: Shell, url: str, method: str = "GET", **policy: object) -> tuple[Outcome, float]:
    started = time.monotonic()
    out = shell(method, url, {"backoff_initial": 0.05, **policy})
    return out, time.monotonic() - started


def _is_client_timeout(error: BaseException | None) -> bool:
    return isinstance(error, (httpx.TimeoutException, requests.Timeout))


def test_a_server_that_never_answers_holds_the_call_no_longer_than_the_deadline(
    shell: Shell,
) -> None:
    with Hostile(silent) as server:
        out, took = _timed(shell, server.url + "/x", deadline=DEADLINE)
    assert took < DEADLINE + OVERSHOOT
    assert _is_client_timeout(out.error)


def test_the_timeout_at_the_deadline_carries_the_attempt_history(shell: Shell) -> None:
    with Hostile(silent) as server:
        out, _ = _timed(shell, server.url + "/x", deadline=DEADLINE)
    assert out.attempts
    assert out.attempts[-1].error is not None


def test_a_dripping_error_body_holds_the_call_no_longer_than_the_deadline(shell: Shell) -> None:
    with Hostile(drip_body(503, every=0.05)) as server:
        out, took = _timed(shell, server.url + "/x", deadline=DEADLINE)
    assert took < DEADLINE + OVERSHOOT
    assert out.status == 503 or _is_client_timeout(out.error)


def test_a_second_attempt_gets_only_the_time_left(shell: Shell) -> None:
    """An attempt cut by attempt_timeout is retried, and the retry is cut to the deadline."""
    with Hostile(silent) as server:
        out, took = _timed(shell, server.url + "/x", deadline=DEADLINE, attempt_timeout=0.2)
        connections = server.connections
    assert connections == 2
    assert took < DEADLINE + OVERSHOOT
    assert _is_client_timeout(out.error)


def test_an_attempt_that_runs_out_is_retried_when_safe(shell: Shell) -> None:
    with Hostile(silent) as server:
        out, _took = _timed(shell, server.url + "/x", attempt_timeout=0.05, max_attempts=3)
        connections = server.connections
    assert connections == 3
    assert [a.error is not None for a in out.attempts] == [True, True, True]


def test_an_attempt_that_runs_out_of_a_post_is_not_repeated(shell: Shell) -> None:
    """Read timeout: the POST may have been processed."""
    with Hostile(silent) as server:
        out, _ = _timed(shell, server.url + "/x", "POST", attempt_timeout=0.05)
        connections = server.connections
    assert connections == 1
    assert _is_client_timeout(out.error)


def test_an_answer_within_the_deadline_is_returned(shell: Shell) -> None:
    with Hostile(late(0.05)) as server:
        out, _ = _timed(shell, server.url + "/x", deadline=1.0)
    assert out.status == 200


def test_no_attempt_starts_when_the_deadline_leaves_no_time_for_it(shell: Shell) -> None:
    """A backoff that would end right at the deadline is not slept, and nothing more is sent."""
    with Hostile(late(0.0, status=503)) as server:
        out, _ = _timed(
            shell, server.url + "/x", deadline=0.05, backoff_initial=0.05, jitter="none"
        )
        connections = server.connections
    assert out.status == 503
    assert connections == 1
