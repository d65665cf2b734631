"""Success-path overhead: N successful GETs, in-process and over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import resilience
from benchmarks._clients import (
    CANNED_BODY,
    CONTENDERS,
    Client,
    Contender,
    Skip,
    Target,
    build,
    close_all,
    describe,
    in_process_resilient_adapter,
)
from benchmarks._settings import Settings
from benchmarks._sim import served
from benchmarks._timing import (
    Progress,
    median,
    round_orders,
    summarise,
    time_calls,
    time_calls_async,
    time_interleaved,
)

__all__ = ["BARE", "run_success"]

#: The bare client each family is compared with.
BARE = {"requests": "requests", "httpx": "httpx", "httpx-async": "httpx-async"}


def _one(client: Client, url: str, loop: asyncio.AbstractEventLoop) -> Any:
    if client.is_async:
        return loop.run_until_complete(client.get(url))
    return client.get(url)


def _check(contender: Contender, client: Client, url: str, inproc: bool, loop: Any) -> None:
    """Raise :class:`Skip` unless one call answers 200 the way it should."""
    try:
        response = _one(client, url, loop)
    except Exception as exc:
        raise Skip(f"a GET failed: {type(exc).__name__}: {exc}") from exc
    if client.status(response) != 200:
        raise Skip(f"a GET answered {client.status(response)}")
    if inproc and response.content != CANNED_BODY:
        raise Skip("the in-process answer was not the canned one")
    if contender.role == "resilience" and len(resilience.attempts(response)) != 1:
        raise Skip("the response carries no attempt history: not sent through resilience")


def _time(
    client: Client, url: str, calls: int, loop: asyncio.AbstractEventLoop, per_call: bool
) -> float:
    if client.is_async:
        return time_calls_async(loop, client.get, url, calls, per_call=per_call)
    return time_calls(client.get, url, calls, per_call=per_call)


def run_success(
    kind: str,
    settings: Settings,
    progress: Progress,
    *,
    seed: int = 1,
    child_server: bool = True,
) -> dict[str, Any]:
    """Time N successful GETs per contender, interleaved over rounds.

    Args:
        kind: ``"inproc"`` (no socket) or ``"loopback"`` (``GET /ping`` on the simulator).
        settings: run sizes.
        progress: where progress lines go.
        seed: seed of the round orders.
        child_server: run the loopback simulator in a child process.

    Returns:
        The scenario's results (JSON-friendly).
    """
    inproc = kind == "inproc"
    scenario = "success, in-process" if inproc else "success, loopback"
    calls = settings.inproc_calls if inproc else settings.loopback_calls
    rounds = settings.inproc_rounds if inproc else settings.loopback_rounds
    skipped: dict[str, str] = {}
    samples: dict[str, list[float]] = {}
    pooled: dict[str, list[float]] = {}  # every call over loopback, all rounds
    loop = asyncio.new_event_loop()
    where = "in-process"
    try:
        with contextlib.ExitStack() as stack:
            if inproc:
                try:
                    stack.enter_context(in_process_resilient_adapter())
                except Skip as exc:
                    skipped["requests+resilience"] = str(exc)
                target = Target("inproc")
                url = f"{target.base}/ping"
            else:
                server = stack.enter_context(served(child=child_server))
                where = (
                    "simulator in a child process"
                    if server.where == "child process"
                    else "simulator in this process"
                )
                target = Target("loopback", server.url)
                url = f"{server.url}/ping"
            clients: dict[str, Client] = {}
            try:
                for contender in CONTENDERS:
                    if contender.key in skipped:
                        continue
                    try:
                        client = build(contender, target)
                    except Skip as exc:
                        skipped[contender.key] = str(exc)
                        progress(scenario, f"skipped {contender.label}: {exc}")
                        continue
                    clients[contender.key] = client
                    try:
                        _check(contender, client, url, inproc, loop)
                        _time(client, url, max(20, calls // 5), loop, not inproc)
                    except Skip as exc:
                        skipped[contender.key] = str(exc)
                        progress(scenario, f"skipped {contender.label}: {exc}")
                        continue
                    progress(scenario, f"warmed up {contender.label}")
                active = [c.key for c in CONTENDERS if c.key in clients and c.key not in skipped]
                samples = {key: [] for key in active}
                pooled = {key: [] for key in active}
                labels = {c.key: c.label for c in CONTENDERS}
                for number, order in enumerate(round_orders(active, rounds, seed), 1):
                    if inproc:
                        for key in order:
                            value = _time(clients[key], url, calls, loop, False)
                            samples[key].append(value)
                            progress(
                                f"{scenario} {number}/{rounds}",
                                f"{labels[key]}: {value:.1f} µs/call",
                            )
                        continue
                    turns = [(key, clients[key].get, clients[key].is_async) for key in order]
                    times = time_interleaved(turns, url, calls, loop)
                    for key in order:
                        pooled[key].extend(times[key])
                        samples[key].append(median(times[key]))
                        progress(
                            f"{scenario} {number}/{rounds}",
                            f"{labels[key]}: median call {samples[key][-1]:.1f} µs",
                        )
            finally:
                close_all(clients.values(), loop)
    finally:
        loop.close()
    rows = []
    for contender in CONTENDERS:
        row = describe(contender)
        if contender.key in skipped or contender.key not in samples:
            row["skipped"] = skipped.get(contender.key, "not run")
        else:
            bare = samples.get(BARE[contender.family])
            is_bare = contender.role == "bare"
            row.update(
                summarise(
                    samples[contender.key],
                    None if is_bare else bare,
                    pooled=pooled.get(contender.key),
                    pooled_bare=None if is_bare else pooled.get(BARE[contender.family]),
                )
            )
        rows.append(row)
    return {
        "scenario": scenario,
        "kind": kind,
        "where": where,
        "calls_per_round": calls,
        "rounds": rounds,
        "unit": "µs per call" + ("" if inproc else " (median call of all rounds)"),
        "rows": rows,
    }
