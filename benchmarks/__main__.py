"""``python -m benchmarks``: resilience against the retry libraries people use instead.

Runs every scenario on the embedded vendor simulator, prints markdown tables
to stdout (progress to stderr) and writes the figures as JSON.

    python -m benchmarks              # full run (a few minutes)
    python -m benchmarks --quick      # under two minutes
    python -m benchmarks --only fleet # one scenario (comma-separated names)
    python -m benchmarks --only hedge # hedged requests against a heavy tail of late answers
    python -m benchmarks --only store # what a RedisStore and the full set cost; import time
    python -m benchmarks --profile    # cProfile of resilience's success path
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._settings import FULL, QUICK, SIZES, Settings
from benchmarks._timing import Progress

SCENARIOS = ("success", "loopback", "faults", "outage", "hedge", "scale", "fleet", "store")
HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
RESULTS_MD = HERE / "RESULTS.md"


def _versions() -> dict[str, str]:
    versions = {}
    for name in (
        "resilience-transports",
        "requests",
        "urllib3",
        "httpx",
        "httpx-retries",
        "tenacity",
        "stamina",
        "redis",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _clean(value: Any) -> Any:
    """NaN and infinities as ``None``, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def run(
    settings: Settings,
    scenarios: Sequence[str],
    progress: Progress,
    *,
    child_server: bool = True,
) -> dict[str, Any]:
    """Run ``scenarios`` and return every figure (JSON-friendly)."""
    from benchmarks._faults import run_faults
    from benchmarks._fleet import run_fleet
    from benchmarks._hedge import run_hedge
    from benchmarks._outage import run_outage
    from benchmarks._report import evaluate_targets
    from benchmarks._scale import run_scale
    from benchmarks._store import run_store
    from benchmarks._success import run_success

    started = time.perf_counter()
    results: dict[str, Any] = {}
    if "success" in scenarios:
        progress("benchmarks", "success path, in-process")
        results["success_inproc"] = run_success("inproc", settings, progress)
    if "loopback" in scenarios:
        progress("benchmarks", "success path, loopback")
        results["success_loopback"] = run_success(
            "loopback", settings, progress, child_server=child_server
        )
    if "faults" in scenarios:
        progress("benchmarks", "fault mix")
        results["faults"] = run_faults(settings, progress)
    if "outage" in scenarios:
        progress("benchmarks", "outage")
        results["outage"] = run_outage(settings, progress)
    if "hedge" in scenarios:
        progress("benchmarks", "hedged requests: a vendor with a heavy tail of late answers")
        results["hedge"] = run_hedge(settings, progress, child_server=child_server)
    if "scale" in scenarios:
        progress("benchmarks", "async scale")
        results["async_scale"] = run_scale(settings, progress, child_server=child_server)
    if "fleet" in scenarios:
        progress("benchmarks", "fleet: processes sharing one rate-limited API key")
        results["fleet"] = run_fleet(settings, progress, child_server=child_server)
    if "store" in scenarios:
        progress("benchmarks", "store: configuration and RedisStore on the success path; import")
        results["store"] = run_store(settings, progress)
    meta = {
        "run": settings.name,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "versions": _versions(),
        "settings": settings.as_dict(),
        "elapsed_s": time.perf_counter() - started,
    }
    clean: dict[str, Any] = _clean(
        {"meta": meta, "scenarios": results, "targets": evaluate_targets(results)}
    )
    return clean


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark resilience against bare requests/httpx, urllib3's Retry, "
            "httpx-retries, tenacity and stamina on the embedded vendor simulator."
        ),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller N, fewer rounds (< 2 min)")
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the JSON (default: {DEFAULT_JSON.relative_to(HERE.parent)})",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: all of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--rounds", type=int, help="rounds of every timed scenario")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of in-process success calls through the resilience "
        "transports and exit",
    )
    parser.add_argument(
        "--profile-calls", type=int, default=None, help="calls profiled (default 20,000)"
    )
    parser.add_argument(
        "--in-process-server",
        action="store_true",
        help="run the loopback simulator in this process instead of a child process",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help=f"also write the 'How it compares' section to {RESULTS_MD.relative_to(HERE.parent)}",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="print the tables of an earlier run's JSON (with --write-results: and write "
        "the 'How it compares' section) instead of running",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)

    # The libraries' retry warnings (stamina, httpx-retries) would otherwise reach
    # stderr through logging's last-resort handler.
    logging.getLogger().addHandler(logging.NullHandler())

    settings = QUICK if args.quick else SIZES["tiny"] if args.tiny else FULL
    if args.profile:
        from benchmarks._profile import run_profile

        text, _ = run_profile(args.profile_calls or settings.profile_calls)
        print(text)
        return 0
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be >= 1")
        settings = settings.with_rounds(args.rounds)
    scenarios = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")

    from benchmarks._report import render_markdown, render_results_md

    if args.from_json is not None:
        from benchmarks._report import evaluate_targets

        results = json.loads(args.from_json.read_text(encoding="utf-8"))
        results["targets"] = evaluate_targets(results["scenarios"])
        print(render_markdown(results))
    else:
        progress = Progress(quiet=args.quiet)
        results = run(settings, scenarios, progress, child_server=not args.in_process_server)
        print(render_markdown(results))
        path: Path = args.json
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"JSON written to {path}")
    if args.write_results:
        RESULTS_MD.write_text(render_results_md(results), encoding="utf-8")
        print(f"'How it compares' written to {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
