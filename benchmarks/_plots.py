"""Charts of a benchmark run for the documentation (matplotlib, the ``plots`` extra).

``python -m benchmarks.plots [results.json] [folder]`` draws, from the JSON a
run wrote, the success-path overhead (``x bare``, in process and over
loopback), the fault mix (recoverable calls that succeed, requests per
call) and, when the run measured hedging, the latency percentiles with and
without it, as SVG files, which the documentation embeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
DEFAULT_FOLDER = HERE.parent / "docs" / "images"


def _rows(data: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data["scenarios"][scenario]["rows"]
    return rows


def _save(plt: Any, figure: Any, path: Path) -> Path:
    """Lay ``figure`` out, write it to ``path`` and free it."""
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _is_ours(row: dict[str, Any]) -> bool:
    return "resilience" in str(row["key"])


def _hedging(plt: Any, data: dict[str, Any], folder: Path) -> Path:
    """Latency percentiles per family: resilience with and without hedging, bare, the peers."""
    from benchmarks._hedge import PERCENTILES, is_control

    # The control rows (a second client of a shell, for the p50's noise) would
    # draw the same line again.
    rows = [r for r in _rows(data, "hedge") if "skipped" not in r and not is_control(r["key"])]
    families = [
        f for f in ("requests", "httpx", "httpx-async") if any(r["family"] == f for r in rows)
    ]
    figure, axes = plt.subplots(1, len(families), figsize=(5 * len(families), 5), sharey=True)
    axes = list(axes) if len(families) > 1 else [axes]
    names = [name.replace("p999", "p99.9") for name, _ in PERCENTILES]
    for axis, family in zip(axes, families, strict=True):
        for row in (r for r in rows if r["family"] == family):
            values = [row[f"{name}_ms"] for name, _ in PERCENTILES]
            if row.get("hedge") is not None:
                style = {"color": "tab:green", "linewidth": 2.5, "marker": "o"}
            elif _is_ours(row):
                style = {"color": "tab:blue", "linewidth": 2.0, "marker": "o"}
            elif row["role"] == "bare":
                style = {"color": "black", "linewidth": 1.2, "linestyle": "--"}
            else:
                style = {"color": "tab:gray", "linewidth": 0.8, "alpha": 0.7}
            axis.plot(names, values, label=row["label"], **style)
        axis.set_yscale("log")
        axis.set_title(family.replace("-", " "))
        axis.set_xlabel("percentile of call latency")
        axis.grid(True, which="both", axis="y", linewidth=0.3)
        axis.legend(fontsize="x-small", loc="upper left")
    axes[0].set_ylabel("ms (log scale)")
    figure.suptitle(f"Hedged requests: {data['scenarios']['hedge']['faults']}")
    return _save(plt, figure, folder / "hedging.svg")


def _success(plt: Any, data: dict[str, Any], folder: Path) -> Path:
    """Time per call against the bare client, in process and over loopback."""
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
    return _save(plt, figure, folder / "success-overhead.svg")


def _faults(plt: Any, data: dict[str, Any], folder: Path) -> Path:
    """Recoverable calls that succeed, and requests per call, under the fault mix."""
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
    return _save(plt, figure, folder / "fault-mix.svg")


#: Each chart, with the scenarios it is drawn from.
CHARTS: tuple[tuple[tuple[str, ...], Callable[[Any, dict[str, Any], Path], Path]], ...] = (
    (("success_inproc", "success_loopback"), _success),
    (("faults",), _faults),
    (("hedge",), _hedging),
)


def write_plots(data: dict[str, Any], folder: Path) -> list[Path]:
    """Draw the charts of ``data`` (a run's JSON) into ``folder``; return the files.

    A chart whose scenarios the run did not measure is not drawn, so that a run
    of one scenario (``--only hedge``) redraws its own chart and leaves the
    others as they are.
    """
    import matplotlib

    matplotlib.use("Agg")  # no screen
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    return [
        draw(plt, data, folder)
        for needed, draw in CHARTS
        if all(name in data["scenarios"] for name in needed)
    ]


def main(argv: list[str] | None = None) -> int:
    """Draw the charts of a run's JSON."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else DEFAULT_JSON
    folder = Path(args[1]) if len(args) > 1 else DEFAULT_FOLDER
    for path in write_plots(json.loads(source.read_text(encoding="utf-8")), folder):
        print(f"wrote {path}")
    return 0
