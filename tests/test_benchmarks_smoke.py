"""The benchmark harness runs end to end on a tiny N (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# A subprocess running every scenario: 30 s alone, 100 s and more in a suite on a
# loaded 2-CPU machine.
@pytest.mark.timeout(540)
def test_tiny_run_prints_tables_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for heading in (
        "## Success path, in-process",
        "## Success path over loopback",
        "## Fault mix",
        "## What each contender does with Retry-After",
        "## Outage",
        "## Hedged requests",
        "## Async scale",
        "## Fleet",
        "## Store and configuration on the success path",
        "## Targets",
    ):
        assert heading in proc.stdout
    assert "| **httpx + ResilientTransport** |" in proc.stdout
    assert f"JSON written to {out}" in proc.stdout

    data = json.loads(out.read_text(encoding="utf-8"))
    _charts_are_drawn(data, tmp_path / "images")
    scenarios = data["scenarios"]
    assert set(scenarios) == {
        "success_inproc",
        "success_loopback",
        "faults",
        "outage",
        "hedge",
        "async_scale",
        "fleet",
        "store",
    }
    assert data["targets"]
    assert all("pass" in target for target in data["targets"])

    # Every resilience shell ran every scenario, and the fault mix and the outage
    # came out as the policy says (counts, not timings).
    for name in ("success_inproc", "success_loopback"):
        rows = {row["key"]: row for row in scenarios[name]["rows"]}
        for key in ("requests+resilience", "httpx+resilience", "httpx-async+resilience"):
            assert "skipped" not in rows[key], rows[key]
            assert rows[key]["median"] > 0
    faults = {row["key"]: row for row in scenarios["faults"]["rows"]}
    for key in ("requests+resilience", "httpx+resilience", "httpx-async+resilience"):
        row = faults[key]
        assert row["recovered"] == row["recoverable"] > 0
        assert row["wrong_retries"] == 0
        assert row["early_retries"] == 0
        assert row["answered_at_once"] == row["unrecoverable"]
    outage = [row for row in scenarios["outage"]["rows"] if row["key"] == "httpx+resilience"]
    by_budget = {row["budget"]: row["windows"][-1]["requests_per_call"] for row in outage}
    assert by_budget["off"] == 4.0
    assert by_budget["on (default)"] < 2.0
    scale = {row["key"]: row for row in scenarios["async_scale"]["rows"]}
    assert scale["httpx-async+resilience"]["failed"] == 0

    # The fleet: every contender ran (the shared one unless Redis is missing), and
    # the simulator's counts agree with what the workers saw.
    fleet = {row["key"]: row for row in scenarios["fleet"]["rows"]}
    assert set(fleet) == {"none", "shared", "shared-per-call", "local"}
    for key, row in fleet.items():
        if key.startswith("shared") and "skipped" in row:
            assert "redis" in row["skipped"], row
            continue
        assert "skipped" not in row, row
        assert row["calls"] == scenarios["fleet"]["calls"] == 40
        assert row["requests"] == row["requests_client_side"] == row["ok"] + row["received_429"]
    assert fleet["none"]["received_429"] > 0  # 40 calls meet a limit of 10 per window
    assert any(target.get("info") for target in data["targets"])

    # The store rows: every contender ran (the Redis ones unless Redis is missing).
    store = scenarios["store"]
    for row in store["rows"] + store["async_rows"]:
        if "skipped" in row:
            assert "redis" in row["skipped"], row
            continue
        assert row["median"] > 0
    assert store["import"]["median_ms"] > 0


def _charts_are_drawn(data: dict[str, object], folder: Path) -> None:
    """The documentation's charts come out of a run's JSON."""
    from benchmarks._plots import write_plots

    written = write_plots(data, folder)  # type: ignore[arg-type]
    assert sorted(p.name for p in written) == [
        "fault-mix.svg",
        "hedging.svg",
        "success-overhead.svg",
    ]
    assert all(p.read_text(encoding="utf-8").lstrip().startswith("<?xml") for p in written)


@pytest.mark.timeout(120)
def test_tiny_hedging_run_times_every_contender_and_counts_requests_at_the_simulator() -> None:
    """Every contender runs, each call is timed, and the simulator's count covers every call.

    The hedged rows run when the library has ``resilience.Hedge``; without it they
    are skipped, saying why.
    """
    from benchmarks._hedge import entries, is_control, run_hedge
    from benchmarks._settings import TINY
    from benchmarks._timing import Progress

    result = run_hedge(TINY, Progress(quiet=True), child_server=False)
    rows = {row["key"]: row for row in result["rows"]}
    assert set(rows) == {entry.key for entry in entries()}
    for key, row in rows.items():
        if "skipped" in row:
            assert row["hedge"] is not None, row
            assert "Hedge" in row["skipped"]
            continue
        calls = result["calls"] // result["rounds"] * result["rounds"]
        assert row["calls"] == calls, key
        assert row["requests"] >= calls - sum(row["errors"].values()), key
        latencies = [row[name] for name in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")]
        assert latencies == sorted(latencies), key
        if row["hedge"] is not None:
            assert row["hedged_calls"] <= row["hedges"], key
            assert {"p99_cut", "p50_ratio"} <= set(row), key
        if is_control(key):  # a second client as configured: its p50 ratio, no hedges
            assert row["hedged_calls"] == 0, key
            assert "p50_ratio" in row, key
            assert "p99_cut" not in row, key
