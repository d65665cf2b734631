"""Hedged requests: call latency against a vendor with a heavy tail of late answers.

The simulator answers 98% of requests at once and 2% after a heavy-tailed
wait (``FaultMix(tail=0.02)``: at least 0.2 s, up to 2 s), each request drawn
on its own, so that a second copy of a late request is itself late only 2% of
the time. Every contender sends ``GET /gameye/session`` (safe to repeat) at
the same fixed rate, whatever its answers' latency (:mod:`benchmarks._pacing`);
each call is timed, and the simulator counts the requests as they arrive. The
retry libraries can only wait for a late answer; resilience with
``hedge=Hedge(delay="p95")`` sends a second copy once an answer is later than
the host's 95th percentile, and takes the first.

Contenders take turns round after round, in a shuffled order, so that a slow
spell of the machine hits them all; a row's percentiles are those of all its
calls. The schedule runs on from one contender's turn to the next (a turn
does not wait for its late answers); each contender's requests carry its own
``X-Sim-Key``, by which the simulator counts them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import resilience
from benchmarks._clients import (
    CONTENDERS,
    Client,
    Contender,
    Skip,
    Target,
    Tuning,
    build,
    describe,
)
from benchmarks._pacing import Pacer, Timed
from benchmarks._settings import HEDGE_DELAY, TAIL_SHARE, Settings
from benchmarks._sim import Server, served
from benchmarks._timing import Progress, median, percentile, round_orders
from resilience.testing import FaultMix

__all__ = ["PERCENTILES", "control_key", "hedged_key", "is_control", "run_hedge"]

#: The percentiles reported, as (JSON field, share of calls).
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))

#: How many of a row's slowest calls keep their attempt history in the JSON.
SLOWEST_KEPT = 5

#: Calls each contender makes before the rounds: its connections opened, and
#: enough answers heard for a p95 (the library wants 20) before any is timed.
WARMUP_CALLS = 50

Seen = tuple[tuple[str | None, int | None, str, float], ...]
"""What one call went through: ``(reason, status, outcome, delay)`` per attempt
(``delay``: seconds waited before a retry, or after the first copy for a hedge)."""


def hedged_key(key: str) -> str:
    """The key of the row that runs contender ``key`` with hedging on."""
    return f"{key}+hedge"


def control_key(key: str) -> str:
    """The key of the control row: contender ``key`` as configured, a second client.

    Its p50 over the plain row's is what the comparison of two identical
    clients gives on this machine: the noise the hedged row's p50 is read against.
    """
    return f"{key}+control"


def is_control(key: str) -> bool:
    """Whether ``key`` is a control row's (see :func:`control_key`)."""
    return key.endswith(control_key(""))


@dataclass(frozen=True)
class Entry:
    """One row of the scenario: a contender, with or without hedging."""

    key: str
    label: str
    contender: Contender
    tuning: Tuning

    @property
    def hedges(self) -> bool:
        """Whether this row hedges."""
        return self.tuning.hedge is not None


def entries() -> list[Entry]:
    """Every contender as it is, and each resilience shell again with hedging
    on, and once more without (the control)."""
    found = []
    for contender in CONTENDERS:
        found.append(Entry(contender.key, contender.label, contender, Tuning()))
        if contender.role == "resilience":
            found.append(
                Entry(
                    control_key(contender.key),
                    f"{contender.label}, again (control)",
                    contender,
                    Tuning(),
                )
            )
            found.append(
                Entry(
                    hedged_key(contender.key),
                    f'{contender.label}, Hedge(delay="{HEDGE_DELAY}")',
                    contender,
                    Tuning(hedge=HEDGE_DELAY),
                )
            )
    return found


def _seen(response: Any) -> Seen:
    return tuple(
        (getattr(a, "reason", None), a.status, a.outcome, a.delay)
        for a in resilience.attempts(response)
    )


def _is_hedge(attempt: tuple[str | None, int | None, str, float]) -> bool:
    return attempt[0] == "hedge"


@dataclass
class _Tally:
    """What one row measured, round after round."""

    timed: list[Timed[Seen]] = field(default_factory=list)
    requests: int = 0
    p50_rounds: list[float] = field(default_factory=list)

    turns: list[list[Future[Timed[Seen]]]] = field(default_factory=list)

    def add(self, turn: list[Future[Timed[Seen]]]) -> None:
        """Add one turn's calls (still running)."""
        self.turns.append(turn)

    def collect(self) -> None:
        """Wait for every call of every turn (the late ones end last) and keep their times."""
        for turn in self.turns:
            timed = [future.result() for future in turn]
            self.timed.extend(timed)
            self.p50_rounds.append(1000 * percentile([t.seconds for t in timed], 0.5))
        self.turns = []


def summarise_row(entry: Entry, tally: _Tally) -> dict[str, Any]:
    """The row's figures: percentiles in ms, requests per call, hedges seen."""
    calls = len(tally.timed)
    ms = [1000 * t.seconds for t in tally.timed]
    row: dict[str, Any] = {
        **describe(entry.contender),
        "key": entry.key,
        "label": entry.label,
        "hedge": entry.tuning.hedge,
        "calls": calls,
        "requests": tally.requests,
        "requests_per_call": tally.requests / calls if calls else float("nan"),
        "mean_ms": sum(ms) / calls if calls else float("nan"),
        "max_ms": max(ms, default=float("nan")),
        "late_p99_ms": percentile([1000 * t.late for t in tally.timed], 0.99),
        "late_max_ms": max((1000 * t.late for t in tally.timed), default=float("nan")),
        "p50_rounds_ms": tally.p50_rounds,
        "errors": dict(Counter(t.error for t in tally.timed if t.error is not None)),
    }
    for name, share in PERCENTILES:
        row[f"{name}_ms"] = percentile(ms, share)
    if entry.contender.role == "resilience":
        seen = [t.seen or () for t in tally.timed]
        row["hedges"] = sum(sum(1 for a in s if _is_hedge(a)) for s in seen)
        row["hedged_calls"] = sum(1 for s in seen if any(_is_hedge(a) for a in s))
        row["hedges_won"] = sum(
            1 for s in seen if any(_is_hedge(a) and a[2] == "return" for a in s)
        )
        row["attempts_per_call"] = sum(len(s) for s in seen) / calls if calls else float("nan")
        slowest = sorted(tally.timed, key=lambda t: t.seconds, reverse=True)[:SLOWEST_KEPT]
        row["slowest"] = [
            {"ms": 1000 * t.seconds, "attempts": [list(a) for a in t.seen or ()], "error": t.error}
            for t in slowest
        ]
    return row


def compare(rows: list[dict[str, Any]]) -> None:
    """Give each hedged row its figures against the same shell without hedging,
    and each control row its p50 against the same shell's first client."""
    by_key = {row["key"]: row for row in rows if "skipped" not in row}
    for row in by_key.values():
        key = row["key"]
        control = is_control(key)
        if row.get("hedge") is None and not control:
            continue
        plain = by_key.get(key.removesuffix(hedged_key("")).removesuffix(control_key("")))
        if plain is None:
            continue
        if not control:
            p99, p999 = row["p99_ms"], row["p999_ms"]
            row["p99_cut"] = plain["p99_ms"] / p99 if p99 > 0 else float("nan")
            row["p999_cut"] = plain["p999_ms"] / p999 if p999 > 0 else float("nan")
        row["p50_ratio"] = row["p50_ms"] / plain["p50_ms"] if plain["p50_ms"] > 0 else float("nan")
        rounds = zip(row["p50_rounds_ms"], plain["p50_rounds_ms"], strict=False)
        ratios = [ours / theirs for ours, theirs in rounds if theirs > 0]
        row["p50_ratio_rounds"] = ratios
        row["p50_ratio_of_rounds"] = median(ratios)


@contextlib.contextmanager
def _built(
    found: list[Entry],
    url: str,
    pacer: Pacer,
    skipped: dict[str, str],
    progress: Progress,
) -> Iterator[dict[str, Client]]:
    """Every row's client, closed after (the async ones on the pacer's loop, where they ran)."""
    clients: dict[str, Client] = {}
    try:
        for entry in found:
            try:
                target = Target("loopback", url, headers=(("X-Sim-Key", entry.key),))
                clients[entry.key] = build(entry.contender, target, entry.tuning)
            except Skip as exc:
                skipped[entry.key] = str(exc)
                progress("hedging", f"skipped {entry.label}: {exc}")
        yield clients
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                if client.is_async:
                    pacer.run(client.close())
                else:
                    client.close()


def _send(
    pacer: Pacer, client: Client, url: str, calls: int, settings: Settings
) -> list[Future[Timed[Seen]]]:
    rate = settings.hedge_async_rate if client.is_async else settings.hedge_rate
    return pacer.send(client.get, url, calls, _seen, rate=rate, is_async=client.is_async)


def _measure(
    server: Server,
    settings: Settings,
    progress: Progress,
    seed: int,
) -> tuple[list[Entry], dict[str, _Tally], dict[str, str]]:
    """Warm every contender up, then run the rounds; the tallies by row key."""
    url = server.url + "/gameye/session"
    found = entries()
    labels = {entry.key: entry.label for entry in found}
    skipped: dict[str, str] = {}
    rounds = settings.hedge_rounds
    per_round = max(1, settings.hedge_calls // rounds)
    with (
        Pacer() as pacer,
        _built(found, server.url, pacer, skipped, progress) as clients,
    ):
        for key, client in clients.items():
            for future in _send(pacer, client, url, WARMUP_CALLS, settings):
                future.result()
            progress("hedging", f"warmed up {labels[key]}")
        warmed = {key: server.count(key) for key in clients}
        tallies = {key: _Tally() for key in clients}
        for number, order in enumerate(round_orders(list(clients), rounds, seed), 1):
            for key in order:
                tallies[key].add(_send(pacer, clients[key], url, per_round, settings))
            progress("hedging", f"round {number}/{rounds} sent")
        for key, tally in tallies.items():
            tally.collect()
            tally.requests = server.count(key) - warmed[key]
    return found, tallies, skipped


def run_hedge(
    settings: Settings, progress: Progress, *, seed: int = 1, child_server: bool = True
) -> dict[str, Any]:
    """Time every contender's calls against a vendor whose answers are sometimes late.

    Args:
        settings: run sizes.
        progress: where progress lines go.
        seed: seed of the simulator's draws and of the round orders.
        child_server: run the simulator in a child process.

    Returns:
        The scenario's results (JSON-friendly).
    """
    started = time.perf_counter()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mix = FaultMix(tail=TAIL_SHARE, tail_seconds=settings.hedge_tail_seconds)
    with served(child=child_server, record=True) as server:
        server.serve_faults(mix, seed=seed)
        where = server.where
        found, tallies, skipped = _measure(server, settings, progress, seed)
    rows = []
    for entry in found:
        tally = tallies.get(entry.key)
        if tally is None or not tally.timed:
            rows.append(
                {
                    **describe(entry.contender),
                    "key": entry.key,
                    "label": entry.label,
                    "hedge": entry.tuning.hedge,
                    "skipped": skipped.get(entry.key, "not run"),
                }
            )
            continue
        rows.append(summarise_row(entry, tally))
    compare(rows)
    return {
        "scenario": "hedging",
        "where": f"simulator in a {where}"
        if where == "child process"
        else "simulator in this process",
        "faults": mix.describe(),
        "tail_share": TAIL_SHARE,
        "tail_seconds": settings.hedge_tail_seconds,
        "hedge": f'Hedge(delay="{HEDGE_DELAY}")',
        "calls": settings.hedge_calls,
        "rounds": settings.hedge_rounds,
        "rate": settings.hedge_rate,
        "async_rate": settings.hedge_async_rate,
        "date": date,
        "elapsed_s": time.perf_counter() - started,
        "rows": rows,
    }
