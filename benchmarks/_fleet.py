"""The fleet: several processes share one API key against a server-side rate limit.

8bitedge counts requests per API key, whatever worker sends them: 120 per
minute on the plan the seeds quote. Here the simulator (in its own process)
enforces that limit with a sliding window per ``Authorization`` value, and
``fleet_workers`` worker processes (``multiprocessing``, spawn) each make
``fleet_calls`` calls one after the other with
``httpx.Client(transport=resilience.ResilientTransport(...))`` and the same
key. A real minute is too long for a benchmark, so time is scaled: the limit
is enforced per ``fleet_scale`` seconds (1 s in the full run: "120/min scaled
to 120/s"), and the client-side plans are scaled alike.

Contenders, all ``ResilientTransport`` with the default policy (429 retried
after ``Retry-After``, 4 attempts) and ``retry_budget=None`` so that no retry
is cut:

* no client-side limiter: the workers send as fast as they can and learn the
  limit from 429s;
* a shared limiter: ``rate_limit=RateLimit(per_second=limit / scale, burst=1)``
  with ``store=RedisStore(url)``, one token bucket in Redis for the whole
  fleet (skipped with a note when ``redis-server`` or redis-py is missing).
  The plan is the vendor's, as a user would write it (``per_minute=120``,
  scaled), with no safety margin. Each process leases its tokens (the default
  ``lease``), refilled ahead of need;
* the same with ``RedisStore(url, lease=0)``: one token per call, each a round
  trip to Redis while the call waits, as the store worked before it leased
  tokens (the "before" of the leases);
* a per-process limiter without Redis, each process pacing itself at
  ``1 / workers`` of the plan, for contrast.

The workers are spawned once and kept for every contender; each builds its
client and opens its connection before the simulator's counts are reset and
the clock starts.

Reported per contender, counts rather than judgements: logical calls that
ended 2xx, 429s the simulator sent, requests it answered, and the wall time
from the first call of the fleet to the last.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

import httpx

import resilience
from benchmarks._redis import running_redis
from benchmarks._settings import Settings
from benchmarks._sim import served
from benchmarks._timing import Progress
from resilience.stores import RedisStore

__all__ = ["CONTENDERS", "run_fleet"]

#: The route every worker calls: 8bitedge's ``GET /api/v1/me``.
PATH = "/8bitedge/api/v1/me"
#: The one API key of the fleet (the simulator counts per ``Authorization`` value).
API_KEY = "Bearer sk_fleet_benchmark"
#: The simulator's window: no span of ``per`` seconds admits more than the limit.
WINDOW = "sliding"
#: The longest a fleet may take before the run gives up on it.
_TIMEOUT = 900.0
_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Contender:
    """One way for the fleet to pace itself.

    Attributes:
        key: short identifier (JSON key).
        label: name in the tables.
        limiter: ``"none"``, ``"shared"`` (RedisStore) or ``"local"`` (per process).
    """

    key: str
    label: str
    limiter: str


CONTENDERS = (
    Contender("none", "no client-side limiter", "none"),
    Contender("shared", "shared limiter (RedisStore)", "shared"),
    Contender("shared-per-call", "shared limiter, a round trip per call", "shared"),
    Contender("local", "per-process limiter (1/N of the plan each)", "local"),
)


@dataclass(frozen=True)
class Plan:
    """What every worker runs for one contender (sent to the worker processes).

    Attributes:
        url: the URL every call gets.
        warm_url: a URL to open the connection with before the clock starts.
        calls: calls per worker.
        per_second: the client-side plan of one worker's limiter, ``None`` for none.
        burst: the limiter's burst.
        redis_url: where the shared limiter's store lives, ``None`` for in memory.
        limit_key: the limiter's key (fresh per contender, so no state carries over).
        lease: the store's ``lease`` (seconds of the rate taken at a time; 0: one token).
    """

    url: str
    warm_url: str
    calls: int
    per_second: float | None
    burst: float
    redis_url: str | None
    limit_key: str
    lease: float = 0.05


class FleetError(RuntimeError):
    """A worker failed, or the fleet did not finish in time."""


# -- the worker processes -------------------------------------------------------------


def _client(plan: Plan) -> httpx.Client:
    options: dict[str, Any] = {"retry_budget": None, "vendor": "8bitedge"}
    if plan.per_second is not None:
        options["rate_limit"] = resilience.RateLimit(
            per_second=plan.per_second, burst=plan.burst, key=plan.limit_key
        )
        if plan.redis_url is not None:
            options["store"] = RedisStore(plan.redis_url, lease=plan.lease)
    transport = resilience.ResilientTransport(**options)
    return httpx.Client(transport=transport, timeout=30.0, headers={"Authorization": API_KEY})


def _calls(client: httpx.Client, plan: Plan) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    sent = 0
    start = time.time()  # the wall clock: comparable between the processes
    for _ in range(plan.calls):
        try:
            response = client.get(plan.url)
        except Exception as exc:  # a local RateLimited, a network error: counted
            outcomes[type(exc).__name__] += 1
            continue
        outcomes[str(response.status_code)] += 1
        sent += len(resilience.attempts(response)) or 1
    return {"start": start, "end": time.time(), "outcomes": dict(outcomes), "sent": sent}


def _worker(index: int, tasks: Any, results: Any, barrier: Any) -> None:
    """One application instance: build the client, say it is ready, call on "go"."""
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("resilience").setLevel(logging.ERROR)  # a retry log line per 429
    while True:
        plan: Plan | None = tasks.get()
        if plan is None:
            return
        try:
            client = _client(plan)
            try:
                # Warm up the connection (and the store's) before the clock starts.
                client.get(plan.warm_url)
                results.put({"worker": index, "ready": True})
                barrier.wait(_START_TIMEOUT)  # the simulator's counts are reset: go
                report = _calls(client, plan)
            finally:
                client.close()
        except BaseException as exc:
            results.put({"worker": index, "error": f"{type(exc).__name__}: {exc}"})
            if not isinstance(exc, Exception):
                raise
        else:
            results.put({"worker": index, **report})


class Fleet:
    """``size`` worker processes kept for every contender (spawned once)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._context: SpawnContext = multiprocessing.get_context("spawn")
        self._processes: list[SpawnProcess] = []
        self._tasks: list[Any] = []
        self._results: Any = None
        self._barrier: Any = None

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Spawn the workers; each waits for its plan."""
        context = self._context
        self._results = context.Queue()
        self._barrier = context.Barrier(self.size + 1)
        self._tasks = [context.Queue() for _ in range(self.size)]
        self._processes = [
            context.Process(
                target=_worker,
                args=(index, self._tasks[index], self._results, self._barrier),
                name=f"fleet-worker-{index}",
                daemon=True,
            )
            for index in range(self.size)
        ]
        for process in self._processes:
            process.start()

    def stop(self) -> None:
        """Ask every worker to end, and end those that do not."""
        for tasks in self._tasks:
            with contextlib.suppress(Exception):
                tasks.put(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)
        for tasks in self._tasks:
            tasks.close()
        if self._results is not None:
            self._results.close()
        self._processes = []
        self._tasks = []

    def restart(self) -> None:
        """Replace every worker, after a failure that may leave some waiting at the barrier."""
        for process in self._processes:
            if process.is_alive():
                process.kill()
            process.join(10)
        self._processes = []
        self.stop()
        self.start()

    def run(self, plan: Plan, go: Callable[[], None]) -> list[dict[str, Any]]:
        """Run ``plan`` in every worker at once; ``go()`` runs when all are ready.

        Returns:
            One report per worker.

        Raises:
            FleetError: a worker failed, died, or the fleet took too long.
        """
        for tasks in self._tasks:
            tasks.put(plan)
        self._collect(_START_TIMEOUT, "start")  # every worker is warmed up
        go()
        try:
            self._barrier.wait(_START_TIMEOUT)
        except threading.BrokenBarrierError:
            raise FleetError("a worker did not start") from None
        return self._collect(_TIMEOUT, "finish")

    def _collect(self, timeout: float, what: str) -> list[dict[str, Any]]:
        """One message from every worker, watching that none has died meanwhile."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < self.size:
            try:
                message = self._results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in self._processes if not p.is_alive()]
                if dead:
                    raise FleetError(
                        f"{', '.join(dead)} ended before the fleet could {what}"
                    ) from None
                if time.monotonic() > deadline:
                    raise FleetError(f"the fleet did not {what} in {timeout:.0f} s") from None
                continue
            if "error" in message:
                raise FleetError(f"worker {message['worker']}: {message['error']}")
            messages.append(message)
        return messages


# -- redis-server ------------------------------------------------------------------------


@dataclass(frozen=True)
class Redis:
    """A running ``redis-server`` (``url``), or why there is none (``missing``)."""

    url: str | None
    version: str | None = None
    missing: str | None = None


def _redis_version(binary: str) -> str | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return None


@contextlib.contextmanager
def redis_server() -> Iterator[Redis]:
    """A ``redis-server`` on 127.0.0.1 (:func:`benchmarks._redis.running_redis`).

    Yields a :class:`Redis` whose ``missing`` says why there is none when
    ``redis-server`` is not installed, redis-py is not importable, or the server
    does not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        yield Redis(None, missing="redis-server is not installed")
        return
    try:
        import redis  # noqa: F401
    except ImportError:
        yield Redis(None, missing="redis-py is not installed (pip install redis)")
        return
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_redis(binary=binary))
        except RuntimeError:
            yield Redis(None, missing="redis-server did not start")
            return
        yield Redis(server.url, _redis_version(binary))


# -- the scenario --------------------------------------------------------------------------


def _plan(contender: Contender, settings: Settings, base: str, redis: Redis) -> Plan:
    rate = settings.fleet_limit / settings.fleet_scale
    per_second: float | None = None
    if contender.limiter == "shared":
        per_second = rate
    elif contender.limiter == "local":
        per_second = rate / settings.fleet_workers
    return Plan(
        url=base + PATH,
        warm_url=base + "/ping",
        calls=settings.fleet_calls,
        per_second=per_second,
        burst=1.0,
        redis_url=redis.url if contender.limiter == "shared" else None,
        limit_key=f"fleet-{uuid.uuid4().hex[:12]}",
        lease=0.0 if contender.key == "shared-per-call" else 0.05,
    )


def _setting(contender: Contender, settings: Settings) -> str:
    rate = settings.fleet_limit / settings.fleet_scale
    if contender.key == "shared-per-call":
        return f"RateLimit(per_second={rate:g}, burst=1), store=RedisStore(url, lease=0)"
    if contender.limiter == "shared":
        return f"RateLimit(per_second={rate:g}, burst=1), store=RedisStore(url)"
    if contender.limiter == "local":
        return (
            f"RateLimit(per_second={rate / settings.fleet_workers:g}, burst=1) "
            "per process, in memory"
        )
    return "rate_limit=None"


def _scaled(settings: Settings) -> str:
    limit = settings.fleet_limit
    scale = settings.fleet_scale
    if scale == 1.0:
        return f"{limit}/min scaled to {limit}/s"
    return f"{limit}/min scaled to {limit} per {scale:g} s"


def run_fleet(
    settings: Settings, progress: Progress, *, child_server: bool = True
) -> dict[str, Any]:
    """Run the fleet once per contender against the rate-limited simulator."""
    scenario = "fleet"
    workers = settings.fleet_workers
    limit = settings.fleet_limit
    per = settings.fleet_scale
    calls = workers * settings.fleet_calls
    rows: list[dict[str, Any]] = []
    redis_version = None
    where = "in-process"
    # The workers spawn (and import httpx) while the simulator and Redis start.
    with (
        Fleet(workers) as fleet,
        served(child=child_server) as server,
        redis_server() as redis,
    ):
        where = server.where
        redis_version = redis.version

        def go() -> None:
            # Every worker is ready (warmed up): start counting from zero.
            server.reset()
            server.enforce_rate_limit(limit, per, window=WINDOW)

        for contender in CONTENDERS:
            row: dict[str, Any] = {
                "key": contender.key,
                "label": contender.label,
                "role": "resilience",
                "limiter": contender.limiter,
                "settings": _setting(contender, settings),
            }
            rows.append(row)
            if contender.limiter == "shared" and redis.url is None:
                row["skipped"] = redis.missing
                progress(scenario, f"skipped {contender.label}: {redis.missing}")
                continue
            plan = _plan(contender, settings, server.url, redis)
            server.reset()  # no limit while the workers warm up
            try:
                reports = fleet.run(plan, go)
            except FleetError as exc:
                row["skipped"] = f"failed: {exc}"
                progress(scenario, f"{contender.label} failed: {exc}")
                fleet.restart()
                continue
            outcomes: Counter[str] = Counter()
            for report in reports:
                outcomes.update(report["outcomes"])
            wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
            ok = sum(
                n for status, n in outcomes.items() if status.isdigit() and 200 <= int(status) < 300
            )
            throttled = server.count_status(429)
            requests = server.count_status()
            row.update(
                {
                    "calls": calls,
                    "ok": ok,
                    "failed": calls - ok,
                    "outcomes": dict(outcomes),
                    "received_429": throttled,
                    "requests": requests,
                    "requests_client_side": sum(r["sent"] for r in reports),
                    "requests_per_call": requests / calls,
                    "wall_s": wall,
                    "calls_per_s": ok / wall if wall > 0 else math.nan,
                    "worker_wall_s": [r["end"] - r["start"] for r in reports],
                }
            )
            progress(
                scenario,
                f"{contender.label}: {ok}/{calls} ok, {throttled} 429s, "
                f"{requests} requests, {wall:.2f} s",
            )
    return {
        "scenario": "fleet",
        "where": where,
        "workers": workers,
        "calls_per_worker": settings.fleet_calls,
        "calls": calls,
        "limit": limit,
        "per_s": per,
        "window": WINDOW,
        "key_header": "Authorization",
        "scaled": _scaled(settings),
        # The least time any fleet needs: the first `limit` calls at once, the rest at the limit.
        "floor_s": max(0, calls - limit) * per / limit,
        "redis_server": redis_version,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
