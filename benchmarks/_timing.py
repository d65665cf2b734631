"""Timing loops, interleaved rounds and the statistics reported."""

from __future__ import annotations

import asyncio
import gc
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Progress",
    "calls_per_us",
    "median",
    "percentile",
    "round_orders",
    "summarise",
    "time_calls",
    "time_calls_async",
    "time_interleaved",
]


def time_calls(get: Callable[[str], Any], url: str, calls: int, *, per_call: bool = False) -> float:
    """Microseconds per call of ``get(url)`` over ``calls`` calls.

    The mean of the block, or with ``per_call`` the median of the calls timed
    one by one (robust to the scheduler's tail over loopback).
    """
    gc.collect()
    clock = time.perf_counter
    if per_call:
        times = []
        for _ in range(calls):
            start = clock()
            get(url)
            times.append(clock() - start)
        return statistics.median(times) * 1e6
    start = clock()
    for _ in range(calls):
        get(url)
    return (clock() - start) / calls * 1e6


async def _time_async(get: Callable[[str], Any], url: str, calls: int, per_call: bool) -> float:
    clock = time.perf_counter
    if per_call:
        times = []
        for _ in range(calls):
            start = clock()
            await get(url)
            times.append(clock() - start)
        return statistics.median(times) * 1e6
    start = clock()
    for _ in range(calls):
        await get(url)
    return (clock() - start) / calls * 1e6


def time_calls_async(
    loop: asyncio.AbstractEventLoop,
    get: Callable[[str], Any],
    url: str,
    calls: int,
    *,
    per_call: bool = False,
) -> float:
    """Like :func:`time_calls` for ``await get(url)`` (calls one after the other)."""
    gc.collect()
    return loop.run_until_complete(_time_async(get, url, calls, per_call))


async def _timed_await(get: Callable[[str], Any], url: str) -> float:
    start = time.perf_counter()
    await get(url)
    return time.perf_counter() - start


def time_interleaved(
    calls: Sequence[tuple[str, Callable[[str], Any], bool]],
    url: str,
    count: int,
    loop: asyncio.AbstractEventLoop,
    block: int = 10,
) -> dict[str, list[float]]:
    """Microseconds of every call, the contenders taking turns every ``block`` calls.

    ``calls`` holds ``(key, get, is_async)`` in the order of the round; each
    pass sends ``block`` calls through every contender in turn, so a slow
    spell of the machine hits them all alike. An async ``get`` is timed inside
    the event loop, without the cost of entering it.
    """
    gc.collect()
    clock = time.perf_counter
    times: dict[str, list[float]] = {key: [] for key, _, _ in calls}
    for _ in range(max(1, count // block)):
        for key, get, is_async in calls:
            record = times[key].append
            for _ in range(block):
                if is_async:
                    record(loop.run_until_complete(_timed_await(get, url)) * 1e6)
                else:
                    start = clock()
                    get(url)
                    record((clock() - start) * 1e6)
    return times


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value at or above ``share`` of them.

    ``share`` is in (0, 1] (``0.999`` for p99.9); ``nan`` for no values.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def calls_per_us(total_us: float, calls: int) -> float:
    """Per-call microseconds."""
    return total_us / max(1, calls)


def round_orders(keys: Sequence[str], rounds: int, seed: int) -> list[list[str]]:
    """One shuffled order of ``keys`` per round (seeded: the same for every run)."""
    rng = random.Random(seed)
    orders = []
    for _ in range(rounds):
        order = list(keys)
        rng.shuffle(order)
        orders.append(order)
    return orders


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def summarise(
    samples: Sequence[float],
    bare: Sequence[float] | None,
    *,
    pooled: Sequence[float] | None = None,
    pooled_bare: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Median, added cost and ratio to the bare client.

    ``samples`` and ``bare`` hold one value per round, in round order; the
    ratio is the median of the per-round ratios (each round's contender over
    the same round's bare client), with its smallest and largest value.

    With ``pooled`` (every call of every round, timed one by one, interleaved
    with the bare client's ``pooled_bare``), the median, the added cost and
    the ratio are those of the medians of all calls: thousands of calls
    rather than a dozen round medians, each of which jumps between the modes
    of a loopback call's latency. The per-round ratios still give the spread
    (``ratio_min``, ``ratio_max``) and are kept as ``ratio_of_rounds``.
    """
    out: dict[str, Any] = {"rounds": list(samples), "median": median(samples)}
    if pooled:
        out["median"] = median(pooled)
        out["calls"] = len(pooled)
    if bare:
        ratios = [s / b for s, b in zip(samples, bare, strict=False) if b > 0]
        out["added"] = median([s - b for s, b in zip(samples, bare, strict=False)])
        out["ratio"] = median(ratios)
        out["ratio_min"] = min(ratios) if ratios else float("nan")
        out["ratio_max"] = max(ratios) if ratios else float("nan")
        if pooled and pooled_bare:
            out["ratio_of_rounds"] = out["ratio"]
            base = median(pooled_bare)
            out["added"] = out["median"] - base
            out["ratio"] = out["median"] / base
    return out


class Progress:
    """Progress lines on stderr (silent when ``quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, scenario: str, message: str) -> None:
        """Print ``[elapsed] scenario: message``."""
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f}s] {scenario}: {message}", file=sys.stderr, flush=True)
