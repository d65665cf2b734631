"""Hedged requests: a late attempt races a copy, and the first usable answer wins.

The loopback server scripts each request by its arrival order. A "late"
answer does not sleep a fixed time: it waits until the test (or a later
request) releases it, so a test that hedges finishes at once, and one that
failed to hedge would wait for the release and fail its assertions.

The copies of a request are identical, and on a loaded machine the hedge may
reach the server before the attempt it copies: assertions about the copies
of one race name which answer won and what the other became, not which
copy was sent first.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import requests
import trustme

import resilience
from resilience.instrumentation import AttemptEvent, CallEvent
from resilience.retry.racing import Race
from resilience.strategies.base import Outcome as Verdict
from resilience.strategies.hedge import MIN_SAMPLES, HedgeStrategy, LatencySketch
from tests._clients import SHELLS, TRIO_SHELL, Outcome
from tests._loopback import Answer, Loopback, Seen

#: Long enough that a test still waiting for it has failed; never waited when hedging works.
HELD = 5.0


class Script:
    """Answers by arrival order: ``late`` requests wait for :meth:`release`."""

    def __init__(self, *answers: Answer | Callable[[], Answer]) -> None:
        self._answers = answers
        self._count = itertools.count()
        self._lock = threading.Lock()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def __call__(self, seen: Seen) -> Answer:
        with self._lock:
            i = next(self._count)
        answer = self._answers[min(i, len(self._answers) - 1)]
        return answer() if callable(answer) else answer

    def late(self, answer: Answer) -> Callable[[], Answer]:
        """``answer``, once released (or after :data:`HELD` seconds)."""

        def held() -> Answer:
            self.released.wait(HELD)
            return answer

        return held


def body(text: str) -> Answer:
    return 200, {"Content-Type": "text/plain"}, text.encode()


HEDGE = resilience.Hedge(delay=0.02)


def race_of(attempts: list[resilience.Attempt]) -> list[tuple[int | None, str]]:
    """The first two attempts (one race) as (status, outcome), winner last."""
    return sorted(
        ((a.status, a.outcome) for a in attempts[:2]),
        key=lambda pair: pair[1] not in ("cancelled", "superseded"),
    )


#: The three shells, and the async one under trio too: asyncio and trio race
#: copies by different code (a loop timer, a task group).
RACERS = {**SHELLS, **TRIO_SHELL}


@pytest.fixture(params=sorted(RACERS))
def send(request: pytest.FixtureRequest) -> Callable[..., Outcome]:
    return RACERS[request.param]


def _run(
    send: Callable[..., Outcome],
    script: Script,
    method: str = "GET",
    request: dict[str, Any] | None = None,
    **policy: Any,
) -> tuple[Outcome, Loopback]:
    policy.setdefault("hedge", HEDGE)
    policy.setdefault("instrumentation", [])
    with Loopback(script) as server:
        try:
            outcome = send(method, server.url + "/x", policy, **(request or {}))
        finally:
            script.release()
    return outcome, server


def test_a_late_answer_is_hedged_and_the_fast_copy_wins(send: Callable[..., Outcome]) -> None:
    script = Script()
    script._answers = (script.late(body("late")), body("fast"))
    outcome, _server = _run(send, script)
    assert (outcome.status, outcome.body) == (200, b"fast")
    assert [(a.number, a.reason) for a in outcome.attempts] == [(1, "first"), (2, "hedge")]
    assert race_of(outcome.attempts) == [(None, "cancelled"), (200, "return")]
    assert outcome.attempts[1].delay >= HEDGE.delay


def test_a_fast_answer_is_not_hedged(send: Callable[..., Outcome]) -> None:
    script = Script(body("first"))
    outcome, server = _run(send, script, hedge=resilience.Hedge(delay=2.0))
    assert outcome.body == b"first"
    assert len(server.seen) == 1
    assert [a.reason for a in outcome.attempts] == ["first"]


def _hedge_senders() -> int:
    """Threads sending hedged copies now (the timer excluded)."""
    return sum(
        1
        for t in threading.enumerate()
        if t.name.startswith("resilience-hedge-") and t.name[-1].isdigit()
    )


@pytest.mark.parametrize("shell", ["requests", "httpx"])
def test_a_sync_race_that_needs_no_hedge_sends_from_the_callers_thread(shell: str) -> None:
    """The first copy goes from the caller's thread (a hedge that wins cuts
    it short): fast answers start no thread to send from."""
    before = _hedge_senders()
    hedge = resilience.Hedge(delay=2.0)
    with Loopback(Script(body("first"))) as server:
        url = server.url + "/x"
        if shell == "requests":
            with requests.Session() as session:
                session.mount("http://", resilience.ResilientAdapter(hedge=hedge))
                assert [session.get(url, timeout=5).status_code for _ in range(5)] == [200] * 5
                during = _hedge_senders()
        else:
            with httpx.Client(transport=resilience.ResilientTransport(hedge=hedge)) as client:
                assert [client.get(url).status_code for _ in range(5)] == [200] * 5
                during = _hedge_senders()
    assert during == before


def test_under_asyncio_a_race_that_needs_no_hedge_starts_no_task() -> None:
    """Copy 0 is sent by the caller itself and a hedge is a loop timer until
    due: a fast answer costs no task (a task per copy costs the caller two
    turns of a busy loop)."""
    started: list[object] = []

    async def run(url: str) -> int:
        loop = asyncio.get_running_loop()

        def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            started.append(getattr(coro, "__qualname__", coro))
            return asyncio.Task(coro, loop=loop, **kw)

        policy = {"hedge": resilience.Hedge(delay=2.0), "instrumentation": []}
        async with httpx.AsyncClient(
            transport=resilience.AsyncResilientTransport(**policy)
        ) as client:
            await client.get(url)  # the connection opened before counting
            loop.set_task_factory(counting)
            try:
                return (await client.get(url)).status_code
            finally:
                loop.set_task_factory(None)

    with Loopback(Script(body("first"))) as server:
        assert asyncio.run(run(server.url + "/x")) == 200
    assert started == []


def test_the_copy_still_in_flight_when_another_answers_is_cancelled(
    send: Callable[..., Outcome],
) -> None:
    script = Script()
    # The first request to arrive is answered once the second has arrived;
    # the second is never answered in time.
    first = script.late(body("answered"))

    def never() -> Answer:
        script.release()
        threading.Event().wait(HELD)
        return body("never")

    script._answers = (first, never)
    outcome, _server = _run(send, script)
    assert outcome.body == b"answered"
    assert race_of(outcome.attempts) == [(None, "cancelled"), (200, "return")]


def test_a_hedge_that_wins_frees_the_caller_while_the_first_copy_hangs(
    send: Callable[..., Outcome],
) -> None:
    """The first copy's answer is held until the call has returned: the call
    returns with the hedge's answer, without waiting for it (the sync shells
    cut the first copy's connection short)."""
    script = Script()
    script._answers = (script.late(body("late")), body("fast"))
    started = time.monotonic()
    outcome, _server = _run(send, script)
    assert outcome.body == b"fast"
    assert time.monotonic() - started < HELD / 2


@pytest.mark.parametrize("shell", ["requests", "httpx", "httpx-async"])
def test_over_tls_a_hedge_that_wins_frees_the_caller(shell: str, tmp_path: Path) -> None:
    """The first copy's TLS read is cut short as a plain one is."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    script = Script()
    script._answers = (script.late(body("late")), body("fast"))
    hedge = resilience.Hedge(delay=0.02)
    started = time.monotonic()
    with Loopback(script, tls=server_tls) as server:
        url = server.url + "/x"
        try:
            if shell == "requests":
                with requests.Session() as session:
                    session.mount("https://", resilience.ResilientAdapter(hedge=hedge))
                    text = session.get(url, timeout=5, verify=str(ca_file)).text
            elif shell == "httpx":
                inner = httpx.HTTPTransport(verify=client_tls)
                transport = resilience.ResilientTransport(inner, hedge=hedge)
                with httpx.Client(transport=transport, timeout=5) as client:
                    text = client.get(url).text
            else:

                async def run() -> str:
                    inner = httpx.AsyncHTTPTransport(verify=client_tls)
                    transport = resilience.AsyncResilientTransport(inner, hedge=hedge)
                    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                        return (await client.get(url)).text

                text = asyncio.run(run())
        finally:
            script.release()
    assert text == "fast"
    assert time.monotonic() - started < HELD / 2


def _get_with_read_timeout(shell: str, url: str, read_timeout: float, **options: Any) -> None:
    """GET ``url`` through ``shell`` with a client read timeout of ``read_timeout`` seconds."""
    if shell == "requests":
        with requests.Session() as session:
            session.mount("http://", resilience.ResilientAdapter(**options))
            session.get(url, timeout=(5, read_timeout))
        return
    timeout = httpx.Timeout(5, read=read_timeout)
    if shell == "httpx":
        transport = resilience.ResilientTransport(**options)
        with httpx.Client(transport=transport, timeout=timeout) as client:
            client.get(url)
        return

    async def run() -> None:
        transport = resilience.AsyncResilientTransport(**options)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            await client.get(url)

    asyncio.run(run())


@pytest.mark.parametrize("shell", ["requests", "httpx", "httpx-async"])
def test_a_read_timeout_shorter_than_the_hedge_delay_ends_the_read_before_any_copy(
    shell: str,
) -> None:
    """The client's own read timeout is kept: an answer later than it fails the
    attempt at that timeout, before the copy that would have been due later
    (the retry that follows is the second attempt, and the last)."""
    script = Script()
    script._answers = (script.late(body("late")),)
    options: dict[str, Any] = {
        "hedge": resilience.Hedge(delay=HELD / 10),
        "max_attempts": 2,
        "backoff_initial": 0.001,
        "backoff_max": 0.001,
    }
    timed_out = (requests.exceptions.RequestException, httpx.ReadTimeout)
    with Loopback(script) as server:
        try:
            with pytest.raises(timed_out) as caught:
                _get_with_read_timeout(shell, server.url + "/x", 0.05, **options)
        finally:
            script.release()
    assert [a.reason for a in resilience.attempts(caught.value)] == ["first", "retry"]


def test_a_post_without_an_idempotency_key_is_never_hedged(
    send: Callable[..., Outcome],
) -> None:
    script = Script()
    script._answers = (script.late(body("first")), body("hedge"))
    threading.Timer(0.05, script.release).start()
    outcome, server = _run(send, script, "POST", {"content": b"{}"})
    assert outcome.body == b"first"
    assert len(server.seen) == 1


def test_a_post_with_an_idempotency_key_is_hedged(send: Callable[..., Outcome]) -> None:
    script = Script()
    script._answers = (script.late(body("late")), body("fast"))
    outcome, server = _run(
        send, script, "POST", {"content": b"{}", "headers": {"Idempotency-Key": "k1"}}
    )
    assert outcome.body == b"fast"
    assert [s.headers["idempotency-key"] for s in server.seen] == ["k1", "k1"]


def test_a_retryable_answer_of_a_copy_waits_for_the_other(send: Callable[..., Outcome]) -> None:
    """A 503 is not usable: the race waits for the late copy, whose 200 wins."""
    script = Script()

    def fails_then_releases_later() -> Answer:
        threading.Timer(0.03, script.release).start()  # after the 503 has arrived
        return 503

    script._answers = (script.late(body("late")), fails_then_releases_later)
    outcome, _server = _run(send, script)
    assert outcome.body == b"late"
    assert race_of(outcome.attempts) == [(503, "superseded"), (200, "return")]


def test_copies_that_all_fail_fall_back_to_the_retry_rules(
    send: Callable[..., Outcome],
) -> None:
    script = Script()

    def fails_then_releases() -> Answer:
        script.release()  # the late copy fails right after
        return 503

    script._answers = (script.late(503), fails_then_releases, body("retried"))
    outcome, _server = _run(send, script, sleep=lambda s: None)
    assert outcome.body == b"retried"
    assert race_of(outcome.attempts) == [(503, "superseded"), (503, "retry")]
    assert [(a.reason, a.status) for a in outcome.attempts] == [
        ("first", 503),
        ("hedge", 503),
        ("retry", 200),
    ]


def test_hedges_count_toward_max_attempts(send: Callable[..., Outcome]) -> None:
    script = Script()
    script._answers = (script.late(body("first")), body("hedge"))
    threading.Timer(0.05, script.release).start()
    outcome, server = _run(send, script, max_attempts=1)
    assert outcome.body == b"first"
    assert len(server.seen) == 1


@pytest.mark.parametrize("shell", ["requests", "httpx", "httpx-async"])
def test_the_retry_budget_stops_hedging_under_slowness(shell: str) -> None:
    """Every answer is late; each hedge spends a token of the transport's
    budget and each success gives 0.2 back, so hedging stops long before it
    doubles the load."""
    calls = 20
    script = Script()

    def slow() -> Answer:
        threading.Event().wait(0.01)
        return body("slow")

    script._answers = (slow,)
    policy: dict[str, Any] = {"hedge": resilience.Hedge(delay=0.001), "instrumentation": []}
    with Loopback(script) as server:
        _many(shell, server.url + "/x", policy, calls)
    hedges = len(server.seen) - calls
    # 10 tokens, half kept: 5 hedges, then one per 5 successes (0.2 each).
    assert 5 <= hedges <= 5 + calls // 5 + 1


def _many(shell: str, url: str, policy: dict[str, Any], calls: int) -> list[int]:
    if shell == "requests":
        with requests.Session() as session:
            session.mount("http://", resilience.ResilientAdapter(**policy))
            return [session.get(url, timeout=5).status_code for _ in range(calls)]
    if shell == "httpx":
        with httpx.Client(transport=resilience.ResilientTransport(**policy)) as client:
            return [client.get(url).status_code for _ in range(calls)]

    async def run() -> list[int]:
        transport = resilience.AsyncResilientTransport(**policy)
        async with httpx.AsyncClient(transport=transport) as client:
            return [(await client.get(url)).status_code for _ in range(calls)]

    return asyncio.run(run())


@pytest.fixture
def alternately_late() -> Iterator[Loopback]:
    """The first, third, fifth... requests answer after 20 ms, the others at once.

    A pool of two connections serves many hedged calls only if every losing
    copy gives its connection back (closed, or cancelled): a leak blocks the
    next call until the pool timeout fails it."""
    lock = threading.Lock()
    count = itertools.count()

    def answer(seen: Seen) -> Answer:
        with lock:
            i = next(count)
        if i % 2 == 0:
            threading.Event().wait(0.02)
        return body(str(i))

    with Loopback(answer) as server:
        yield server


@pytest.mark.timeout(60)
def test_losers_give_their_connection_back_requests(alternately_late: Loopback) -> None:
    adapter = resilience.ResilientAdapter(
        pool_maxsize=2, pool_block=True, hedge=resilience.Hedge(delay=0.002), instrumentation=[]
    )
    with requests.Session() as session:
        session.mount("http://", adapter)
        for _ in range(30):
            assert session.get(alternately_late.url + "/x", timeout=5).status_code == 200
    assert len(alternately_late.seen) > 30  # calls were hedged


@pytest.mark.timeout(60)
def test_losers_give_their_connection_back_httpx(alternately_late: Loopback) -> None:
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=2))
    transport = resilience.ResilientTransport(
        inner, hedge=resilience.Hedge(delay=0.002), instrumentation=[]
    )
    with httpx.Client(transport=transport, timeout=httpx.Timeout(5, pool=5)) as client:
        for _ in range(30):
            assert client.get(alternately_late.url + "/x").status_code == 200
    assert len(alternately_late.seen) > 30  # calls were hedged


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_losers_are_cancelled_and_their_connection_freed_async(
    alternately_late: Loopback, backend: str
) -> None:
    async def run() -> None:
        inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=2))
        transport = resilience.AsyncResilientTransport(
            inner, hedge=resilience.Hedge(delay=0.002), instrumentation=[]
        )
        async with httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(5, pool=5)
        ) as client:
            for _ in range(30):
                assert (await client.get(alternately_late.url + "/x")).status_code == 200

    anyio.run(run, backend=backend)
    assert len(alternately_late.seen) > 30  # calls were hedged


def test_hooks_see_the_hedge_and_the_loser(send: Callable[..., Outcome]) -> None:
    events: list[AttemptEvent] = []

    class Recorder:
        observes_successes = True

        def on_attempt(self, event: AttemptEvent) -> None:
            events.append(event)

        def on_call(self, event: CallEvent) -> None:
            pass

    script = Script()
    script._answers = (script.late(body("first")), body("hedge"))
    _run(send, script, instrumentation=[Recorder()])
    assert [e.reason for e in events] == ["hedge", "cancelled", "return"]
    assert next(e.attempt for e in events) == 2


# -- the strategy, without I/O ------------------------------------------------


class _Call:
    host = "api.example"
    repeatable = True
    sent: float | None = 0.0


def test_p95_hedges_only_once_the_host_has_enough_answers() -> None:
    strategy = HedgeStrategy(resilience.Hedge(delay="p95"))
    call = _Call()
    assert strategy.hedge_delay(call, 1) is None  # type: ignore[arg-type]
    for i in range(MIN_SAMPLES):
        strategy.record(call, Verdict.SUCCESS, 0.001 * (i + 1))  # type: ignore[arg-type]
    assert strategy.hedge_delay(call, 1) == pytest.approx(0.019)  # type: ignore[arg-type]


def test_the_sketch_keeps_the_95th_percentile_of_recent_latencies() -> None:
    sketch = LatencySketch()
    for i in range(1000):
        sketch.add(1.0 if i % 50 == 0 else 0.001)  # 2% slow: p95 stays fast
    assert sketch.p95 == 0.001


def test_a_request_that_cannot_be_repeated_gets_no_delay() -> None:
    strategy = HedgeStrategy(resilience.Hedge(delay=0.5))
    call = _Call()
    call.repeatable = False
    assert strategy.hedge_delay(call, 1) is None  # type: ignore[arg-type]


def test_no_more_copies_than_max_hedges() -> None:
    strategy = HedgeStrategy(resilience.Hedge(delay=0.5, max_hedges=2))
    call = _Call()
    delays = [strategy.hedge_delay(call, copies) for copies in (1, 2, 3)]  # type: ignore[arg-type]
    assert delays == [0.5, 0.5, None]


class _Raced:
    """A call as a race sees it: a pipeline that permits every copy and gives
    ``max_hedges=1``'s delays."""

    sent: float | None = 0.0

    def __init__(self) -> None:
        self.hedges: list[int] = []
        strategy = HedgeStrategy(resilience.Hedge(delay=0.5))
        outer = self

        class _Pipeline:
            def permits_hedge(self, call: object, now: float) -> bool:
                return True

            def hedge_delay(self, call: object, copies: int) -> float | None:
                return strategy.hedge_delay(_Call(), copies)  # type: ignore[arg-type]

        class _Core:
            pipeline = _Pipeline()

        self.core = _Core()
        self.wire = None
        self.report_hedge = lambda index, delay: outer.hedges.append(index)
        self.heard_loser = lambda *args: None


def test_a_race_sends_no_copy_once_none_is_due() -> None:
    """Two senders (the waiting thread and the timer) may ask at the same
    moment: once the one copy allowed is sent, asking again sends nothing,
    though ``max_attempts`` would allow more."""
    call = _Raced()
    race = Race(call, first_delay=0.5, now=0.0, allowed=4)  # type: ignore[arg-type]
    assert race.timed_out(0.1) is None  # not due yet
    assert race.timed_out(0.5) is not None
    assert race.timed_out(0.6) is None
    assert race.timed_out(5.0) is None
    assert call.hedges == [1]


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"delay": "p99"}, ValueError, "hedge.delay"),
        ({"delay": 0}, ValueError, "hedge.delay"),
        ({"delay": True}, TypeError, "hedge.delay"),
        ({"max_hedges": 0}, ValueError, "hedge.max_hedges"),
        ({"max_hedges": 11}, ValueError, "hedge.max_hedges"),
        ({"threads": 0}, ValueError, "hedge.threads"),
    ],
)
def test_nonsensical_hedge_settings_are_refused(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        resilience.Hedge(**options)


def test_hedge_takes_an_instance() -> None:
    with pytest.raises(TypeError, match="hedge"):
        resilience.Policy(hedge=resilience.Hedge)  # type: ignore[arg-type]


# -- hedging alongside the other strategies ------------------------------------


def test_failover_keeps_working_with_hedging_on(send: Callable[..., Outcome]) -> None:
    """Both copies in the first region answer 420: the call fails over."""
    script = Script()

    def by_region(seen: Seen) -> Answer:
        if seen.headers.get("x-region") == "us":
            return body("us")
        return script(seen)

    def full_then_releases() -> Answer:
        script.release()
        return 420

    script._answers = (script.late(420), full_then_releases)
    with Loopback(by_region) as server:
        try:
            outcome = send(
                "GET",
                server.url + "/x",
                {
                    "hedge": HEDGE,
                    "instrumentation": [],
                    "regions": ["eu", "us"],
                    "region_locator": resilience.regions.Header("X-Region"),
                    "capacity_retries": 0,
                },
                headers={"X-Region": "eu"},
            )
        finally:
            script.release()
    assert outcome.body == b"us"
    # On a loaded machine the answer from "us" may itself be late and hedged:
    # a copy that lost is no part of what this test pins.
    kept = [a for a in outcome.attempts if a.outcome != "cancelled"]
    assert [(a.reason, a.region, a.status) for a in kept[:2]] == [
        ("first", "eu", 420),
        ("hedge", "eu", 420),
    ]
    assert [(a.region, a.status) for a in kept[2:]] == [("us", 200)]
    assert outcome.attempts[2].reason == "failover"
    assert [s.headers["x-region"] for s in server.seen][:2] == ["eu", "eu"]
    assert {s.headers["x-region"] for s in server.seen[2:]} == {"us"}


def test_the_circuit_breaker_opens_with_hedging_on(send: Callable[..., Outcome]) -> None:
    breaker = resilience.CircuitBreaker(min_calls=2, failure_ratio=0.5)
    policy = {
        "hedge": HEDGE,
        "instrumentation": [],
        "circuit_breaker": breaker,
        "max_attempts": 1,
    }
    with Loopback(lambda seen: 503) as server:
        outcome = _calls(send, server.url + "/x", policy, 4)
    assert outcome[:2] == [503, 503]
    assert outcome[2:] == [None, None]  # the circuit is open: nothing sent
    assert len(server.seen) == 2


def _calls(
    send: Callable[..., Outcome], url: str, policy: dict[str, Any], calls: int
) -> list[int | None]:
    # One transport per call would start a new breaker each time: share a store.
    shared = {**policy, "store": resilience.stores.MemoryStore()}
    return [send("GET", url, shared).status for _ in range(calls)]


@pytest.mark.parametrize("shell", ["requests", "httpx", "httpx-async"])
def test_p95_hedges_a_late_answer_once_the_host_has_enough_answers(shell: str) -> None:
    lock = threading.Lock()
    count = itertools.count()
    released = threading.Event()

    def answer(seen: Seen) -> Answer:
        with lock:
            i = next(count)
        if i == MIN_SAMPLES:  # the first call after the sketch is ready
            released.wait(HELD)
        return body(str(i))

    policy = {"hedge": resilience.Hedge(delay="p95"), "instrumentation": []}
    with Loopback(answer) as server:
        try:
            statuses = _many(shell, server.url + "/x", policy, MIN_SAMPLES + 1)
        finally:
            released.set()
    assert statuses == [200] * (MIN_SAMPLES + 1)
    assert len(server.seen) == MIN_SAMPLES + 2  # one hedge: the late call's
