"""What configuration and a shared store cost on the success path; what importing costs.

Three measurements, each against a baseline of the same run:

* **Success path, in-process** (``httpx.MockTransport`` returning a canned 200,
  no socket): one sync ``httpx.Client`` per contender, ``store_calls`` GETs per
  contender and round, the contenders taking turns every 10 calls in a shuffled
  order every round, each call timed. The ratio is the median call of all
  rounds over the bare client's (robust to a busy machine, as over loopback);
  the median over rounds of the per-round ratio of mean calls is kept beside
  it (``ratio_of_means``: what the background thread of a ``RedisStore`` costs
  shows there too). Contenders: bare httpx; ``ResilientTransport`` with every default;
  ``regions=[...]`` configured (nothing fails); the full set (circuit breaker,
  rate limit, regions, ``idempotency_key``, ``deadline``) in memory;
  ``store=RedisStore(url)`` with every default (the retry budget only); the full
  set over ``RedisStore``. The ``redis-server`` is started by the benchmark, on
  loopback. The rate limit is generous enough never to make a call wait: the
  point is what it costs, not its pacing.
* **Async, concurrent**: ``store_concurrency`` concurrent GETs (``asyncio.gather``)
  through one ``httpx.AsyncClient`` over ``AsyncResilientTransport`` with the
  rate limit in memory, and with it in ``RedisStore``; the ratio is Redis over
  memory, per round, median.
* **Import time**: ``import resilience`` after ``import httpx, requests`` in a
  fresh interpreter, ``import_runs`` times; the median difference in ms.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

import resilience
from benchmarks._clients import CANNED_BODY
from benchmarks._fleet import redis_server
from benchmarks._settings import REGIONS, Settings
from benchmarks._timing import (
    Progress,
    median,
    round_orders,
    summarise,
    time_calls,
    time_interleaved,
)
from resilience.stores import RedisStore

__all__ = ["ASYNC_KEYS", "FULL_SET", "SYNC_ROWS", "full_set", "run_store"]

URL = "http://vendor.invalid/ping"

#: A rate limit that never makes these calls wait (they run at well under 100,000/s).
GENEROUS = resilience.RateLimit(per_second=100_000, burst=1_000)


def full_set() -> dict[str, Any]:
    """The full set of the issue: breaker, rate limit, regions, idempotency key, deadline."""
    return {
        "circuit_breaker": resilience.CircuitBreaker(),
        "rate_limit": GENEROUS,
        "regions": list(REGIONS),
        "idempotency_key": True,
        "deadline": 30.0,
    }


#: How the full set is written, for the tables.
FULL_SET = (
    "circuit_breaker=CircuitBreaker(), rate_limit=RateLimit(per_second=100_000, burst=1_000), "
    "regions=['eu-west', 'us-east'], idempotency_key=True, deadline=30"
)

#: ``(key, label, settings, options, needs Redis)`` of the sync rows; the first is bare.
SYNC_ROWS: tuple[tuple[str, str, str, Callable[[], dict[str, Any]], bool], ...] = (
    ("bare", "httpx (bare)", "", dict, False),
    ("defaults", "ResilientTransport, defaults", "every default", dict, False),
    (
        "regions",
        "regions configured",
        "regions=['eu-west', 'us-east']",
        lambda: {"regions": list(REGIONS)},
        False,
    ),
    ("full-memory", "full set, in memory", FULL_SET, full_set, False),
    ("redis-defaults", "RedisStore, defaults", "store=RedisStore(url)", dict, True),
    (
        "full-redis",
        "full set over RedisStore",
        f"{FULL_SET}, store=RedisStore(url)",
        full_set,
        True,
    ),
)

#: The async rows: ``(key, label, in Redis)``.
ASYNC_KEYS = (
    ("async-bare", "httpx async (bare)", None),
    ("async-memory", "rate limit in memory", False),
    ("async-redis", "rate limit in RedisStore", True),
)


def _canned(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=[("content-type", "application/json")], content=CANNED_BODY)


def _store(url: str) -> RedisStore:
    return RedisStore(url, prefix=f"bench:{uuid.uuid4().hex[:12]}:")


def _sync_clients(redis_url: str | None) -> tuple[dict[str, httpx.Client], list[RedisStore]]:
    clients: dict[str, httpx.Client] = {}
    stores: list[RedisStore] = []
    for key, _, _, options, needs_redis in SYNC_ROWS:
        if needs_redis and redis_url is None:
            continue
        inner = httpx.MockTransport(_canned)
        if key == "bare":
            clients[key] = httpx.Client(transport=inner)
            continue
        kwargs = options()
        if needs_redis:
            assert redis_url is not None
            stores.append(store := _store(redis_url))
            kwargs["store"] = store
        transport = resilience.ResilientTransport(transport=inner, **kwargs)
        clients[key] = httpx.Client(transport=transport)
    return clients, stores


def _async_client(key: str, in_redis: bool | None, redis_url: str | None) -> Any:
    inner = httpx.MockTransport(_canned)
    if in_redis is None:
        return httpx.AsyncClient(transport=inner), None
    store = _store(redis_url) if in_redis and redis_url is not None else None
    transport = resilience.AsyncResilientTransport(
        transport=inner, rate_limit=GENEROUS, store=store
    )
    return httpx.AsyncClient(transport=transport), store


async def _burst(client: httpx.AsyncClient, concurrency: int) -> float:
    start = time.perf_counter()
    answers = await asyncio.gather(*(client.get(URL) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if any(a.status_code != 200 for a in answers):
        raise RuntimeError("a concurrent GET did not answer 200")
    return elapsed


def _import_ms(runs: int) -> dict[str, Any]:
    code = (
        "import time, httpx, requests\n"
        "t = time.perf_counter()\n"
        "import resilience\n"
        "print(time.perf_counter() - t)\n"
    )
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        samples.append(1000 * float(out.stdout.strip()))
    return {
        "runs": runs,
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "samples_ms": samples,
    }


def run_store(settings: Settings, progress: Progress, *, seed: int = 5) -> dict[str, Any]:
    """Time the sync and async rows over interleaved rounds, and the import."""
    scenario = "store"
    calls = settings.store_calls
    rounds = settings.store_rounds
    concurrency = settings.store_concurrency
    out: dict[str, Any] = {
        "scenario": scenario,
        "calls_per_round": calls,
        "rounds": rounds,
        "concurrency": concurrency,
        "async_rounds": settings.store_async_rounds,
        "full_set": FULL_SET,
        "where": "in-process (httpx.MockTransport)",
    }
    with redis_server() as redis:
        out["redis_server"] = redis.version
        missing = redis.missing
        # -- sync rows
        clients, stores = _sync_clients(redis.url)
        try:
            for client in clients.values():
                time_calls(client.get, URL, max(20, calls // 5))  # warm up (keys, leases)
            for store in stores:
                store.sync()
            samples: dict[str, list[float]] = {key: [] for key in clients}
            means: dict[str, list[float]] = {key: [] for key in clients}
            pooled: dict[str, list[float]] = {key: [] for key in clients}
            labels = {row[0]: row[1] for row in SYNC_ROWS}
            loop = asyncio.new_event_loop()  # time_interleaved's, unused by sync clients
            try:
                for number, order in enumerate(round_orders(list(clients), rounds, seed), 1):
                    turns = [(key, clients[key].get, False) for key in order]
                    times = time_interleaved(turns, URL, calls, loop)
                    for key in order:
                        pooled[key].extend(times[key])
                        samples[key].append(median(times[key]))
                        means[key].append(statistics.fmean(times[key]))
                        progress(
                            f"{scenario} {number}/{rounds}",
                            f"{labels[key]}: median call {samples[key][-1]:.1f} µs, "
                            f"mean {means[key][-1]:.1f} µs",
                        )
            finally:
                loop.close()
        finally:
            for client in clients.values():
                client.close()
            for store in stores:
                store.close()
        rows = []
        for key, label, setting, _, _ in SYNC_ROWS:
            row: dict[str, Any] = {
                "key": key,
                "label": label,
                "settings": setting,
                "role": "bare" if key == "bare" else "resilience",
            }
            if key not in samples:
                row["skipped"] = missing or "not run"
            else:
                bare = key == "bare"
                row.update(
                    summarise(
                        samples[key],
                        None if bare else samples["bare"],
                        pooled=pooled[key],
                        pooled_bare=None if bare else pooled["bare"],
                    )
                )
                row["mean"] = median(means[key])
                if not bare:
                    by_mean = summarise(means[key], means["bare"])
                    row["ratio_of_means"] = by_mean.get("ratio")
            rows.append(row)
        out["rows"] = rows
        # -- async rows
        loop = asyncio.new_event_loop()
        aclients: dict[str, Any] = {}
        astores: list[RedisStore] = []
        try:
            for key, _, in_redis in ASYNC_KEYS:
                if in_redis and redis.url is None:
                    continue
                client, store = _async_client(key, in_redis, redis.url)
                aclients[key] = client
                if store is not None:
                    astores.append(store)
                loop.run_until_complete(_burst(client, concurrency))  # warm up
            bursts: dict[str, list[float]] = {key: [] for key in aclients}
            alabels = {k: label for k, label, _ in ASYNC_KEYS}
            arounds = settings.store_async_rounds
            for number, order in enumerate(round_orders(list(aclients), arounds, seed + 1), 1):
                for key in order:
                    gc.collect()
                    elapsed = loop.run_until_complete(_burst(aclients[key], concurrency))
                    bursts[key].append(1e6 * elapsed / concurrency)
                    progress(
                        f"{scenario} async {number}/{arounds}",
                        f"{alabels[key]}: {1000 * elapsed:.0f} ms for {concurrency:,} GETs",
                    )
        finally:
            for client in aclients.values():
                loop.run_until_complete(client.aclose())
            loop.close()
            for store in astores:
                store.close()
        arows = []
        for key, label, in_redis in ASYNC_KEYS:
            row = {"key": key, "label": label, "role": "bare" if in_redis is None else "resilience"}
            if key not in bursts:
                row["skipped"] = missing or "not run"
            else:
                row.update(summarise(bursts[key], bursts.get("async-bare")))
                if in_redis:
                    memory = summarise(bursts[key], bursts.get("async-memory"))
                    row["ratio_to_memory"] = memory.get("ratio")
                    row["ratio_to_memory_min"] = memory.get("ratio_min")
                    row["ratio_to_memory_max"] = memory.get("ratio_max")
                row["burst_ms"] = row["median"] * concurrency / 1000
            arows.append(row)
        out["async_rows"] = arows
    progress(scenario, "import time, fresh interpreters")
    out["import"] = _import_ms(settings.import_runs)
    progress(scenario, f"import resilience: {out['import']['median_ms']:.1f} ms (median)")
    return out
