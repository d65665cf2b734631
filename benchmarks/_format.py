"""Formatting shared by the reports of every scenario: numbers, tables, rows, per-shell targets."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "SHELLS",
    "find_row",
    "grouped",
    "is_number",
    "label",
    "num",
    "ratio",
    "ratio3",
    "shell_target",
    "signed",
    "table",
]

#: The resilience shells, as their rows are keyed and as the targets name them.
SHELLS = (
    ("requests+resilience", "adapter"),
    ("httpx+resilience", "transport"),
    ("httpx-async+resilience", "async transport"),
)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a figure that was measured (a number, not NaN)."""
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def num(value: Any, digits: int = 1) -> str:
    """``1,234.5``, or a dash when nothing was measured."""
    return f"{value:,.{digits}f}" if is_number(value) else "—"


def ratio(value: Any) -> str:
    """``1.23x``, or a dash."""
    return f"{value:.2f}x" if is_number(value) else "—"


def ratio3(value: Any) -> str:
    """``1.234x``, or a dash."""
    return f"{value:.3f}x" if is_number(value) else "—"


def grouped(value: Any) -> str:
    """``12,345``, or a dash."""
    return f"{value:,}" if is_number(value) else "—"


def signed(value: Any, digits: int = 1) -> str:
    """``+1.5``, or a dash."""
    return f"{value:+,.{digits}f}" if is_number(value) else "—"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` holds ``l``/``r`` per column (default: first left)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def label(row: dict[str, Any]) -> str:
    """The row's label, in bold for resilience's own rows."""
    return f"**{row['label']}**" if row.get("role") == "resilience" else row["label"]


def find_row(result: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The row ``key`` of a scenario's result, unless it was skipped or not run."""
    if not result:
        return None
    for row in result["rows"]:
        if row["key"] == key and "skipped" not in row:
            found: dict[str, Any] = row
            return found
    return None


def shell_target(
    result: dict[str, Any],
    name: str,
    limit: str,
    field: str,
    fmt: Callable[[Any], str],
    good: Callable[[Any], bool],
    *,
    key: Callable[[str], str] = str,
) -> dict[str, Any]:
    """One target measured on every resilience shell that ran: it passes when all do.

    Args:
        result: the scenario's result.
        name: the target, as the table shows it.
        limit: the limit, as the table shows it.
        field: the row's figure judged.
        fmt: writes one shell's figure.
        good: whether one shell's figure meets the target.
        key: the row key of a shell, from the shell's own (hedged rows have their own).
    """
    rows = [(row, shell) for base, shell in SHELLS if (row := find_row(result, key(base)))]
    values = [row.get(field) for row, _ in rows]
    measured = " / ".join(f"{shell} {fmt(v)}" for (_, shell), v in zip(rows, values, strict=True))
    verdicts = [good(v) for v in values if is_number(v)]
    return {
        "target": name,
        "limit": limit,
        "measured": measured or "—",
        "value": values,
        "pass": all(verdicts) if verdicts and len(verdicts) == len(values) else None,
    }
