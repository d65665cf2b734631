"""The hedging scenario in the reports: its table, its targets and its part of "How it compares"."""

from __future__ import annotations

from typing import Any

from benchmarks._format import find_row, label, num, ratio, ratio3, shell_target, table
from benchmarks._hedge import control_key, hedged_key, is_control
from benchmarks._settings import HEDGE_DELAY

__all__ = ["hedge_heading", "hedge_section", "hedge_table", "hedge_targets"]

_HEDGE = f'`Hedge(delay="{HEDGE_DELAY}")`'

#: The issue's limits: p99 cut at least this much, requests per call at most
#: that, p50 within this share of the same shell without hedging.
P99_CUT = 5.0
REQUESTS_PER_CALL = 1.10
P50_CHANGE = 0.05
#: The outage's limit on requests per call, hedging on or off.
OUTAGE_REQUESTS_PER_CALL = 1.25


def hedge_table(result: dict[str, Any]) -> str:
    """Latency percentiles, load and hedges per contender."""
    rows = []
    for row in result["rows"]:
        if "skipped" in row:
            rows.append([label(row)] + ["—"] * 10 + [f"skipped: {row['skipped']}"])
            continue
        hedged = row.get("hedged_calls")
        rows.append(
            [
                label(row),
                num(row["p50_ms"], 2),
                num(row["p90_ms"], 2),
                num(row["p99_ms"], 1),
                num(row["p999_ms"], 1),
                num(row["max_ms"], 0),
                num(row["requests_per_call"], 3),
                "" if hedged is None else f"{hedged:,} ({100 * hedged / row['calls']:.1f}%)",
                ratio(row["p99_cut"]) if "p99_cut" in row else "",
                ratio3(row["p50_ratio"]) if "p50_ratio" in row else "",
                num(row.get("late_p99_ms"), 1),
                ", ".join(f"{n} {name}" for name, n in sorted(row["errors"].items())),
            ]
        )
    return table(
        [
            "contender",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "requests/call",
            "calls hedged",
            "p99 cut",
            "p50 vs no hedge",
            "late start p99 ms",
            "errors",
        ],
        rows,
        "lrrrrrrrrrrl",
    )


def hedge_heading(result: dict[str, Any]) -> str:
    """The scenario in one line, for the terminal's heading."""
    return (
        f"Hedged requests: {result['faults']} ({result['where']}; {result['calls']:,} calls "
        f"per contender at {result['rate']:g} calls/s, async {result['async_rate']:g}/s, "
        f"{result['rounds']} rounds)"
    )


def hedge_targets(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's hedging targets, per resilience shell, and the outage's with hedging on."""
    targets = []
    hedge = scenarios.get("hedge")
    if hedge:
        targets += [
            shell_target(
                hedge,
                f"hedging: p99 without hedging over p99 with {_HEDGE}, same shell",
                f"≥ {P99_CUT:.2f}x",
                "p99_cut",
                ratio,
                lambda v: v >= P99_CUT,
                key=hedged_key,
            ),
            shell_target(
                hedge,
                f"hedging: requests per call with {_HEDGE} (counted by the simulator)",
                f"≤ {REQUESTS_PER_CALL:.2f}",
                "requests_per_call",
                lambda v: num(v, 3),
                lambda v: v <= REQUESTS_PER_CALL,
                key=hedged_key,
            ),
            _with_control(
                shell_target(
                    hedge,
                    f"hedging: p50 with {_HEDGE} vs without, same shell",
                    f"{1 - P50_CHANGE:.2f}x to {1 + P50_CHANGE:.2f}x",
                    "p50_ratio",
                    ratio3,
                    lambda v: abs(v - 1.0) <= P50_CHANGE,
                    key=hedged_key,
                ),
                hedge,
            ),
        ]
    outage = scenarios.get("outage")
    if outage:
        targets.append(
            shell_target(
                outage,
                f"outage: requests per call with {_HEDGE} and the default retry budget "
                "(the worst window)",
                f"≤ {OUTAGE_REQUESTS_PER_CALL:.2f}",
                "worst_requests_per_call",
                lambda v: num(v, 3),
                lambda v: v <= OUTAGE_REQUESTS_PER_CALL,
                key=hedged_key,
            )
        )
    return targets


def _has_control(result: dict[str, Any]) -> bool:
    """Whether the run has control rows (runs before they were added have none)."""
    return any(is_control(row["key"]) for row in result["rows"])


def _control_clause(result: dict[str, Any]) -> str:
    if not _has_control(result):
        return ""
    return ", once more as a control (a second client, configured the same)"


def _with_control(target: dict[str, Any], hedge: dict[str, Any]) -> dict[str, Any]:
    """``target``, its measured figures followed by the control rows' p50 ratios:
    two identical clients compared the same way, the noise of the comparison."""
    control = shell_target(hedge, "", "", "p50_ratio", ratio3, lambda v: True, key=control_key)
    if control["measured"] != "—":
        target["measured"] += f" (control, no hedging: {control['measured']})"
    return target


def _findings(result: dict[str, Any]) -> str:
    """What the run shows, in sentences written from its figures."""
    hedged = find_row(result, hedged_key("httpx+resilience"))
    waiting_rows = [r for r in result["rows"] if "skipped" not in r and r.get("hedge") is None]
    if not waiting_rows:
        return ""
    p99 = [r["p99_ms"] for r in waiting_rows]
    p999 = [r["p999_ms"] for r in waiting_rows]
    waiting = (
        "Without hedging every contender waits for the late answers, which are not errors "
        f"any of them could retry: p99 {num(min(p99), 0)} to {num(max(p99), 0)} ms, p99.9 "
        f"{num(min(p999), 0)} to {num(max(p999), 0)} ms."
    )
    if not hedged:
        return waiting + " The hedged rows did not run (see their note)."
    return waiting + (
        f" With {_HEDGE}, ResilientTransport sends a second copy once an answer is later "
        f"than the 95th percentile of the host's recent latencies: p99 "
        f"{num(hedged['p99_ms'], 1)} ms ({ratio(hedged.get('p99_cut'))} lower), p99.9 "
        f"{num(hedged['p999_ms'], 1)} ms, for {num(hedged['requests_per_call'], 3)} requests "
        f"per call ({hedged['hedged_calls']:,} of {hedged['calls']:,} calls hedged, the copy "
        f"answering first in {hedged['hedges_won']:,}); its p50 is "
        f"{ratio3(hedged.get('p50_ratio'))} of the p50 without hedging."
    )


def hedge_section(result: dict[str, Any]) -> list[str]:
    """The "Hedged requests" part of "How it compares"."""
    return [
        "### Hedged requests: a vendor with a heavy tail of late answers",
        (
            f"The embedded simulator ({result['where'].removeprefix('simulator ')}) serves "
            f"`FaultMix(tail={result['tail_share']}, "
            f"tail_seconds={result['tail_seconds']})`: {result['faults']}. 98% of the answers "
            "come at once; 2% come after a heavy-tailed wait (at least "
            f"{result['tail_seconds']} s, more than k times that with probability 1/k², at "
            "most 10 times that), each request drawn on its own, so a second copy of a late "
            "request is late only 2% of the time and the 95th percentile of latency stays "
            "among the fast answers, as in Dean and Barroso's *The Tail at Scale*. Every "
            f"contender sends {result['calls']:,} `GET /gameye/session` calls at "
            f"{result['rate']:g} calls per second ({result['async_rate']:g} for async httpx, "
            "whose one event loop falls behind at the higher rate on this machine), whatever "
            "their latency: an open loop, each call starting on schedule on a pool of threads "
            "or as a task, so that late answers overlap and the contenders of a library are "
            "offered the same load whether they wait for the tail or cut it short. The retry "
            "settings are those above; contenders take turns over "
            f"{result['rounds']} rounds in a shuffled order. Each call is "
            "timed; the percentiles are those of all of a contender's calls, and "
            "*requests/call* is the simulator's count of the contender's requests (each "
            "contender sends its own `X-Sim-Key`), over its calls. resilience runs once as "
            f"configured above{_control_clause(result)} and once with {_HEDGE}. This "
            f"scenario ran on {result['date']}, in "
            f"{result['elapsed_s']:.0f} s."
        ),
        hedge_table(result),
        (
            "*calls hedged*: calls whose `resilience.attempts()` hold an attempt with reason "
            '`"hedge"`. *p99 cut*: the same shell\'s p99 without hedging over its p99 with '
            "it. *p50 vs no hedge*: its p50 over the same shell's p50 without hedging"
            + (
                "; on the control rows (*again*), a second client configured as the first, it "
                "is what the same comparison gives for two identical clients: its noise"
                if _has_control(result)
                else ""
            )
            + ". *late "
            "start*: how long after its time on the schedule a call started (the 99th "
            "percentile); more than a few milliseconds means the client, or the machine, "
            "could not keep up with the rate, and the row times a queue."
        ),
        _findings(result),
    ]
