"""Load and faults over real sockets, against the embedded vendor simulator.

64 threads x 80 calls share one requests Session (``ResilientAdapter``,
``pool_maxsize=8``) and, separately, one ``httpx.Client`` (``ResilientTransport``);
2,000 asyncio tasks share one ``httpx.AsyncClient`` (``AsyncResilientTransport``).
Every call carries its own ``X-Sim-Key`` whose script is drawn from a fault mix
(503s, one with a body too big to read, a 429 with ``Retry-After: 0.001``, a 401,
dropped connections, an outage), so the outcome of each call is known in advance.
Checked for every call:

* it ended, with the final status its script leads to or, when every attempt
  lost its connection, with the HTTP library's own connection error;
* ``resilience.attempts(response)`` lists exactly the requests the simulator
  received under that key, with the statuses the script asked for;
* nothing escaped that the contract does not name.

The pool-of-one variants (``pool_maxsize=1, pool_block=True`` and
``max_connections=1``) run the same mix over a single connection: a response
that is not returned and not closed would hold it for ever and stall the rest.

The retry budget is off (it is shared by design and would rightly stop retrying
under this failure rate) and the sleep is an injected recorder, so no call waits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

import resilience
from resilience.testing import Reply, VendorSimulator

THREADS = 64
CALLS_PER_THREAD = 80
TASKS = 2_000
# httpcore's pool re-scans every waiting request each time a connection frees
# up, so 2,000 requests queued at once cost time quadratic in the queue even
# without this library (1,000 plain httpx requests queued on 100 connections
# take over 10 s). The tasks therefore all run together but at most IN_FLIGHT
# of them are inside the client at a time: more than it has connections.
IN_FLIGHT = 64
ASYNC_CONNECTIONS = 32

POOL_THREADS = 8
POOL_CALLS_PER_THREAD = 50
POOL_TASKS = 120
POOL_IN_FLIGHT = 16

# A stalled pool never ends, however long it is given; a loaded 2-CPU machine
# takes several times the 15 s these runs take alone.
JOIN_TIMEOUT = 150.0
pytestmark = pytest.mark.timeout(JOIN_TIMEOUT + 60)
PATH = "/8bitedge/api/v1/me"


@dataclass(frozen=True)
class Fault:
    """A script for one call and what it must end with.

    Attributes:
        name: for messages.
        replies: the simulator script of the call's key.
        statuses: the status of every attempt (``None``: the connection dropped).
        final: the status returned, or ``None`` when the library's connection
            error must propagate.
    """

    name: str
    replies: tuple[Reply, ...]
    statuses: tuple[int | None, ...]
    final: int | None

    @property
    def sent(self) -> int:
        """Requests the simulator must see for one call."""
        return len(self.statuses)


CLEAN = Fault("clean", (), (200,), 200)
FAULTS = (
    Fault("one 503", (Reply.error(503),), (503, 200), 200),
    Fault("two 503s", (Reply.error(503),) * 2, (503, 503, 200), 200),
    Fault("429", (Reply.rate_limited(retry_after=0.001),), (429, 200), 200),
    Fault("401", (Reply.error(401),), (401,), 401),
    Fault("drop", (Reply.drop(),), (None, 200), 200),
    # Over the 64 KiB the transports read: the retry must close it unread.
    Fault("big 503", (Reply.huge(70_000, status=503),), (503, 200), 200),
    Fault(
        "503, 429, drop",
        (Reply.error(503), Reply.rate_limited(retry_after=0.001), Reply.drop()),
        (503, 429, None, 200),
        200,
    ),
    Fault("outage", (Reply.error(503),) * 4, (503,) * 4, 503),
    Fault("dropped every time", (Reply.drop(),) * 4, (None,) * 4, None),
)
# One period of the mix: 50 calls, 15 of them with faults (1.4 requests a call).
WEIGHTS = {"one 503": 3, "two 503s": 2, "429": 2, "401": 2, "drop": 2}
MIX: tuple[Fault, ...] = (
    *(f for f in FAULTS for _ in range(WEIGHTS.get(f.name, 1))),
    *(CLEAN,) * 35,
)


def _policy(sleep: Callable[[float], Any]) -> dict[str, Any]:
    return {
        "sleep": sleep,
        "retry_budget": None,
        "jitter": "none",
        "backoff_initial": 0.001,
        "max_attempts": 4,
    }


class Sleeps:
    """Records what each call was asked to wait; returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)  # list.append is atomic


class AsyncSleeps(Sleeps):
    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.calls.append(seconds)


@dataclass
class Ended:
    """How one call ended."""

    key: str
    fault: Fault
    status: int | None = None
    statuses: tuple[int | None, ...] = ()
    errors: tuple[str | None, ...] = ()
    error: BaseException | None = None


@pytest.fixture
def sim(caplog: pytest.LogCaptureFixture) -> Iterator[VendorSimulator]:
    # Thousands of retries would each log a warning (and urllib3 one per
    # discarded surplus connection): keeping them all only slows the run.
    caplog.set_level(logging.ERROR, logger="resilience")
    caplog.set_level(logging.ERROR, logger="urllib3")
    with VendorSimulator() as simulator:
        yield simulator


def _plan(sim: VendorSimulator, prefix: str, index: int) -> tuple[str, Fault]:
    """The key and fault of call ``index``; scripts the simulator for it."""
    fault = MIX[index % len(MIX)]
    key = f"{prefix}-{index}"
    if fault.replies:
        sim.script(key, fault.replies)
    return key, fault


def _ended(key: str, fault: Fault, status: int, history: list[resilience.Attempt]) -> Ended:
    return Ended(
        key,
        fault,
        status,
        tuple(a.status for a in history),
        tuple(a.error for a in history),
    )


def _problems(
    sim: VendorSimulator,
    ended: list[Ended],
    expected_calls: int,
    library_error: type[BaseException],
) -> list[str]:
    """Everything wrong with the calls, checked against what the simulator saw."""
    seen = Counter(r.key for r in sim.received)
    problems = []
    if len(ended) != expected_calls:
        problems.append(f"{expected_calls - len(ended)} calls never ended")
    for call in ended:
        fault = call.fault
        where = f"{call.key} ({fault.name})"
        if seen[call.key] != fault.sent:
            problems.append(f"{where}: simulator saw {seen[call.key]}, expected {fault.sent}")
        if call.error is not None:
            if fault.final is not None or not isinstance(call.error, library_error):
                problems.append(f"{where}: raised {call.error!r}")
            continue
        if call.status != fault.final or call.statuses != fault.statuses:
            problems.append(f"{where}: ended {call.status}, attempts {call.statuses}")
        elif len(call.statuses) != seen[call.key]:
            problems.append(f"{where}: {len(call.statuses)} attempts, {seen[call.key]} sent")
        elif any(
            (s is None) != (e is not None) for s, e in zip(call.statuses, call.errors, strict=True)
        ):
            problems.append(f"{where}: attempt errors {call.errors}")
    return problems


def _expected_sleeps(calls: int) -> int:
    """Retries (each one sleeps) over ``calls`` calls of the mix."""
    return sum(MIX[i % len(MIX)].sent - 1 for i in range(calls))


def _run_threads(threads: int, work: Callable[[int, list[Ended]], None]) -> tuple[list[Ended], int]:
    """Run ``work(index, ended)`` in ``threads`` threads started together.

    ``work`` appends each call's :class:`Ended` (list.append is atomic). Returns
    them and the number of threads still running after the join timeout (a
    stalled pool). An exception escaping ``work`` is recorded as an
    :class:`Ended` carrying it.
    """
    barrier = threading.Barrier(threads)
    ended: list[Ended] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            work(index, ended)
        except BaseException as exc:
            ended.append(Ended(f"thread {index}", CLEAN, error=exc))

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    return list(ended), sum(worker.is_alive() for worker in workers)


# -- requests -----------------------------------------------------------------------


def _requests_load(
    sim: VendorSimulator, threads: int, calls: int, **adapter_options: Any
) -> tuple[list[str], Sleeps]:
    sleeps = Sleeps()
    adapter = resilience.ResilientAdapter(**adapter_options, **_policy(sleeps))
    url = sim.url + PATH
    with requests.Session() as session:
        session.mount("http://", adapter)

        def work(thread: int, ended: list[Ended]) -> None:
            for i in range(calls):
                key, fault = _plan(sim, f"r{thread}", thread * calls + i)
                try:
                    response = session.get(url, headers={"X-Sim-Key": key}, timeout=10)
                except requests.RequestException as exc:
                    ended.append(Ended(key, fault, error=exc))
                    continue
                ended.append(
                    _ended(key, fault, response.status_code, resilience.attempts(response))
                )

        ended, stalled = _run_threads(threads, work)
    problems = _problems(sim, ended, threads * calls, requests.ConnectionError)
    if stalled:
        problems.insert(0, f"{stalled} threads stalled")
    return problems, sleeps


def test_64_threads_x_80_calls_share_one_requests_session(sim: VendorSimulator) -> None:
    problems, sleeps = _requests_load(sim, THREADS, CALLS_PER_THREAD, pool_maxsize=8)
    assert problems == []
    assert len(sleeps.calls) == _expected_sleeps(THREADS * CALLS_PER_THREAD)
    assert max(sleeps.calls) <= 0.004


def test_requests_pool_of_one_never_stalls_under_the_fault_mix(sim: VendorSimulator) -> None:
    problems, sleeps = _requests_load(
        sim, POOL_THREADS, POOL_CALLS_PER_THREAD, pool_maxsize=1, pool_block=True
    )
    assert problems == []
    assert len(sleeps.calls) == _expected_sleeps(POOL_THREADS * POOL_CALLS_PER_THREAD)


# -- httpx, sync --------------------------------------------------------------------


def _httpx_load(
    sim: VendorSimulator,
    threads: int,
    calls: int,
    inner: httpx.HTTPTransport | None,
    pool_timeout: float = 10.0,
) -> tuple[list[str], Sleeps]:
    sleeps = Sleeps()
    transport = resilience.ResilientTransport(inner, **_policy(sleeps))
    url = sim.url + PATH
    timeout = httpx.Timeout(10.0, pool=pool_timeout)
    with httpx.Client(transport=transport, timeout=timeout) as client:

        def work(thread: int, ended: list[Ended]) -> None:
            for i in range(calls):
                key, fault = _plan(sim, f"x{thread}", thread * calls + i)
                try:
                    response = client.get(url, headers={"X-Sim-Key": key})
                except httpx.HTTPError as exc:
                    ended.append(Ended(key, fault, error=exc))
                    continue
                ended.append(
                    _ended(key, fault, response.status_code, resilience.attempts(response))
                )

        ended, stalled = _run_threads(threads, work)
    problems = _problems(sim, ended, threads * calls, httpx.TransportError)
    if stalled:
        problems.insert(0, f"{stalled} threads stalled")
    return problems, sleeps


def test_64_threads_x_80_calls_share_one_httpx_client(sim: VendorSimulator) -> None:
    # Room for every thread's connection to stay alive: httpcore's sync pool closes
    # surplus idle connections, and may close one a thread was just given
    # (encode/httpcore#1110), which would show up here as a ReadError or a hang.
    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    inner = httpx.HTTPTransport(limits=limits)
    problems, sleeps = _httpx_load(sim, THREADS, CALLS_PER_THREAD, inner)
    assert problems == []
    assert len(sleeps.calls) == _expected_sleeps(THREADS * CALLS_PER_THREAD)
    assert max(sleeps.calls) <= 0.004


def test_httpx_pool_of_one_never_stalls_under_the_fault_mix(sim: VendorSimulator) -> None:
    """One thread: httpcore's sync pool, shared by threads over one connection, can
    close the connection a waiting request was just given (encode/httpcore#1110;
    plain httpx shows it too, as ReadError EBADF or a read timeout). A response
    that kept the connection would still stall the next call until PoolTimeout.
    """
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    calls = POOL_THREADS * POOL_CALLS_PER_THREAD
    problems, sleeps = _httpx_load(sim, 1, calls, inner, pool_timeout=3.0)
    assert problems == []
    assert len(sleeps.calls) == _expected_sleeps(calls)


# -- httpx, async -------------------------------------------------------------------


async def _async_load(
    sim: VendorSimulator, tasks: int, in_flight: int, connections: int, pool_timeout: float
) -> tuple[list[str], AsyncSleeps]:
    sleeps = AsyncSleeps()
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=connections))
    transport = resilience.AsyncResilientTransport(inner, **_policy(sleeps))
    url = sim.url + PATH
    gate = asyncio.Semaphore(in_flight)
    all_started = asyncio.Event()
    started = 0

    async def call(client: httpx.AsyncClient, index: int) -> Ended:
        nonlocal started
        key, fault = _plan(sim, "a", index)
        started += 1
        if started == tasks:
            all_started.set()
        await all_started.wait()  # every task is running before the first request
        async with gate:
            try:
                response = await client.get(url, headers={"X-Sim-Key": key})
            except httpx.HTTPError as exc:
                return Ended(key, fault, error=exc)
            return _ended(key, fault, response.status_code, resilience.attempts(response))

    async def guarded(client: httpx.AsyncClient, index: int) -> Ended:
        try:
            return await call(client, index)
        except BaseException as exc:
            return Ended(f"task {index}", CLEAN, error=exc)

    timeout = httpx.Timeout(10.0, pool=pool_timeout)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        running = [asyncio.create_task(guarded(client, i)) for i in range(tasks)]
        done, pending = await asyncio.wait(running, timeout=JOIN_TIMEOUT)
        for task in pending:
            task.cancel()
    ended = [task.result() for task in done]
    problems = _problems(sim, ended, tasks, httpx.TransportError)
    if pending:
        problems.insert(0, f"{len(pending)} tasks stalled")
    return problems, sleeps


async def test_2000_tasks_share_one_async_httpx_client(sim: VendorSimulator) -> None:
    problems, sleeps = await _async_load(sim, TASKS, IN_FLIGHT, ASYNC_CONNECTIONS, 10.0)
    assert problems == []
    assert len(sleeps.calls) == _expected_sleeps(TASKS)
    assert max(sleeps.calls) <= 0.004


async def test_async_httpx_pool_of_one_never_stalls_under_the_fault_mix(
    sim: VendorSimulator,
) -> None:
    problems, sleeps = await _async_load(sim, POOL_TASKS, POOL_IN_FLIGHT, 1, 5.0)
    assert problems == []
    assert len(sleeps.calls) == _expected_sleeps(POOL_TASKS)


def test_the_mix_exercises_every_fault() -> None:
    assert {f.name for f in MIX} == {f.name for f in FAULTS} | {CLEAN.name}


# -- first use from several threads ---------------------------------------------------


class LatePlugin:
    """A third-party detector advertised through the entry-point group."""

    name = "late-plugin"
    success_body = False

    def matches(self, payload: Any) -> bool:
        return False

    def classify(self, view: Any, payload: Any, retry_after: float | None) -> Any:
        return resilience.Classification.of("late-plugin", resilience.Category.OK, view.status)


def test_a_thread_classifying_while_another_loads_the_plugins_sees_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resilience.detectors import _registry

    loading, release = threading.Event(), threading.Event()

    class SlowEntryPoint:
        name = LatePlugin.name

        def load(self) -> type[LatePlugin]:
            loading.set()
            release.wait(5)  # importing a plugin takes time
            return LatePlugin

    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    monkeypatch.setattr(_registry, "_chain", _registry._chain)  # restored afterwards
    monkeypatch.setattr(_registry, "entry_points", lambda group: [SlowEntryPoint()])
    response = httpx.Response(200, request=httpx.Request("GET", "https://vendor.example/"))
    outcomes: dict[str, Any] = {}

    def classify_as(name: str) -> None:
        try:
            outcomes[name] = resilience.classify(response, vendor=LatePlugin.name).vendor
        except Exception as exc:
            outcomes[name] = exc

    first = threading.Thread(target=classify_as, args=("first",))
    first.start()
    assert loading.wait(5)
    second = threading.Thread(target=classify_as, args=("second",))
    second.start()
    second.join(0.2)  # it may wait for the loading to finish, or not
    release.set()
    first.join(5)
    second.join(5)
    assert outcomes == {"first": LatePlugin.name, "second": LatePlugin.name}
