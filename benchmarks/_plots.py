"""Charts of a benchmark run for the documentation (matplotlib, the ``plots`` extra).

``python -m benchmarks.plots [results.json] [folder]`` draws, from the JSON a
run wrote, the success-path overhead (``x bare``, in process and over
loopback) and the fault mix (recoverable calls that succeed, requests per
call) as SVG files, which the documentation embeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
DEFAULT_FOLDER = HERE.parent / "docs" / "images"


def _rows(data: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data["scenarios"][scenario]["rows"]
    return rows


def _is_ours(row: dict[str, Any]) -> bool:
    return "resilience" in str(row["key"])


def write_plots(data: dict[str, Any], folder: Path) -> list[Path]:
    """Draw the charts of ``data`` (a run's JSON) into ``folder``; return the files."""
    import matplotlib

    matplotlib.use("Agg")  # no screen
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    figure, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=False)
    for axis, scenario, title in (
        (axes[0], "success_inproc", "Success path, in process"),
        (axes[1], "success_loopback", "Success path, over loopback"),
    ):
        rows = [r for r in _rows(data, scenario) if r.get("ratio") is not None]
        labels = [r["label"] for r in rows]
        values = [r["ratio"] for r in rows]
        colors = ["tab:green" if _is_ours(r) else "tab:gray" for r in rows]
        axis.barh(labels, values, color=colors)
        axis.axvline(1.0, color="black", linewidth=0.8)
        axis.set_title(title)
        axis.set_xlabel("time per call, x the bare client of the same run")
        axis.invert_yaxis()
    figure.tight_layout()
    path = folder / "success-overhead.svg"
    figure.savefig(path)
    plt.close(figure)
    written.append(path)

    rows = [r for r in _rows(data, "faults") if r.get("recovered_pct") is not None]
    labels = [r["label"] for r in rows]
    colors = ["tab:green" if _is_ours(r) else "tab:gray" for r in rows]
    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    axes[0].barh(labels, [r["recovered_pct"] for r in rows], color=colors)
    axes[0].set_title("Fault mix: recoverable calls that succeed")
    axes[0].set_xlabel("%")
    axes[1].barh(labels, [r["requests_per_call"] for r in rows], color=colors)
    axes[1].set_title("Fault mix: requests per call (fewest possible 1.83)")
    axes[1].set_xlabel("requests per logical call")
    for axis in axes:
        axis.invert_yaxis()
    figure.tight_layout()
    path = folder / "fault-mix.svg"
    figure.savefig(path)
    plt.close(figure)
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Draw the charts of a run's JSON."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else DEFAULT_JSON
    folder = Path(args[1]) if len(args) > 1 else DEFAULT_FOLDER
    for path in write_plots(json.loads(source.read_text(encoding="utf-8")), folder):
        print(f"wrote {path}")
    return 0
