"""Async scale: 1,000 concurrent GETs through one ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from benchmarks._clients import CONTENDERS, Client, Skip, Target, build, close_all, describe
from benchmarks._settings import Settings
from benchmarks._sim import served
from benchmarks._timing import Progress, round_orders, summarise

__all__ = ["SCALE_KEYS", "run_scale"]

#: The contenders of this scenario; the first is the bare client.
SCALE_KEYS = ("httpx-async", "httpx-async+httpx-retries", "httpx-async+resilience")

#: The same for every contender. httpx's pool (httpcore 1.0) walks its
#: connections once per connection each time a request is queued or finishes
#: (``AsyncConnectionPool._assign_requests_to_connections``), so with 1,000
#: requests queued on its default 100 connections a burst takes seconds, its
#: time varies several-fold with how many connections happen to be idle, and
#: at the default 5 s pool timeout the bare client's requests fail with
#: PoolTimeout on a 2-core machine. Ten connections, kept alive for the whole
#: run, and no pool timeout give every contender the same, steady pool (the
#: limits go to the network transport: a client given a transport ignores its
#: own ``limits``).
CLIENT_OPTIONS: tuple[tuple[str, Any], ...] = (("timeout", httpx.Timeout(30.0, pool=None)),)
TRANSPORT_OPTIONS: tuple[tuple[str, Any], ...] = (
    (
        "limits",
        httpx.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=120.0),
    ),
)


async def _burst(client: Client, url: str, concurrency: int) -> tuple[float, int]:
    """Seconds for ``concurrency`` concurrent GETs, and how many did not answer 200."""
    start = time.perf_counter()
    answers = await asyncio.gather(
        *(client.get(url) for _ in range(concurrency)), return_exceptions=True
    )
    elapsed = time.perf_counter() - start
    failed = sum(
        1 for answer in answers if isinstance(answer, BaseException) or answer.status_code != 200
    )
    return elapsed, failed


def run_scale(
    settings: Settings, progress: Progress, *, seed: int = 3, child_server: bool = True
) -> dict[str, Any]:
    """Time bursts of concurrent GETs per contender, interleaved over rounds."""
    scenario = "async scale"
    concurrency = settings.scale_concurrency
    rounds = settings.scale_rounds
    contenders = [c for c in CONTENDERS if c.key in SCALE_KEYS]
    skipped: dict[str, str] = {}
    samples: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    loop = asyncio.new_event_loop()
    where = "in-process"
    try:
        with served(child=child_server) as server:
            where = server.where
            url = f"{server.url}/ping"
            target = Target(
                "loopback",
                server.url,
                httpx_client=CLIENT_OPTIONS,
                httpx_transport=TRANSPORT_OPTIONS,
            )
            clients: dict[str, Client] = {}
            try:
                for contender in contenders:
                    try:
                        clients[contender.key] = build(contender, target)
                    except Skip as exc:
                        skipped[contender.key] = str(exc)
                        progress(scenario, f"skipped {contender.label}: {exc}")
                        continue
                    loop.run_until_complete(_burst(clients[contender.key], url, concurrency))
                    progress(scenario, f"warmed up {contender.label}")
                samples = {key: [] for key in clients}
                failures = dict.fromkeys(clients, 0)
                labels = {c.key: c.label for c in contenders}
                for number, order in enumerate(round_orders(list(clients), rounds, seed), 1):
                    for key in order:
                        elapsed, failed = loop.run_until_complete(
                            _burst(clients[key], url, concurrency)
                        )
                        samples[key].append(1e6 * elapsed / concurrency)
                        failures[key] += failed
                        progress(
                            f"{scenario} {number}/{rounds}",
                            f"{labels[key]}: {1000 * elapsed:.0f} ms for {concurrency} GETs"
                            + (f", {failed} failed" if failed else ""),
                        )
            finally:
                close_all(clients.values(), loop)
    finally:
        loop.close()
    rows = []
    bare = samples.get(SCALE_KEYS[0])
    for contender in contenders:
        row = describe(contender)
        if contender.key not in samples:
            row["skipped"] = skipped.get(contender.key, "not run")
        else:
            baseline = None if contender.role == "bare" else bare
            row.update(summarise(samples[contender.key], baseline))
            row["failed"] = failures.get(contender.key, 0)
            row["burst_ms"] = row["median"] * concurrency / 1000
        rows.append(row)
    return {
        "scenario": "async scale",
        "where": (
            "simulator in a child process"
            if where == "child process"
            else "simulator in this process"
        ),
        "concurrency": concurrency,
        "rounds": rounds,
        "client_options": "Limits(max_connections=10, max_keepalive_connections=10, "
        "keepalive_expiry=120), Timeout(30, pool=None)",
        "unit": "µs per request (burst wall time / concurrency)",
        "rows": rows,
    }
