"""The testing mode: no real waits, fresh budgets per test, fewer attempts on demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

import resilience
from resilience.testing import is_testing, set_testing

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _off_afterwards() -> Iterator[None]:
    yield
    set_testing(False)


def _failing(statuses: list[int]) -> httpx.MockTransport:
    answers = iter(statuses)
    return httpx.MockTransport(lambda request: httpx.Response(next(answers, 200)))


def test_retries_do_not_wait_for_real() -> None:
    set_testing(True)
    transport = resilience.ResilientTransport(_failing([503, 503, 503]), backoff_initial=5.0)
    started = time.monotonic()
    with httpx.Client(transport=transport) as client:
        assert client.get("https://api.example/x").status_code == 200
    assert time.monotonic() - started < 1.0


def test_async_retries_do_not_wait_for_real() -> None:
    async def main() -> int:
        transport = resilience.AsyncResilientTransport(_failing([503, 503]), backoff_initial=5.0)
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get("https://api.example/x")).status_code

    set_testing(True)
    started = time.monotonic()
    assert asyncio.run(main()) == 200
    assert time.monotonic() - started < 1.0


def test_an_injected_sleep_still_hears_the_delays() -> None:
    waits: list[float] = []
    set_testing(True)
    transport = resilience.ResilientTransport(
        _failing([503]), sleep=waits.append, backoff_initial=0.5, jitter="none"
    )
    with httpx.Client(transport=transport) as client:
        client.get("https://api.example/x")
    assert waits == [0.5]


def test_attempts_replaces_max_attempts() -> None:
    set_testing(True, attempts=2)
    transport = resilience.ResilientTransport(_failing([503] * 10))
    with httpx.Client(transport=transport) as client:
        response = client.get("https://api.example/x")
    assert len(resilience.attempts(response)) == 2


def test_switching_it_on_gives_a_module_level_client_a_full_budget() -> None:
    client = httpx.Client(
        transport=resilience.ResilientTransport(
            _failing([503] * 40), sleep=lambda s: None, retry_budget=resilience.RetryBudget(4)
        )
    )
    for _ in range(5):  # an earlier test spent the budget: no more retries
        client.get("https://api.example/x")
    assert len(resilience.attempts(client.get("https://api.example/x"))) == 1
    set_testing(True)  # 4 tokens again: one retry before half the bucket is spent
    assert len(resilience.attempts(client.get("https://api.example/x"))) == 2


def test_as_a_context_manager_it_restores_the_mode_before() -> None:
    assert not is_testing()
    with set_testing(True, attempts=1):
        assert is_testing()
    assert not is_testing()


@pytest.mark.parametrize(
    ("testing", "attempts"), [("true", None), (1, None), (True, 0), (True, 1.5)]
)
def test_nonsense_is_refused(testing: object, attempts: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        set_testing(testing, attempts=attempts)  # type: ignore[arg-type]


def test_the_pytest_plugin_starts_every_test_afresh(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx, resilience
        from resilience.testing import set_testing

        set_testing(True)
        client = httpx.Client(transport=resilience.ResilientTransport(
            httpx.MockTransport(lambda r: httpx.Response(503)),
            retry_budget=resilience.RetryBudget(4),
        ))

        def test_spends_the_budget():
            for _ in range(5):
                client.get("https://api.example/x")
            assert len(resilience.attempts(client.get("https://api.example/x"))) == 1

        def test_starts_with_a_full_budget():
            assert len(resilience.attempts(client.get("https://api.example/x"))) == 2
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:benchmark", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)


def test_the_plugin_does_not_import_the_simulator() -> None:
    import subprocess
    import sys

    code = (
        "import sys, resilience.testing._plugin; "
        "print('resilience.testing._simulator' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
