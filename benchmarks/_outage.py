"""The outage: every answer is a 503; how many requests each logical call sends.

No contender keeps time-based state (resilience's retry budget counts
outcomes, not seconds), so a call rate is simulated by the number of calls
made during the outage: 1 call/s for a minute is 60 calls, 100 calls/s for
ten seconds is 1,000. Every contender gets a fresh client per window (a fresh
budget for resilience) and a zero backoff, so the run measures load, not waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
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
    close,
    describe,
)
from benchmarks._hedge import hedged_key
from benchmarks._settings import HEDGE_DELAY, Settings
from benchmarks._timing import Progress
from resilience.testing import Reply, VendorSimulator

__all__ = ["run_outage"]


@dataclass(frozen=True)
class Variant:
    """A contender with the tuning of one outage row."""

    contender: Contender
    tuning: Tuning
    budget: str

    def describe(self) -> dict[str, Any]:
        """The row's first fields; a hedging row has its own key and label."""
        row = describe(self.contender)
        if self.tuning.hedge is not None:
            row["key"] = hedged_key(self.contender.key)
            row["label"] = f'{self.contender.label}, Hedge(delay="{self.tuning.hedge}")'
        return row


def _variants(settings: Settings) -> list[Variant]:
    variants = []
    for contender in CONTENDERS:
        if contender.role == "resilience":
            variants.append(Variant(contender, Tuning(backoff=0.0), "on (default)"))
            variants.append(Variant(contender, Tuning(backoff=0.0, budget=False), "off"))
            # Hedges spend the retry budget: hedging on must not add load to an outage.
            hedging = Tuning(backoff=0.0, hedge=HEDGE_DELAY)
            variants.append(Variant(contender, hedging, "on (default)"))
        else:
            variants.append(Variant(contender, Tuning(backoff=0.0), "n/a"))
    if settings.outage_defaults:
        transport = next(c for c in CONTENDERS if c.key == "httpx+resilience")
        variants.append(Variant(transport, Tuning(defaults=True), "on (every default)"))
    return variants


async def _calls_async(client: Client, url: str, count: int) -> tuple[float, Counter[str]]:
    seen: Counter[str] = Counter()
    start = time.perf_counter()
    for _ in range(count):
        try:
            seen[str(client.status(await client.get(url)))] += 1
        except Exception as exc:
            seen[type(exc).__name__] += 1
    return time.perf_counter() - start, seen


def _calls(
    client: Client, url: str, count: int, loop: asyncio.AbstractEventLoop
) -> tuple[float, Counter[str]]:
    if client.is_async:
        return loop.run_until_complete(_calls_async(client, url, count))
    seen: Counter[str] = Counter()
    start = time.perf_counter()
    for _ in range(count):
        try:
            seen[str(client.status(client.get(url)))] += 1
        except Exception as exc:
            seen[type(exc).__name__] += 1
    return time.perf_counter() - start, seen


def run_outage(settings: Settings, progress: Progress) -> dict[str, Any]:
    """Count the requests per logical call while every answer is a 503."""
    scenario = "outage"
    rows = []
    loop = asyncio.new_event_loop()
    try:
        with VendorSimulator() as sim:
            url = sim.base("gameye") + "/session"
            target = Target("loopback", sim.url)
            for variant in _variants(settings):
                contender = variant.contender
                row: dict[str, Any] = {
                    **variant.describe(),
                    "budget": variant.budget,
                    "backoff": "0.5 s (default)" if variant.tuning.defaults else "0",
                    "windows": [],
                }
                for label, count in settings.outage_windows:
                    sim.reset()
                    sim.fail_all(Reply.error(503))
                    try:
                        client = build(contender, target, variant.tuning)
                    except Skip as exc:
                        row["skipped"] = str(exc)
                        break
                    try:
                        elapsed, seen = _calls(client, url, count, loop)
                    finally:
                        with contextlib.suppress(Exception):
                            close(client, loop)
                    sent = sim.count()
                    row["windows"].append(
                        {
                            "window": label,
                            "calls": count,
                            "requests": sent,
                            "requests_per_call": sent / count,
                            "ms_per_call": 1000 * elapsed / count,
                            "outcomes": dict(seen),
                        }
                    )
                    progress(
                        scenario,
                        f"{row['label']} (budget {variant.budget}), {label}: "
                        f"{sent / count:.2f} requests per call",
                    )
                if row["windows"]:
                    row["worst_requests_per_call"] = max(
                        window["requests_per_call"] for window in row["windows"]
                    )
                rows.append(row)
    finally:
        loop.close()
    return {
        "scenario": "outage",
        "reply": "503 to every request",
        "windows": [{"window": label, "calls": count} for label, count in settings.outage_windows],
        "rows": rows,
    }
