"""Markdown tables, the targets, and the "How it compares" text."""

from __future__ import annotations

import math
from typing import Any

from benchmarks._format import (
    find_row,
    grouped,
    is_number,
    label,
    num,
    ratio,
    ratio3,
    shell_target,
    signed,
    table,
)
from benchmarks._hedge_report import hedge_heading, hedge_section, hedge_table, hedge_targets
from benchmarks._settings import BACKOFF, RETRY_AFTER

__all__ = ["evaluate_targets", "render_markdown", "render_results_md"]


# -- per-scenario tables ----------------------------------------------------------------


def success_table(result: dict[str, Any]) -> str:
    """Success path: per-call cost, added cost and ratio to the bare client."""
    rows = []
    for row in result["rows"]:
        if "skipped" in row:
            rows.append([label(row), "—", "—", "—", "—", f"skipped: {row['skipped']}"])
            continue
        bare = row["role"] == "bare"
        spread = (
            ""
            if bare
            else f"{row.get('ratio_min', math.nan):.2f}-{row.get('ratio_max', math.nan):.2f}"
        )
        rows.append(
            [
                label(row),
                num(row["median"]),
                "(baseline)" if bare else signed(row.get("added")),
                "1.00x" if bare else ratio(row.get("ratio")),
                spread,
                "",
            ]
        )
    return table(
        ["contender", "µs/call", "added µs/call", "x bare", "x bare, per round", "note"],
        rows,
        "lrrrrl",
    )


def _retry_after_behaviour(row: dict[str, Any]) -> str:
    if row["role"] == "bare":
        return "does not retry"
    kind = row.get("per_kind", {}).get("429-twice", {})
    exceptions = row.get("exceptions") or {}
    gap = row.get("retry_after_gap_ms")
    if kind.get("exceptions"):
        names = ", ".join(sorted(exceptions))
        return f"raises {names}: the call fails at the first 429"
    if row.get("early_retries"):
        return f"ignores it, retries on its own backoff ({num(gap)} ms later, median)"
    if is_number(gap):
        return f"waits it ({num(gap)} ms to the next request, median)"
    return "—"


def faults_table(result: dict[str, Any]) -> str:
    """Fault mix: outcomes, wrong and early retries, load, time against the floor."""
    rows = []
    for row in result["rows"]:
        if "skipped" in row:
            rows.append([label(row)] + ["—"] * 9)
            continue
        exceptions = row.get("exceptions") or {}
        raised = ", ".join(f"{n} {name}" for name, n in sorted(exceptions.items())) or "0"
        rows.append(
            [
                label(row),
                f"{row['recovered']}/{row['recoverable']} ({row['recovered_pct']:.0f}%)",
                f"{row['answered_at_once']}/{row['unrecoverable']}",
                str(row["wrong_retries"]),
                f"{row['early_retries']}/{row['retry_after_answers']}",
                raised,
                num(row["requests_per_call"], 2),
                num(row["wall_s"], 3),
                num(row.get("floor_s"), 3),
                ratio(row.get("wall_over_floor")),
            ]
        )
    return table(
        [
            "contender",
            "recoverable calls that succeed",
            "401/501 answered in 1 request",
            "wrong retries",
            "retries before Retry-After elapsed",
            "exceptions",
            "requests/call",
            "wall s",
            "floor s",
            "wall/floor",
        ],
        rows,
    )


def retry_after_table(result: dict[str, Any]) -> str:
    """What each contender does with ``Retry-After: 0.05``."""
    rows = []
    for row in result["rows"]:
        if "skipped" in row or row["role"] == "bare":
            continue
        rows.append([label(row), _retry_after_behaviour(row)])
    return table(["contender", f"on `429` with `Retry-After: {RETRY_AFTER}`"], rows, "ll")


def outage_table(result: dict[str, Any]) -> str:
    """Outage: requests per logical call in each window."""
    windows = [w["window"] for w in result["windows"]]
    header = ["contender", "retry budget"]
    header += [f"requests/call, {w}" for w in windows]
    header += [f"ms per failed call, {windows[-1]}"]
    rows = []
    for row in result["rows"]:
        if "skipped" in row:
            rows.append([label(row), row["budget"]] + ["—"] * (len(windows) + 1))
            continue
        cells = [label(row), row["budget"]]
        by_window = {w["window"]: w for w in row["windows"]}
        cells += [num(by_window.get(w, {}).get("requests_per_call"), 3) for w in windows]
        cells.append(num(by_window.get(windows[-1], {}).get("ms_per_call"), 2))
        rows.append(cells)
    return table(header, rows, "ll" + "r" * (len(windows) + 1))


def scale_table(result: dict[str, Any]) -> str:
    """Async scale: burst time, per-request cost, ratio to the bare AsyncClient."""
    rows = []
    for row in result["rows"]:
        if "skipped" in row:
            rows.append([label(row), "—", "—", "—", "—", f"skipped: {row['skipped']}"])
            continue
        bare = row["role"] == "bare"
        rows.append(
            [
                label(row),
                num(row["burst_ms"], 0),
                num(row["median"]),
                "1.00x" if bare else ratio(row.get("ratio")),
                "" if bare else f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}",
                str(row.get("failed", 0)),
            ]
        )
    return table(
        [
            "contender",
            f"ms per {result['concurrency']:,} concurrent GETs",
            "µs/request",
            "x bare",
            "x bare, per round",
            "failed",
        ],
        rows,
    )


def fleet_table(result: dict[str, Any]) -> str:
    """Fleet: per limiter, calls that succeed, 429s, load and wall time.

    Every row is resilience, so none is set in bold.
    """
    rows = []
    for row in result["rows"]:
        if "skipped" in row:
            rows.append(
                [row["label"], f"`{row['settings']}`"] + ["—"] * 5 + [f"skipped: {row['skipped']}"]
            )
            continue
        rows.append(
            [
                row["label"],
                f"`{row['settings']}`",
                f"{row['ok']:,}/{row['calls']:,}",
                f"{row['received_429']:,}",
                f"{row['requests']:,}",
                num(row["requests_per_call"], 3),
                num(row["wall_s"], 2),
                "",
            ]
        )
    return table(
        [
            "contender",
            "client-side limiter",
            "logical calls OK",
            "429s received",
            "requests sent",
            "requests/call",
            "wall s",
            "note",
        ],
        rows,
        "llrrrrrl",
    )


def store_table(result: dict[str, Any]) -> str:
    """Store scenario, sync rows: cost per call and ratio to bare httpx, with the settings."""
    rows = []
    for row in result["rows"]:
        settings = f"`{row['settings']}`" if row.get("settings") else ""
        if "skipped" in row:
            rows.append([label(row), settings, "—", "—", "—", f"skipped: {row['skipped']}"])
            continue
        bare = row["role"] == "bare"
        rows.append(
            [
                label(row),
                settings,
                num(row["median"]),
                "1.00x" if bare else ratio(row.get("ratio")),
                "" if bare else f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}",
                "" if bare else ratio(row.get("ratio_of_means")),
            ]
        )
    return table(
        [
            "contender",
            "settings",
            "µs, median call",
            "x bare",
            "x bare, per round",
            "x bare, mean calls",
        ],
        rows,
        "llrrrr",
    )


def store_async_table(result: dict[str, Any]) -> str:
    """Store scenario, async rows: burst time, ratio to bare, and Redis over memory."""
    rows = []
    for row in result["async_rows"]:
        if "skipped" in row:
            rows.append([label(row), "—", "—", "—", "—", f"skipped: {row['skipped']}"])
            continue
        bare = row["role"] == "bare"
        to_memory = row.get("ratio_to_memory")
        rows.append(
            [
                label(row),
                num(row["burst_ms"], 1),
                "1.00x" if bare else ratio(row.get("ratio")),
                ratio(to_memory) if to_memory is not None else "",
                (
                    f"{row['ratio_to_memory_min']:.2f}-{row['ratio_to_memory_max']:.2f}"
                    if to_memory is not None
                    else ""
                ),
                "",
            ]
        )
    return table(
        [
            "contender",
            f"ms per {result['concurrency']:,} concurrent GETs",
            "x bare",
            "x in memory",
            "x in memory, per round",
            "note",
        ],
        rows,
    )


def import_line(result: dict[str, Any]) -> str:
    """The import row, as a sentence."""
    imp = result["import"]
    return (
        f"`import resilience` after `import httpx, requests`, in {imp['runs']} fresh "
        f"interpreters: {num(imp['median_ms'], 1)} ms (median; {num(imp['min_ms'], 1)} to "
        f"{num(imp['max_ms'], 1)} ms)."
    )


def _fleet_heading(result: dict[str, Any]) -> str:
    return (
        f"{result['workers']} processes x {result['calls_per_worker']:,} calls, one API key, "
        f"server limit {result['scaled']} ({result['window']} window per "
        f"`{result['key_header']}`)"
    )


# -- targets --------------------------------------------------------------------------


def evaluate_targets(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, measured: one entry per target, with pass/fail."""
    targets: list[dict[str, Any]] = []

    def ratio_target(scenario: str, key: str, limit: float, name: str) -> None:
        row = find_row(scenarios.get(scenario), key)
        value = row.get("ratio") if row else None
        targets.append(
            {
                "target": name,
                "limit": f"≤ {limit:.2f}x",
                "measured": ratio3(value),
                "value": value,
                "pass": (value <= limit) if value is not None and is_number(value) else None,
            }
        )

    ratio_target(
        "success_inproc",
        "httpx+resilience",
        1.10,
        "success path in-process: ResilientTransport vs bare httpx",
    )
    ratio_target(
        "success_inproc",
        "requests+resilience",
        1.10,
        "success path in-process: ResilientAdapter vs bare requests",
    )
    ratio_target(
        "success_inproc",
        "httpx-async+resilience",
        1.10,
        "success path in-process: AsyncResilientTransport vs bare async httpx",
    )
    ratio_target(
        "success_loopback",
        "requests+resilience",
        1.03,
        "success path over loopback: ResilientAdapter vs bare requests",
    )
    ratio_target(
        "success_loopback",
        "httpx+resilience",
        1.03,
        "success path over loopback: ResilientTransport vs bare httpx",
    )
    ratio_target(
        "success_loopback",
        "httpx-async+resilience",
        1.03,
        "success path over loopback: AsyncResilientTransport vs bare async httpx",
    )
    faults = scenarios.get("faults")
    if faults:

        def fault_target(name: str, limit: str, field: str, fmt: Any, good: Any) -> None:
            targets.append(shell_target(faults, name, limit, field, fmt, good))

        fault_target(
            "fault mix: recoverable calls that succeed",
            "100%",
            "recovered_pct",
            lambda v: f"{v:.0f}%",
            lambda v: v >= 100.0,
        )
        fault_target(
            "fault mix: wrong retries (a 401/501 retried)",
            "0",
            "wrong_retries",
            str,
            lambda v: v == 0,
        )
        fault_target(
            "fault mix: retries sent before a Retry-After elapsed",
            "0",
            "early_retries",
            str,
            lambda v: v == 0,
        )
        fault_target(
            "fault mix: wall time vs least possible (floor)",
            "≤ 1.15x",
            "wall_over_floor",
            ratio3,
            lambda v: v <= 1.15,
        )
    fleet = scenarios.get("fleet")
    if fleet:
        shared = find_row(fleet, "shared")
        unpaced = find_row(fleet, "none")
        value = [r.get("received_429") if r else None for r in (shared, unpaced)]
        targets.append(
            {
                "target": (
                    f"fleet: the shared limiter ({fleet['workers']} processes, one key) "
                    "receives no more 429s than the fleet without a limiter"
                ),
                "limit": "none set (information)",
                "measured": (
                    f"shared {grouped(value[0])} / no limiter {grouped(value[1])} 429s"
                    f" of {fleet['calls']:,} calls"
                ),
                "value": value,
                "pass": None,
                "info": True,
            }
        )
    ratio_target(
        "store",
        "regions",
        1.03,
        "store: regions configured, nothing fails, in-process: vs bare httpx",
    )
    ratio_target(
        "store",
        "full-memory",
        1.10,
        "store: breaker + rate limit + regions + idempotency_key + deadline, in memory: "
        "vs bare httpx",
    )
    ratio_target(
        "store",
        "redis-defaults",
        1.10,
        "store: store=RedisStore(url), defaults (budget only): vs bare httpx",
    )
    ratio_target(
        "store",
        "full-redis",
        1.20,
        "store: the full set over RedisStore (redis-server on loopback): vs bare httpx",
    )
    store = scenarios.get("store")
    async_redis = None
    if store:
        async_redis = next(
            (r for r in store.get("async_rows", []) if r["key"] == "async-redis"), None
        )
    to_memory = async_redis.get("ratio_to_memory") if async_redis else None
    count = f"{store['concurrency']:,}" if store else "1,000"
    targets.append(
        {
            "target": f"store: AsyncResilientTransport, {count} concurrent GETs, rate limit "
            "in RedisStore vs in memory",
            "limit": "≤ 1.20x",
            "measured": ratio3(to_memory),
            "value": to_memory,
            "pass": (to_memory <= 1.20) if to_memory is not None and is_number(to_memory) else None,
        }
    )
    imported = store.get("import") if store else None
    import_ms = imported.get("median_ms") if imported else None
    targets.append(
        {
            "target": "store: `import resilience` after `import httpx, requests` (fresh "
            "interpreters, median)",
            "limit": "≤ 15 ms",
            "measured": f"{import_ms:.1f} ms" if is_number(import_ms) else "—",
            "value": import_ms,
            "pass": (import_ms <= 15.0) if import_ms is not None and is_number(import_ms) else None,
        }
    )
    scale = scenarios.get("async_scale")
    concurrency = f"{scale['concurrency']:,}" if scale else "1,000"
    ratio_target(
        "async_scale",
        "httpx-async+resilience",
        1.10,
        f"async scale: {concurrency} concurrent GETs, AsyncResilientTransport vs bare AsyncClient",
    )
    targets += hedge_targets(scenarios)
    return targets


def targets_table(targets: list[dict[str, Any]]) -> str:
    """The targets with pass/fail."""
    rows = []
    for target in targets:
        if target.get("info"):
            verdict = "information only"
        else:
            verdict = {True: "pass", False: "**fail**", None: "not run"}[target["pass"]]
        rows.append([target["target"], target["limit"], target["measured"], verdict])
    return table(["target", "limit", "measured", "result"], rows, "llll")


# -- whole documents -----------------------------------------------------------------------


def _meta_line(meta: dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    return (
        f"{meta['run']} run, {meta['date']}; Python {meta['python']} on {meta['platform']}, "
        f"{meta['cpus']} CPUs; {versions}; {meta['elapsed_s']:.0f} s in all."
    )


def render_markdown(results: dict[str, Any]) -> str:
    """Every table of a run, for the terminal."""
    scenarios = results["scenarios"]
    parts = [f"# resilience benchmarks\n\n{_meta_line(results['meta'])}"]
    if "success_inproc" in scenarios:
        s = scenarios["success_inproc"]
        parts.append(
            f"## Success path, in-process ({s['calls_per_round']:,} calls x {s['rounds']} "
            f"rounds, mean per call, median of rounds)\n\n{success_table(s)}"
        )
    if "success_loopback" in scenarios:
        s = scenarios["success_loopback"]
        parts.append(
            f"## Success path over loopback, GET /ping ({s['where']}; {s['calls_per_round']:,} "
            f"calls x {s['rounds']} rounds, median of all calls)\n\n{success_table(s)}"
        )
    if "faults" in scenarios:
        s = scenarios["faults"]
        parts.append(
            f"## Fault mix ({s['calls_per_round']} calls x {s['rounds']} rounds; wall, floor "
            f"and wall/floor are medians of rounds)\n\n{faults_table(s)}"
        )
        parts.append(f"## What each contender does with Retry-After\n\n{retry_after_table(s)}")
    if "outage" in scenarios:
        s = scenarios["outage"]
        parts.append(f"## Outage: every answer is a 503\n\n{outage_table(s)}")
    if "hedge" in scenarios:
        s = scenarios["hedge"]
        parts.append(f"## {hedge_heading(s)}\n\n{hedge_table(s)}")
    if "async_scale" in scenarios:
        s = scenarios["async_scale"]
        parts.append(
            f"## Async scale: {s['concurrency']:,} concurrent GETs through one AsyncClient "
            f"({s['rounds']} rounds, median)\n\n{scale_table(s)}"
        )
    if "fleet" in scenarios:
        s = scenarios["fleet"]
        parts.append(
            f"## Fleet: {_fleet_heading(s)}; least possible wall {num(s['floor_s'], 2)} s"
            f"\n\n{fleet_table(s)}"
        )
    if "store" in scenarios:
        s = scenarios["store"]
        parts.append(
            f"## Store and configuration on the success path, in-process ({s['calls_per_round']:,}"
            f" calls x {s['rounds']} rounds, turns of 10 calls, median call)\n\n"
            f"{store_table(s)}\n\n{store_async_table(s)}\n\n{import_line(s)}"
        )
    parts.append(f"## Targets\n\n{targets_table(results['targets'])}")
    parts.append(
        "In-process, *added* and *x bare* are medians of the per-round differences and "
        "ratios to the bare client measured in the same round, so they need not match the "
        "difference of the medians in the *µs/call* column. Over loopback they compare the "
        "median of all calls with the bare client's, and *x bare, per round* gives the "
        "spread of the rounds."
    )
    return "\n\n".join(parts) + "\n"


def _share(part: Any, whole: Any) -> str:
    if not (is_number(part) and is_number(whole)) or whole <= 0:
        return "—"
    return f"{100 * part / whole:.0f}%"


def _find(results: dict[str, Any], scenario: str, key: str, field: str) -> Any:
    row = find_row(results["scenarios"].get(scenario), key)
    return row.get(field) if row else None


def _fleet_section(s: dict[str, Any]) -> list[str]:
    """The "Fleet" part of "How it compares"."""
    unpaced = find_row(s, "none")
    shared = find_row(s, "shared")
    local = find_row(s, "local")
    skipped_shared = next(
        (row["skipped"] for row in s["rows"] if row["key"] == "shared" and "skipped" in row),
        None,
    )
    redis = (
        f"redis-server {s['redis_server']} on loopback"
        if s.get("redis_server")
        else "a redis-server on loopback"
    )
    findings = []
    if unpaced:
        lost = unpaced["calls"] - unpaced["ok"]
        findings.append(
            f"Without a limiter the fleet finds the limit by hitting it: "
            f"{unpaced['received_429']:,} 429s, {num(unpaced['requests_per_call'], 3)} "
            "requests per call; a refused worker comes back when its `Retry-After` says a "
            "slot frees, together with the others refused at about the same time"
            + (
                f", and {lost:,} calls still ended in a 429 after 4 attempts."
                if lost
                else "; every call succeeded within its 4 attempts."
            )
        )
    if shared:
        findings.append(
            "The shared limiter paces the whole fleet with one token bucket in Redis at the "
            f"plan's rate: {shared['received_429']:,} 429s, "
            f"{num(shared['requests_per_call'], 3)} requests per call."
            + (
                f" Paced at exactly the limit, request n + {s['limit']:,} can still reach "
                "the server a little less than a window after request n when the two take "
                "different times to arrive; such a 429 holds every process through the "
                "store for its `Retry-After` and lowers the rate for a while (the adaptive "
                "decrease)."
                if shared["received_429"]
                else ""
            )
        )
    elif skipped_shared:
        findings.append(f"The shared limiter did not run: {skipped_shared}.")
    per_call = find_row(s, "shared-per-call")
    if shared and per_call:
        findings.append(
            "Leasing changes what the limiter costs, not what it sends: with each process "
            f"leasing its tokens ahead of need the fleet received {shared['received_429']:,} "
            f"429s, sent {shared['requests']:,} requests in {num(shared['wall_s'], 2)} s; "
            "with one token per call, each a round trip to Redis while the call waits (the "
            f"store before leases, `lease=0`), {per_call['received_429']:,} 429s, "
            f"{per_call['requests']:,} requests in {num(per_call['wall_s'], 2)} s."
        )
    if local:
        findings.append(
            f"Per-process limiters at 1/{s['workers']} of the plan each received "
            f"{local['received_429']:,} 429s in {num(local['wall_s'], 2)} s: they need no "
            "Redis while the fleet's size is fixed and known, but a share is lost whenever "
            "a process idles, and the plan must be divided again whenever the fleet grows "
            "or shrinks."
        )
    if unpaced and shared:
        findings.append(
            f"Wall times: {num(unpaced['wall_s'], 2)} s without a limiter, "
            f"{num(shared['wall_s'], 2)} s shared, against a least possible "
            f"{num(s['floor_s'], 2)} s. A limiter with burst 1 paces from the first call, "
            f"so it leaves unused the empty first window ({s['limit']:,} calls) that the "
            "unpaced fleet spends at once and the least possible time counts on; a larger "
            "burst on top of the full rate would send more than the limit in that window."
        )
    return [
        "### Fleet: processes sharing one rate-limited API key",
        (
            "8bitedge counts requests per API key, across every worker using it: 120 per "
            f"minute on the plan its error page quotes. The simulator ({s['where']}) enforces "
            f"that limit with a {s['window']} window per `{s['key_header']}` value, answering "
            "429 `rate_limit_exceeded` with a `Retry-After` (the seconds until the window "
            f"frees a slot) over it. {s['workers']} worker processes (multiprocessing, spawn) "
            f"each make {s['calls_per_worker']:,} `GET /api/v1/me` calls one after the other "
            "through `httpx.Client(transport=ResilientTransport(...))`, all with the same "
            f"key: {s['calls']:,} calls. A minute is too long to wait for them, so time is "
            f"scaled: {s['scaled']}, and the client-side plans alike. Every contender runs "
            "the default policy (a 429 is retried after its `Retry-After`, 4 attempts in "
            f"all) with `retry_budget=None`, so no retry is cut. The shared store is {redis}. "
            "One run per contender, one after the other, on the machine described above."
        ),
        fleet_table(s),
        (
            "*429s received* and *requests sent* are the simulator's counts; *logical calls "
            "OK* are the calls that ended 2xx after their retries; *wall s* runs from the "
            "first call of the fleet to the last. The least possible wall time is "
            f"{num(s['floor_s'], 2)} s: the first {s['limit']:,} calls at once, the rest at "
            "the limit. The issue sets no number for this scenario: these are reported, not "
            "judged."
        ),
        " ".join(findings),
    ]


def _store_section(s: dict[str, Any]) -> list[str]:
    """The "Store" part of "How it compares"."""
    redis = (
        f"redis-server {s['redis_server']} on loopback"
        if s.get("redis_server")
        else "a redis-server on loopback"
    )
    return [
        "### Configuration and a shared store on the success path",
        (
            f"{s['calls_per_round']:,} successful GETs per contender and round, {s['rounds']} "
            "rounds, through one sync `httpx.Client` each over an `httpx.MockTransport` that "
            "returns a canned 200 (no socket); the contenders take turns every 10 calls, in a "
            "shuffled order every round, and every call is timed. The "
            f"full set is `{s['full_set']}` (the rate limit never makes these calls wait). "
            f"`RedisStore` rows use {redis}, started by the benchmark. The async rows send "
            f"{s['concurrency']:,} concurrent GETs (`asyncio.gather`) through one "
            "`httpx.AsyncClient` over `AsyncResilientTransport(rate_limit=...)`, "
            f"{s['async_rounds']} rounds."
        ),
        store_table(s),
        store_async_table(s),
        (
            "*x bare* compares the median call of all rounds with bare httpx's (a busy machine "
            "moves a block of calls, not the median call); *x bare, per round* is the spread "
            "of the rounds' ratios; *x bare, mean calls* the median of the per-round ratios of "
            "mean calls, which also counts the rare slow call (a collection, the store's "
            "thread taking the GIL). *x in memory* is the median of the per-round ratios of "
            "the async Redis row to the in-memory one. A "
            "`RedisStore` answers every call from its process's copy of the state: value "
            "changes go to Redis in batches every 20 ms (one script per hash slot) and come "
            "back the same way; rate-limit tokens are leased from Redis a few at a time and "
            "refilled ahead of need, so a call waits on Redis only when its lease is empty "
            "(see `resilience/stores/redis.py`). " + import_line(s)
        ),
    ]


def render_results_md(results: dict[str, Any]) -> str:
    """The "How it compares" section (for the README), from a full run."""
    scenarios = results["scenarios"]
    meta = results["meta"]

    def added(scenario: str, key: str) -> str:
        return signed(_find(results, scenario, key, "added"))

    sections = [
        "## How it compares",
        (
            "One run on one machine, `python -m benchmarks` (the harness in `benchmarks/`): "
            f"{_meta_line(meta)} Every contender gets the same retry settings: 4 attempts in "
            f"all, initial backoff B = {BACKOFF} s doubling per retry, capped at 1 s, and "
            "`Retry-After` honoured where the library can honour it. The peers retry 409, "
            "420, 429 and every 5xx, POST included. resilience runs with `conflict_delay = B` "
            "(so its 409 wait matches the peers' backoff) and decides per vendor what to "
            "retry. Contenders take turns in shuffled order, round after round; figures are "
            "medians over rounds, and ratios are to the bare client of the same family "
            "measured in the same round. To reproduce: `python -m pip install -e '.[test]' "
            "&& python -m benchmarks --write-results` (`--quick` for a run under two minutes, "
            "`--profile` for a cProfile of the success path)."
        ),
        "### Settings",
        "\n".join(
            [
                "| contender | settings |",
                "| :--- | :--- |",
                "| requests + urllib3 Retry | `HTTPAdapter(max_retries=Retry(total=3, "
                "status_forcelist=409/420/429/5xx, allowed_methods=+POST/PATCH, "
                "backoff_factor=B/2, backoff_max=1, respect_retry_after_header=True, "
                "raise_on_status=False))` |",
                "| httpx-retries (sync, async) | `RetryTransport(retry=Retry(total=3, "
                "status_forcelist=..., allowed_methods=+POST/PATCH, backoff_factor=B/2, "
                "backoff_jitter=1, max_backoff_wait=1, respect_retry_after_header=True))` |",
                "| tenacity (around requests / httpx calls) | `@retry(stop=stop_after_attempt(4), "
                "wait=<Retry-After if any, else wait_random_exponential(multiplier=B, max=1)>, "
                "retry=retry_if_result(status in forcelist) \\| "
                "retry_if_exception_type(network errors), "
                "retry_error_callback=<return the last response>)` |",
                "| stamina (around requests / httpx calls) | `@stamina.retry(on=<hook: "
                "Retry-After seconds for a forcelist status, True for network errors>, "
                "attempts=4, timeout=None, wait_initial=B/2, wait_jitter=B/2, wait_max=1)`; "
                "the call raises for a forcelist status and the last response is returned "
                "when attempts run out |",
                "| resilience (adapter, transport, async transport) | `max_attempts=4, "
                "backoff_initial=B, backoff_max=1, jitter='full', conflict_delay=B` (fault "
                "mix: `regions=['eu-west', 'us-east'], capacity_retries=0, "
                "retry_budget=None`) |",
            ]
        ),
        (
            "tenacity and stamina have no notion of `Retry-After`; their wait reads it with "
            "`float()` (or as an HTTP date), as a user would write it. urllib3's first "
            "retry does not wait (its backoff starts at the second retry), and its jitter is "
            "additive; stamina's jitter is additive too. The contenders' backoffs are as "
            "close as their knobs allow."
        ),
    ]
    if "success_inproc" in scenarios:
        s = scenarios["success_inproc"]
        sections += [
            "### Success path, in-process",
            (
                f"{s['calls_per_round']:,} successful GETs per contender and round, "
                f"{s['rounds']} rounds, no socket: httpx clients use an `httpx.MockTransport` "
                "that returns a canned 200; requests sessions use an `HTTPAdapter` whose "
                "`send` builds the `requests.Response` itself, and the `ResilientAdapter` runs "
                "unchanged over the same in-process send. The figure is the mean cost of one "
                "`get()` call."
            ),
            success_table(s),
            (
                "*µs/call* is what one call costs in the client (the bare client's own work "
                "included); *added µs/call* is the difference to the bare client of the same "
                "library, which is what the retry layer costs when nothing fails; *x bare* is "
                "the median of the per-round ratios, with the smallest and largest round "
                "beside it. ResilientTransport adds "
                f"{added('success_inproc', 'httpx+resilience')} µs per call to httpx, the "
                f"ResilientAdapter {added('success_inproc', 'requests+resilience')} µs to "
                "requests, AsyncResilientTransport "
                f"{added('success_inproc', 'httpx-async+resilience')} µs to async httpx. "
                "urllib3's `Retry` cannot be measured this way: it runs inside urllib3's "
                "connection pool, below any in-process adapter."
            ),
        ]
    if "success_loopback" in scenarios:
        s = scenarios["success_loopback"]
        sections += [
            "### Success path over loopback",
            (
                f"`GET /ping` on the embedded vendor simulator ({s['where']}, so its server "
                f"threads do not compete with the client for this process's GIL), "
                f"{s['calls_per_round']:,} calls per contender and round, {s['rounds']} "
                "rounds. Contenders take turns every 10 calls, so a slow spell of the machine "
                "hits them all. Each call is timed; *µs/call* is the median of all "
                f"{s['calls_per_round'] * s['rounds']:,} calls of a contender, which keeps the "
                "scheduler's tail out of a 3% comparison, and *x bare* compares it with the "
                "bare client's. A round's median call jumps between the modes of a loopback "
                "call's latency, so the per-round ratios give only the spread."
            ),
            success_table(s),
            (
                "Over a real socket the same added cost is a smaller share of a call. "
                "ResilientTransport adds "
                f"{added('success_loopback', 'httpx+resilience')} µs, the ResilientAdapter "
                f"{added('success_loopback', 'requests+resilience')} µs and "
                "AsyncResilientTransport "
                f"{added('success_loopback', 'httpx-async+resilience')} µs; the per-round "
                "spread shows how much of that is noise on this machine."
            ),
        ]
    if "faults" in scenarios:
        s = scenarios["faults"]
        kinds = "; ".join(
            f"{k['label']} (fewest requests {k['fewest_requests']}"
            + (f", mandated wait {k['mandated_wait']:g} s" if k["mandated_wait"] else "")
            + ")"
            for k in s["kinds"]
        )
        transport = find_row(s, "httpx+resilience") or {}
        fewest = sum(k["fewest_requests"] for k in s["kinds"]) / len(s["kinds"])
        loads = [
            row["requests_per_call"]
            for row in s["rows"]
            if row["role"] == "peer" and "skipped" not in row
        ]
        peer_load = f"{num(min(loads), 2)} to {num(max(loads), 2)}" if loads else "—"
        sections += [
            "### Fault mix",
            (
                f"{s['calls_per_round']} logical calls per contender and round "
                f"({s['calls_per_round'] // len(s['kinds'])} of each kind, vendors and order "
                f"drawn from a seed, the same for every contender), {s['rounds']} rounds, "
                f"against the embedded simulator. The kinds: {kinds}. The 420 holds for every "
                "request to eu-west; resilience fails over to us-east, the peers can only "
                "retry eu-west. The 401 and the 501 hold for every request."
            ),
            faults_table(s),
            (
                "*recoverable calls that succeed*: calls of the four recoverable kinds that "
                "end with a 2xx. *401/501 answered in 1 request*: the unrecoverable calls "
                "that came back with their status after one request, without an exception. "
                "*wrong retries*: requests sent after a 401 or a 501 (the peers' forcelist "
                "holds every 5xx, so they retry the 501 three times; a hand-kept list of "
                "500/502/503/504 would avoid that, at the cost of keeping it). *retries "
                "before Retry-After elapsed*: from the simulator's arrival times per call, "
                "the gaps after a 429 shorter than its `Retry-After`, over the 429s the "
                "contender received. *requests/call*: load on the vendor per logical call. "
                "*floor*: the least possible time: the mandated waits (the `Retry-After`s) "
                "plus the fewest requests each call needs, each timed at the bare client's "
                "speed in the same round. *wall/floor* is how close a contender gets to it; "
                "below 1x means it skipped mandated waits or gave up early."
            ),
            (
                "resilience sends the fewest requests the mix allows "
                f"({num(fewest, 2)} per call), never retries a 401 or a 501, waits every "
                "`Retry-After` and fails over instead of retrying the region without "
                "capacity. The peers retry the 501 and retry eu-west until their attempts "
                f"run out ({peer_load} requests per call)."
            ),
            (
                "resilience spends its time above the floor mostly on waits its policy "
                "chose and the floor does not count: the jittered backoff after the 503 and "
                "`conflict_delay` after the 409 "
                f"({num(transport.get('backoff_chosen_s'), 3)} s per round for "
                "ResilientTransport). Counting those waits, its wall time is "
                f"{ratio(transport.get('wall_over_floor_plus_backoff'))} of the floor; the "
                "rest is waking up from the sleeps and handling the failed answers (read, "
                "classify, close). The wall/floor target is therefore a function of B: "
                f"with B = {BACKOFF} s these two waits alone add "
                f"{_share(transport.get('backoff_chosen_s'), transport.get('floor_s'))} to "
                "the floor."
            ),
            "#### What each contender does with `Retry-After: 0.05`",
            retry_after_table(s),
            (
                "urllib3 accepts only whole seconds or an HTTP date in `Retry-After` and "
                "raises `InvalidHeader` on `0.05`; requests passes it on as "
                "`requests.exceptions.InvalidHeader`, so the call fails. httpx-retries logs "
                "a warning (`Retry-After header is not a valid HTTP date`) and falls back to "
                "its backoff, so it retries before the vendor's deadline."
            ),
        ]
    if "outage" in scenarios:
        s = scenarios["outage"]
        windows = ", ".join(f"{w['window']} = {w['calls']:,} calls" for w in s["windows"])
        defaults_note = (
            " The last row is ResilientTransport with every default, backoff included: the "
            "first call waits its three jittered backoffs (at most 0.5 s, 1 s and 2 s) "
            "before the budget stops the retries; that wait, spread over the window, is "
            "its time per call."
            if any(row.get("budget") == "on (every default)" for row in s["rows"])
            else ""
        )
        hedging_note = (
            ' The rows with `Hedge(delay="p95")` also hedge answers later than the 95th '
            "percentile; hedges spend the same retry budget as retries, so hedging should add "
            "no load to an outage (a target below)."
            if any("Hedge(" in row["label"] for row in s["rows"])
            else ""
        )
        sections += [
            "### Outage",
            (
                "Every answer is a 503. Each contender makes the calls of a window one after "
                f"another with a fresh client ({windows}); no contender keeps time-based "
                "state (resilience's retry budget counts outcomes, not seconds), so the call "
                "count stands for the rate. Backoff is 0 here, so the run measures load, not "
                "waits."
            ),
            outage_table(s),
            (
                "*requests/call* is the load amplification: what the vendor receives per "
                "call while it is down. Every peer sends all 4 attempts for every call, "
                "whatever the rate; resilience's default retry budget lets the first calls "
                "retry, then sends each call once until answers succeed again, so the "
                "amplification tends to 1x as the outage goes on. With `retry_budget=None` "
                "it behaves like the peers. *ms per failed call* is how long a caller waits "
                "for the failure (with zero backoff: the requests themselves). httpx-retries "
                "closes each failed response without reading it, so httpx drops that "
                "keep-alive connection and the retry opens a new one: most of its extra time "
                "per failed call." + defaults_note + hedging_note
            ),
        ]
    if "hedge" in scenarios:
        sections += hedge_section(scenarios["hedge"])
    if "async_scale" in scenarios:
        s = scenarios["async_scale"]
        sections += [
            "### Async scale",
            (
                f"{s['concurrency']:,} concurrent GETs (`asyncio.gather`) through one "
                f"`httpx.AsyncClient` on `GET /ping` ({s['where']}), {s['rounds']} rounds. "
                f"Client settings, the same for all: {s['client_options']}. With httpx's "
                "default 100 connections, 1,000 queued requests make its own pool the "
                "bottleneck (it walks every connection for every connection whenever a "
                "request is queued or done) and, at the default 5 s pool timeout, the bare "
                "client's requests fail with PoolTimeout on this machine."
            ),
            scale_table(s),
            (
                "*µs/request* is the burst's wall time divided by the number of requests; "
                "at this concurrency the pool's bookkeeping dominates, and the retry layer's "
                "own cost is a small share of it."
            ),
        ]
    if "fleet" in scenarios:
        sections += _fleet_section(scenarios["fleet"])
    if "store" in scenarios:
        sections += _store_section(scenarios["store"])
    sections += [
        "### Targets",
        targets_table(results["targets"]),
        (
            "Timings are never asserted in the tests; this table is the check. The JSON of "
            "the run (`benchmarks/results/latest.json`) holds every round."
        ),
    ]
    return "\n\n".join(sections) + "\n"
