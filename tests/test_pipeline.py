"""The strategy pipeline and the vendor rules, as users meet them on every shell.

Each test pins a defect of the first design: vendor rules applied to every
vendor, a rate limiter deaf to retried successes, state that grew with every
host, and two breaker algorithms depending on ``store=``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import resilience
from resilience import CircuitBreaker, RateLimit
from resilience.retry.flow import Core
from resilience.stores import MemoryStore
from resilience.strategies.base import Outcome
from resilience.strategies.rate_limit import RateLimiter
from tests._clients import SHELLS
from tests._clients import Outcome as CallOutcome
from tests._loopback import Loopback, Seen, sequence
from tests._strategies import CircuitProbe, FakeCall

Shell = Callable[..., CallOutcome]


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> Shell:
    return SHELLS[request.param]


def _no_sleep(seconds: float) -> None:
    """Sleeps nothing (the async shell wraps it)."""


# -- vendor rules stay with their vendor -------------------------------------------------


def test_generic_post_to_a_session_path_answered_502_is_sent_once(shell: Shell) -> None:
    """Only Gameye's POST /session carries its own idempotency, not anyone's."""
    with Loopback(sequence(502, 201)) as server:
        body = json.dumps({"id": "abc", "name": "x"}).encode()
        out = shell("POST", server.url + "/v1/session", {"sleep": _no_sleep}, content=body)
        assert out.status == 502
        assert len(server.seen) == 1


def test_gameye_post_session_answered_502_is_sent_again(shell: Shell) -> None:
    with Loopback(sequence(502, 201)) as server:
        body = json.dumps({"id": "abc", "location": "eu-west"}).encode()
        policy = {"sleep": _no_sleep, "vendor": "gameye"}
        out = shell("POST", server.url + "/session", policy, content=body)
        assert out.status == 201
        assert len(server.seen) == 2


def test_generic_420_waits_the_policys_backoff_not_gameyes_two_to_five_seconds(
    shell: Shell,
) -> None:
    waits: list[float] = []
    with Loopback(sequence(420, 200)) as server:
        policy = {"sleep": waits.append, "backoff_initial": 0.01, "jitter": "none"}
        out = shell("GET", server.url + "/x", policy)
    assert out.status == 200
    assert waits == [0.01]


def test_gameye_420_waits_two_to_five_seconds(shell: Shell) -> None:
    waits: list[float] = []
    with Loopback(sequence(420, 200)) as server:
        policy = {"sleep": waits.append, "backoff_initial": 0.01, "vendor": "gameye"}
        shell("GET", server.url + "/x", policy)
    assert len(waits) == 1
    assert 2.0 <= waits[0] <= 5.0


def test_generic_vendor_has_no_region_field_so_a_420_does_not_fail_over(shell: Shell) -> None:
    with Loopback(sequence(420)) as server:
        body = json.dumps({"location": "eu-west"}).encode()
        policy = {"sleep": _no_sleep, "regions": ["eu-west", "us-east"], "capacity_retries": 0}
        out = shell("POST", server.url + "/things", policy, content=body)
    assert out.status == 420
    assert [json.loads(s.body)["location"] for s in server.seen] == ["eu-west"]
    assert "locator" in out.attempts[-1].outcome


def test_a_plugin_conflict_after_an_unknown_outcome_stays_a_conflict(shell: Shell) -> None:
    """Only a vendor that says so turns "already exists" into "done"."""

    class Strict:
        name = "strict"
        success_body = False

        def matches(self, payload: Any) -> bool:
            return False

        def classify(self, view: Any, payload: Any, retry_after: float | None) -> Any:
            category = resilience.detectors.status_category(view.status)
            if view.status == 409:
                category = resilience.Category.CONFLICT
            return resilience.Classification.of(self.name, category, view.status)

    with Loopback(sequence(500, 409)) as server:
        policy = {
            "sleep": _no_sleep,
            "detectors": [Strict()],
            "vendor": "strict",
            "idempotency_key": True,
        }
        out = shell("POST", server.url + "/session", policy, content=b"{}")
    assert out.status == 409
    last = out.attempts[-1].classification
    assert last is not None
    assert last.category is resilience.Category.CONFLICT


def test_the_trace_id_of_a_success_comes_from_the_vendors_detector(shell: Shell) -> None:
    def answer(seen: Seen) -> Any:
        return 200, {"X-Request-Id": "req-1", "Content-Type": "text/plain"}, b"ok"

    with Loopback(answer) as server:
        out = shell("GET", server.url + "/x", {"sleep": _no_sleep})
    classification = out.attempts[0].classification
    assert classification is not None
    assert classification.trace_id == "req-1"


# -- one pipeline: every success is heard ------------------------------------------------


def test_the_rate_limiter_hears_a_success_that_came_after_a_retry(shell: Shell) -> None:
    """``RateLimit-Remaining: 0`` on the retried success holds the next call."""

    def answer(seen: Seen) -> Any:
        if len(server.seen) == 1:
            return 503
        return 200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}, b"ok"

    store = MemoryStore()
    limit = RateLimit(per_second=1000, key="k")
    with Loopback(answer) as server:
        policy = {"sleep": _no_sleep, "rate_limit": limit, "store": store}
        out = shell("GET", server.url + "/x", policy)
    assert out.status == 200
    assert len(out.attempts) == 2
    limiter = limit.build(store, wall=lambda: 0.0)
    import time

    assert limiter.would_wait("k", time.monotonic()) > 20


# -- one store, one algorithm, flat memory -----------------------------------------------


@pytest.mark.parametrize("store", [None, "memory"])
def test_the_breaker_opens_after_the_same_calls_with_or_without_a_store(
    store: str | None,
) -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    breaker = CircuitBreaker(min_calls=4, open_for=60)
    options: dict[str, Any] = {"circuit_breaker": breaker, "max_attempts": 1}
    if store is not None:
        options["store"] = MemoryStore()
    client = httpx.Client(
        transport=resilience.ResilientTransport(httpx.MockTransport(answer), **options)
    )
    for _ in range(4):
        client.get("https://api.example/x")
    with pytest.raises(resilience.CircuitOpen):
        client.get("https://api.example/x")
    assert calls == 4


def _retained(work: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_breaker_state_of_idle_hosts_expires_to_nothing() -> None:
    """10,000 hosts called once each, then idle past every key's expiry: 0 entries left."""
    store = MemoryStore()
    probe = CircuitProbe(CircuitBreaker(window=10.0, open_for=5.0), store)
    for i in range(10_000):
        probe.record((f"host-{i}.example", None), i % 2 == 0, 0.0)
        probe.allow((f"host-{i}.example", None), 0.0)
    assert len(store) > 0
    assert store.purge(1_000.0) == 0


@pytest.mark.timeout(300)  # 22,000 hosts under tracemalloc: 40 s and more on a loaded machine
def test_memory_per_idle_host_is_zero_after_expiry() -> None:
    """What idle hosts leave behind does not grow with their number (bounded caches only)."""

    def retained(hosts: int) -> int:
        store = MemoryStore()
        probe = CircuitProbe(CircuitBreaker(window=10.0, open_for=5.0), store)
        probe.record(("warm.example", None), True, 0.0)  # first-use allocations
        store.purge(1_000.0)

        def many_hosts() -> None:
            for i in range(hosts):
                probe.record((f"host-{i}.example", None), True, 0.0)
                probe.allow((f"host-{i}.example", None), 0.0)
            store.purge(1_000.0)

        return _retained(many_hosts)

    few, many = retained(2_000), retained(20_000)
    assert (many - few) / 18_000 < 1.0  # bytes per further host


def test_rate_limiter_forgets_keys_once_recovered() -> None:
    limiter = RateLimiter(RateLimit(per_second=10, recovery=1.0))
    for i in range(1_000):
        limiter.on_throttled(f"key-{i}", 0.0)
    assert len(limiter) == 1_000
    for i in range(64):  # much later, every early key is back at the plan
        limiter.on_throttled(f"late-{i}", 1_000.0)
    assert len(limiter) <= 64


def test_strategies_are_one_pipeline_in_policy_order() -> None:
    core = Core(
        resilience.Policy(circuit_breaker=True, rate_limit=RateLimit(per_second=5)),
    )
    kinds = [type(s).__name__ for s in core.pipeline.strategies]
    assert kinds == ["BreakerStrategy", "RateLimiter", "BudgetStrategy"]


def test_a_strategy_is_called_only_for_the_duties_it_has() -> None:
    core = Core(resilience.Policy())
    assert not core.pipeline.gates  # the budget gates nothing
    call = FakeCall("api.example")
    core.pipeline.record(call, Outcome.FAILURE, 0.0)  # type: ignore[arg-type]
    assert core.store.get("retry-budget", 0.0) == 9.0


# -- closed in finally -------------------------------------------------------------------


class _Interrupted(BaseException):
    """Stands for KeyboardInterrupt in a sleep."""


def test_an_interrupted_backoff_closes_the_response_and_the_flow() -> None:
    closed: list[bool] = []

    class Stream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"x" * 70_000  # over the bounded read: the body stays streaming

        def close(self) -> None:
            closed.append(True)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, stream=Stream())

    def interrupted(seconds: float) -> None:
        raise _Interrupted

    transport = resilience.ResilientTransport(httpx.MockTransport(answer), sleep=interrupted)
    with pytest.raises(_Interrupted), httpx.Client(transport=transport) as client:
        client.get("https://api.example/x")
    assert closed  # the 503 was not returned: its stream is closed


def test_a_cancelled_async_call_closes_the_response_it_holds() -> None:
    closed: list[bool] = []
    started = threading.Event()

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            started.set()
            yield b"x"
            await asyncio.sleep(10)  # a body that drips: cancelled here
            yield b"y"

        async def aclose(self) -> None:
            closed.append(True)

    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, stream=Stream())

    async def main() -> None:
        transport = resilience.AsyncResilientTransport(httpx.MockTransport(answer))
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.ensure_future(client.get("https://api.example/x"))
            while not started.is_set():
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert closed


# -- a first-attempt success keeps what attempts() reads ------------------------------


@pytest.mark.parametrize(
    "policy",
    [{}, {"circuit_breaker": CircuitBreaker(), "rate_limit": RateLimit(per_second=1000)}],
    ids=["defaults", "breaker-and-rate-limit"],
)
def test_first_attempt_success_attempts_carry_the_answers_trace_id(
    shell: Shell, policy: dict[str, Any]
) -> None:
    """The call lets go of the answer once it returns it; attempts() still reads
    the answer's X-Request-Id, whether or not a strategy read the answer."""
    with Loopback(lambda seen: (200, {"X-Request-Id": "req-42"})) as server:
        out = shell("GET", server.url + "/x", policy)
    assert out.status == 200
    [attempt] = out.attempts
    assert attempt.classification is not None
    assert attempt.classification.trace_id == "req-42"
