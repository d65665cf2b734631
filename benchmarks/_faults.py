"""The fault mix: seeded vendor faults, what each contender makes of them.

Every call carries its own ``X-Sim-Key``, scripted on the simulator with the
replies of its fault kind; the simulator's records (arrival times per key) give
the requests each call sent, the retries sent after an answer that must not be
retried, and the gaps after each ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._clients import (
    CONTENDERS,
    Client,
    Contender,
    Skip,
    Target,
    Tuning,
    build,
    close_all,
    describe,
)
from benchmarks._settings import BACKOFF, RETRY_AFTER, Settings
from benchmarks._success import BARE
from benchmarks._timing import Progress, median, round_orders
from resilience.testing import Reply, VendorSimulator

__all__ = ["KINDS", "run_faults"]


@dataclass(frozen=True)
class Kind:
    """One kind of fault.

    Attributes:
        name: short name.
        label: what it is, for the tables.
        replies: the scripted replies of one call.
        repeat: whether the last reply repeats forever.
        vendors: the vendors it is drawn from.
        fewest: the fewest requests that end the call well.
        mandated: seconds the vendor makes a client wait (``Retry-After``, and
            the documented wait before retrying an idempotency conflict).
        recoverable: whether a client can end the call with a 2xx.
        retry_after: how many answers carry ``Retry-After`` (they come first).
    """

    name: str
    label: str
    replies: Callable[[], list[Reply]]
    repeat: bool
    vendors: tuple[str, ...]
    fewest: int
    mandated: float
    recoverable: bool
    retry_after: int = 0


KINDS: tuple[Kind, ...] = (
    Kind(
        "503-once",
        "one 503, then OK",
        lambda: [Reply.error(503)],
        False,
        ("gameye", "8bitedge", "playwave"),
        2,
        0.0,
        True,
    ),
    Kind(
        "429-twice",
        f"429 with Retry-After {RETRY_AFTER} twice, then OK",
        lambda: [Reply.rate_limited(RETRY_AFTER), Reply.rate_limited(RETRY_AFTER)],
        False,
        ("gameye", "8bitedge", "playwave"),
        3,
        2 * RETRY_AFTER,
        True,
        retry_after=2,
    ),
    Kind(
        "420-region",
        "Gameye 420 in eu-west only (us-east has capacity)",
        lambda: [Reply.capacity(region="eu-west")],
        True,
        ("gameye",),
        2,
        0.0,
        True,
    ),
    Kind(
        "409-once",
        "8bitedge 409 idempotency_conflict once, then OK",
        lambda: [Reply.error(409, "idempotency_conflict")],
        False,
        ("8bitedge",),
        2,
        # 8bitedge: "wait a few seconds and retry; the original request is
        # still in progress". Scaled like every wait here: the peers' initial
        # backoff, which is also resilience's conflict_delay in this run.
        BACKOFF,
        True,
    ),
    Kind(
        "501",
        "8bitedge 501 not_implemented",
        lambda: [Reply.error(501)],
        True,
        ("8bitedge",),
        1,
        0.0,
        False,
    ),
    Kind(
        "401",
        "401 (bad API key)",
        lambda: [Reply.error(401)],
        True,
        ("gameye", "8bitedge", "playwave"),
        1,
        0.0,
        False,
    ),
)

_KINDS = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class Planned:
    """One logical call of the mix."""

    kind: str
    vendor: str


def plan(per_kind: int, seed: int) -> list[Planned]:
    """``per_kind`` calls of every kind on seeded vendors, in a seeded order."""
    rng = random.Random(seed)
    calls = [
        Planned(kind.name, rng.choice(kind.vendors)) for kind in KINDS for _ in range(per_kind)
    ]
    rng.shuffle(calls)
    return calls


def _request(sim: VendorSimulator, call: Planned, key: str) -> tuple[str, str, dict[str, str], Any]:
    """``(method, url, headers, json)`` of a planned call."""
    headers = {"X-Sim-Key": key}
    body: dict[str, Any]
    if call.kind == "420-region":
        body = {"id": f"s-{key}", "location": "eu-west", "image": "bench/game:1"}
        return "POST", sim.base("gameye") + "/session", headers, body
    if call.kind == "409-once":
        headers["Idempotency-Key"] = f"idem-{key}"
        body = {"items": [{"sku": "bench", "qty": 1}]}
        return "POST", sim.base("8bitedge") + "/api/v1/games/batch", headers, body
    if call.vendor == "gameye":
        return "GET", sim.base("gameye") + "/session", headers, None
    if call.vendor == "8bitedge":
        return "GET", sim.base("8bitedge") + "/api/v1/me", headers, None
    return "POST", sim.base("playwave") + "/verify", headers, {"ott": f"ott-{key}"}


def _outcome(client: Client, call: Callable[[], Any]) -> tuple[int | None, str | None]:
    try:
        response = call()
    except Exception as exc:
        return None, type(exc).__name__
    return client.status(response), None


async def _run_async(
    client: Client, requests: list[tuple[str, str, dict[str, str], Any]]
) -> tuple[float, list[tuple[int | None, str | None]]]:
    outcomes: list[tuple[int | None, str | None]] = []
    start = time.perf_counter()
    for method, url, headers, body in requests:
        try:
            response = await client.request(method, url, headers, body)
        except Exception as exc:
            outcomes.append((None, type(exc).__name__))
        else:
            outcomes.append((client.status(response), None))
    return time.perf_counter() - start, outcomes


def _run_batch(
    client: Client,
    requests: list[tuple[str, str, dict[str, str], Any]],
    loop: asyncio.AbstractEventLoop,
) -> tuple[float, list[tuple[int | None, str | None]]]:
    if client.is_async:
        return loop.run_until_complete(_run_async(client, requests))
    outcomes: list[tuple[int | None, str | None]] = []
    start = time.perf_counter()
    for method, url, headers, body in requests:
        try:
            response = client.request(method, url, headers, body)
        except Exception as exc:
            outcomes.append((None, type(exc).__name__))
        else:
            outcomes.append((client.status(response), None))
    return time.perf_counter() - start, outcomes


def _analyse(
    calls: list[Planned],
    keys: list[str],
    outcomes: list[tuple[int | None, str | None]],
    arrivals: dict[str, list[float]],
) -> dict[str, Any]:
    """What one contender did with one round of the mix."""
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    exceptions: Counter[str] = Counter()
    gaps: list[float] = []
    totals: Counter[str] = Counter()
    for call, key, (status, error) in zip(calls, keys, outcomes, strict=True):
        kind = _KINDS[call.kind]
        times = sorted(arrivals.get(key, ()))
        sent = len(times)
        counts = per_kind[kind.name]
        counts["calls"] += 1
        counts["requests"] += sent
        totals["calls"] += 1
        totals["requests"] += sent
        totals["fewest"] += kind.fewest
        ok = status is not None and 200 <= status < 300
        if error is not None:
            exceptions[error] += 1
            counts["exceptions"] += 1
        if kind.recoverable:
            totals["recoverable"] += 1
            if ok:
                totals["recovered"] += 1
                counts["ok"] += 1
        else:
            totals["unrecoverable"] += 1
            # Answered with the status itself, in one request, no exception.
            if status is not None and sent == 1:
                totals["answered_at_once"] += 1
                counts["ok"] += 1
            wrong = max(0, sent - 1)
            totals["wrong_retries"] += wrong
            counts["wrong_retries"] += wrong
        for index in range(min(kind.retry_after, sent - 1)):
            gap = times[index + 1] - times[index]
            gaps.append(gap)
            if gap < RETRY_AFTER:
                totals["early_retries"] += 1
                counts["early_retries"] += 1
        if kind.retry_after:
            totals["retry_after_answers"] += min(kind.retry_after, sent)
    return {
        "totals": dict(totals),
        "per_kind": {name: dict(counts) for name, counts in per_kind.items()},
        "exceptions": dict(exceptions),
        "retry_after_gaps": gaps,
    }


def run_faults(settings: Settings, progress: Progress, *, seed: int = 7) -> dict[str, Any]:
    """Run the seeded fault mix through every contender, interleaved over rounds."""
    scenario = "fault mix"
    rounds = settings.fault_rounds
    waits: list[float] = []
    tuning = Tuning(budget=False, regions=True, on_retry=lambda event: waits.append(event.delay))
    skipped: dict[str, str] = {}
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    loop = asyncio.new_event_loop()
    labels = {c.key: c.label for c in CONTENDERS}
    try:
        with VendorSimulator() as sim:
            target = Target("loopback", sim.url)
            clients: dict[str, Client] = {}
            try:
                for contender in CONTENDERS:
                    try:
                        clients[contender.key] = build(contender, target, tuning)
                    except Skip as exc:
                        skipped[contender.key] = str(exc)
                        progress(scenario, f"skipped {contender.label}: {exc}")
                # Warm-up: one plain call each, so connections are open.
                for key, client in clients.items():
                    method, url, _, body = _request(sim, Planned("503-once", "8bitedge"), "w")
                    _run_batch(client, [(method, url, {}, body)], loop)
                    progress(scenario, f"warmed up {labels[key]}")
                sim.reset()
                active = [c.key for c in CONTENDERS if c.key in clients]
                for number, order in enumerate(round_orders(active, rounds, seed), 1):
                    calls = plan(settings.fault_per_kind, seed * 1000 + number)
                    for key in order:
                        keys = [f"r{number}-{key}-{index}" for index in range(len(calls))]
                        requests = []
                        for call, sim_key in zip(calls, keys, strict=True):
                            kind = _KINDS[call.kind]
                            sim.script(sim_key, kind.replies(), repeat=kind.repeat)
                            requests.append(_request(sim, call, sim_key))
                        waits.clear()
                        wall, outcomes = _run_batch(clients[key], requests, loop)
                        arrivals: dict[str, list[float]] = defaultdict(list)
                        for seen in sim.received:
                            if seen.key is not None:
                                arrivals[seen.key].append(seen.at)
                        sim.reset()
                        analysis = _analyse(calls, keys, outcomes, arrivals)
                        analysis["wall"] = wall
                        analysis["policy_waits"] = sum(waits)
                        analysis["mandated"] = sum(_KINDS[c.kind].mandated for c in calls)
                        results[key].append(analysis)
                        totals = analysis["totals"]
                        progress(
                            f"{scenario} {number}/{rounds}",
                            f"{labels[key]}: {totals.get('recovered', 0)}/"
                            f"{totals.get('recoverable', 0)} recovered, "
                            f"{totals.get('requests', 0)} requests, {wall:.2f} s",
                        )
            finally:
                close_all(clients.values(), loop)
    finally:
        loop.close()
    return _summarise(results, skipped, settings)


def _summarise(
    results: dict[str, list[dict[str, Any]]], skipped: dict[str, str], settings: Settings
) -> dict[str, Any]:
    rows = []
    for contender in CONTENDERS:
        row = describe(contender)
        runs = results.get(contender.key)
        if not runs:
            row["skipped"] = skipped.get(contender.key, "not run")
            rows.append(row)
            continue
        bare_runs = results.get(BARE[contender.family], [])
        row.update(_row(contender, runs, bare_runs))
        rows.append(row)
    return {
        "scenario": "fault mix",
        "rounds": settings.fault_rounds,
        "calls_per_round": settings.fault_per_kind * len(KINDS),
        "kinds": [
            {
                "name": kind.name,
                "label": kind.label,
                "fewest_requests": kind.fewest,
                "mandated_wait": kind.mandated,
                "recoverable": kind.recoverable,
            }
            for kind in KINDS
        ],
        "rows": rows,
    }


def _row(
    contender: Contender, runs: list[dict[str, Any]], bare_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    gaps: list[float] = []
    walls, floors, ratios, waited, net = [], [], [], [], []
    for index, run in enumerate(runs):
        totals.update(run["totals"])
        exceptions.update(run["exceptions"])
        gaps.extend(run["retry_after_gaps"])
        for name, counts in run["per_kind"].items():
            per_kind[name].update(counts)
        walls.append(run["wall"])
        if index < len(bare_runs):
            bare = bare_runs[index]
            per_request = bare["wall"] / max(1, bare["totals"].get("requests", 1))
            floor = run["mandated"] + run["totals"].get("fewest", 0) * per_request
            floors.append(floor)
            ratios.append(run["wall"] / floor if floor > 0 else float("nan"))
            if contender.role == "resilience":
                # The waits the policy chose beyond the mandated ones (backoff,
                # conflict_delay): what is left once they are added to the floor
                # is the transport's own cost.
                chosen = max(0.0, run["policy_waits"] - run["mandated"])
                waited.append(chosen)
                net.append(run["wall"] / (floor + chosen))
    recoverable = totals.get("recoverable", 0)
    out: dict[str, Any] = {
        "calls": totals.get("calls", 0),
        "requests": totals.get("requests", 0),
        "requests_per_call": totals.get("requests", 0) / max(1, totals.get("calls", 0)),
        "recoverable": recoverable,
        "recovered": totals.get("recovered", 0),
        "recovered_pct": 100.0 * totals.get("recovered", 0) / max(1, recoverable),
        "unrecoverable": totals.get("unrecoverable", 0),
        "answered_at_once": totals.get("answered_at_once", 0),
        "wrong_retries": totals.get("wrong_retries", 0),
        "early_retries": totals.get("early_retries", 0),
        "retry_after_answers": totals.get("retry_after_answers", 0),
        "exceptions": dict(exceptions),
        "retry_after_gap_ms": 1000 * median(gaps) if gaps else None,
        "retry_after_gap_min_ms": 1000 * min(gaps) if gaps else None,
        "per_kind": {name: dict(counts) for name, counts in per_kind.items()},
        "wall_s": median(walls),
        "wall_rounds": walls,
    }
    if contender.role != "bare" and floors:
        out["floor_s"] = median(floors)
        out["wall_over_floor"] = median(ratios)
        out["wall_over_floor_rounds"] = ratios
    if waited:
        out["backoff_chosen_s"] = median(waited)
        out["wall_over_floor_plus_backoff"] = median(net)
    return out
