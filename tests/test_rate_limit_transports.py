"""Client-side pacing through the transports (``rate_limit=``)."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pytest
import requests
import responses

import resilience
from resilience import RateLimit, RateLimited
from tests.conftest import AsyncRecordingSleep, RecordingSleep

URL = "https://api.example/v1/me"

T = TypeVar("T")


def _on_the_sleeps_clock(transport: T, sleep: RecordingSleep) -> T:
    """``transport``, its monotonic clock moved by the waits ``sleep`` records and nothing else.

    On the real clock a wait is shortened by whatever time passes between two
    calls (a lot, on a loaded machine); here it is exactly what the limit says.
    """
    core: Any = transport._core  # type: ignore[attr-defined]
    core.monotonic = lambda: 1000.0 + sum(sleep.calls)
    return transport


def _ok_counter(sent: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    return httpx.MockTransport(answer)


def test_second_call_waits_for_its_slot(sleep: RecordingSleep) -> None:
    sent: list[httpx.Request] = []
    transport = resilience.ResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_second=10), sleep=sleep
    )
    client = httpx.Client(transport=_on_the_sleeps_clock(transport, sleep))
    client.get(URL)
    client.get(URL)
    assert len(sent) == 2
    assert sleep.calls == [pytest.approx(0.1)]


def test_a_wait_past_retry_after_max_fails_at_once_with_a_local_rate_limited(
    sleep: RecordingSleep,
) -> None:
    sent: list[httpx.Request] = []
    transport = resilience.ResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_minute=1), retry_after_max=5, sleep=sleep
    )
    client = httpx.Client(transport=transport)
    client.get(URL)
    with pytest.raises(RateLimited) as caught:
        client.get(URL)
    assert caught.value.code == "local_rate_limit"
    assert caught.value.response is None
    assert isinstance(caught.value, httpx.TransportError)
    assert caught.value.classification.retry_after == pytest.approx(60, abs=1)
    assert len(sent) == 1
    assert sleep.calls == []


def test_a_wait_past_the_deadline_fails_at_once(sleep: RecordingSleep) -> None:
    sent: list[httpx.Request] = []
    transport = resilience.ResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_second=1), deadline=0.5, sleep=sleep
    )
    client = httpx.Client(transport=transport)
    client.get(URL)
    with pytest.raises(RateLimited):
        client.get(URL)
    assert len(sent) == 1


def test_a_429_holds_the_next_call_for_its_retry_after(sleep: RecordingSleep) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0.5"})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200))

    transport = resilience.ResilientTransport(
        httpx.MockTransport(answer),
        rate_limit=RateLimit(per_second=1000, burst=100),
        max_attempts=1,
        sleep=sleep,
    )
    client = httpx.Client(transport=_on_the_sleeps_clock(transport, sleep))
    assert client.get(URL).status_code == 429
    assert client.get(URL).status_code == 200
    assert sleep.calls == [pytest.approx(0.5)]


def test_limits_are_per_host_unless_a_key_is_given(sleep: RecordingSleep) -> None:
    sent: list[httpx.Request] = []
    transport = resilience.ResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_minute=1), sleep=sleep
    )
    client = httpx.Client(transport=transport)
    client.get("https://a.example/")
    client.get("https://b.example/")
    assert len(sent) == 2
    shared = resilience.ResilientTransport(
        _ok_counter(sent),
        rate_limit=RateLimit(per_minute=1, key="api-key-1"),
        retry_after_max=5,
        sleep=sleep,
    )
    client = httpx.Client(transport=shared)
    client.get("https://a.example/")
    with pytest.raises(RateLimited):
        client.get("https://b.example/")


async def test_async_transport_paces_and_refuses_alike(async_sleep: AsyncRecordingSleep) -> None:
    sent: list[httpx.Request] = []
    transport = resilience.AsyncResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_second=10), sleep=async_sleep
    )
    async with httpx.AsyncClient(transport=_on_the_sleeps_clock(transport, async_sleep)) as client:
        await client.get(URL)
        await client.get(URL)
    assert async_sleep.calls == [pytest.approx(0.1)]
    refusing = resilience.AsyncResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_minute=1), retry_after_max=1
    )
    async with httpx.AsyncClient(transport=refusing) as client:
        await client.get(URL)
        with pytest.raises(RateLimited):
            await client.get(URL)


def test_requests_adapter_refuses_with_an_error_that_is_a_connection_error(
    sleep: RecordingSleep,
) -> None:
    with responses.RequestsMock() as mocked, requests.Session() as session:
        mocked.add("GET", URL, status=200)
        session.mount(
            "https://",
            resilience.ResilientAdapter(
                rate_limit=RateLimit(per_minute=1), retry_after_max=1, sleep=sleep
            ),
        )
        session.get(URL)
        with pytest.raises(requests.ConnectionError) as caught:
            session.get(URL)
        assert isinstance(caught.value, RateLimited)
        assert len(mocked.calls) == 1


def test_a_retry_the_limit_cannot_pace_in_time_returns_the_last_answer(
    sleep: RecordingSleep,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    transport = resilience.ResilientTransport(
        httpx.MockTransport(answer),
        rate_limit=RateLimit(per_minute=1),
        retry_after_max=1,
        retry_budget=None,
        sleep=sleep,
    )
    response = httpx.Client(transport=transport).get(URL)
    assert response.status_code == 503
    history = resilience.attempts(response)
    assert len(history) == 1
    assert history[0].outcome.startswith("local rate limit")


def test_a_local_refusal_is_logged_without_credentials(
    sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[httpx.Request] = []
    transport = resilience.ResilientTransport(
        _ok_counter(sent), rate_limit=RateLimit(per_minute=1), retry_after_max=5, sleep=sleep
    )
    client = httpx.Client(transport=transport)
    url = "https://user:secret@api.example/v1/me?api_key=SECRET"
    client.get(url)
    with caplog.at_level("WARNING", logger="resilience"), pytest.raises(RateLimited):
        client.get(url)
    [record] = caplog.records
    assert "local rate limit" in record.getMessage()
    assert "SECRET" not in record.getMessage()
    assert "secret" not in record.getMessage()


def _answers(*responses_: httpx.Response) -> httpx.MockTransport:
    """Answers in turn; the last one repeats."""
    answers = list(responses_)

    def answer(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return httpx.MockTransport(answer)


def _limited(headers: dict[str, str], sleep: RecordingSleep) -> list[float]:
    """The waits of one GET answered 429 with ``headers``, then 200."""
    transport = resilience.ResilientTransport(
        _answers(httpx.Response(429, headers=headers), httpx.Response(200)),
        rate_limit=RateLimit(per_second=100),
        retry_budget=None,
        jitter="none",
        backoff_initial=0.0,
        sleep=sleep,
    )
    with httpx.Client(transport=_on_the_sleeps_clock(transport, sleep)) as client:
        assert client.get(URL).status_code == 200
    return sleep.calls


def test_a_429_with_a_malformed_ratelimit_item_holds_nothing(sleep: RecordingSleep) -> None:
    """``r=-1;t=10`` is ignored whole: its ``t`` does not hold every caller for 10 s."""
    assert sum(_limited({"RateLimit": '"default";r=-1;t=10'}, sleep)) < 0.1


def test_a_429_with_discord_reset_after_holds_that_long(sleep: RecordingSleep) -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.25"}
    assert max(_limited(headers, sleep)) == pytest.approx(0.25)
