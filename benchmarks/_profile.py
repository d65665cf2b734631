"""``--profile``: where the success path of the resilience transports spends its time."""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests

import resilience
from benchmarks._clients import (
    InProcessAdapter,
    InProcessResilientAdapter,
    _canned_httpx,
    in_process_resilient_adapter,
)

__all__ = ["run_profile"]

_URL = "http://vendor.invalid/ping"
_LIBRARY = str(Path(resilience.__file__).parent)


def _per_call(call: Callable[[Any], Any], items: list[Any], rounds: int = 7) -> float:
    """Median over ``rounds`` of the mean microseconds of ``call(item)`` over ``items``."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            call(item)
        samples.append((time.perf_counter() - start) / len(items) * 1e6)
    return statistics.median(samples)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    if filename.startswith(_LIBRARY):
        return "resilience" + filename[len(_LIBRARY) :]
    return filename


_NOT_OVERHEAD = (
    "<method 'send' of 'generator' objects>",
    "<built-in method builtins.next>",
)
_BENCHMARKS = str(Path(__file__).resolve().parent)


def _wrapped(key: tuple[str, int, str]) -> bool:
    filename, _, name = key
    return (
        name in _NOT_OVERHEAD
        or filename.startswith(_BENCHMARKS)
        or "httpx/_transports/" in filename
    )


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    return f"{_short(filename)}:{line}({name})" if line else name


def _profile(
    label: str, call: Callable[[], Any], calls: int, top: int
) -> tuple[str, dict[str, Any]]:
    for _ in range(min(calls, 500)):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]

    def ours(key: tuple[str, int, str]) -> bool:
        return key[0].startswith(_LIBRARY)

    total = sum(entry[2] for entry in entries.values())
    own = sum(entry[2] for key, entry in entries.items() if ours(key))
    # What resilience's code calls outside itself, attributed through the callers
    # table; not the wrapped transport or send (the work being wrapped), nor the
    # generator's next()/send() (whose time is the flow's own body).
    outside: dict[Any, list[float]] = {}
    for key, (_, _, _, _, callers) in entries.items():
        if ours(key) or _wrapped(key):
            continue
        for caller, (ncalls, _, _, cumtime) in callers.items():
            if ours(caller):
                slot = outside.setdefault(key, [0.0, 0.0])
                slot[0] += ncalls
                slot[1] += cumtime
    outside_total = sum(cum for _, cum in outside.values())

    def per(value: float) -> str:
        return f"{1e6 * value / calls:.2f}"

    lines = [
        f"## {label}: cProfile of {calls:,} calls",
        "",
        f"Profiled time per call: {per(total)} µs; own time of resilience's functions: "
        f"{per(own)} µs ({100 * own / total:.1f}%), plus {per(outside_total)} µs in what they "
        "call outside resilience (the wrapped send excluded). The profiler inflates every "
        "function call, so read these as shares; the unprofiled cost is in the table above.",
        "",
        f"### Top {top} functions by own time (whole call)",
        "",
        "| own µs/call | cumulative µs/call | calls/call | function |",
        "| ---: | ---: | ---: | :--- |",
    ]
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for key, (_, ncalls, tottime, cumtime, _) in ranked:
        lines.append(
            f"| {per(tottime)} | {per(cumtime)} | {ncalls / calls:.1f} | `{_where(key)}` |"
        )
    lines += [
        "",
        "### resilience's own functions",
        "",
        "| own µs/call | cumulative µs/call | calls/call | function |",
        "| ---: | ---: | ---: | :--- |",
    ]
    mine = sorted(
        ((key, entry) for key, entry in entries.items() if ours(key)),
        key=lambda item: item[1][2],
        reverse=True,
    )
    for key, (_, ncalls, tottime, cumtime, _) in mine:
        lines.append(
            f"| {per(tottime)} | {per(cumtime)} | {ncalls / calls:.1f} | `{_where(key)}` |"
        )
    lines += [
        "",
        "### What resilience's functions call outside resilience",
        "",
        "| cumulative µs/call | calls/call | function |",
        "| ---: | ---: | :--- |",
    ]
    for key, (ncalls, cumtime) in sorted(outside.items(), key=lambda i: i[1][1], reverse=True):
        lines.append(f"| {per(cumtime)} | {ncalls / calls:.1f} | `{_where(key)}` |")
    summary = {
        "profiled_us_per_call": 1e6 * total / calls,
        "own_us_per_call": 1e6 * own / calls,
        "outside_us_per_call": 1e6 * outside_total / calls,
    }
    return "\n".join(lines), summary


def run_profile(calls: int = 20_000, top: int = 15) -> tuple[str, dict[str, Any]]:
    """Profile ``calls`` in-process success calls through ResilientTransport and ResilientAdapter.

    Returns the markdown report and its figures.
    """
    parts = ["# Profile of resilience's success path (in-process, no socket)"]
    figures: dict[str, Any] = {}

    # Unprofiled: the transport layer alone, the inner transport with and without it.
    mock = httpx.MockTransport(_canned_httpx)
    transport = resilience.ResilientTransport(transport=mock)
    builder = httpx.Client()
    items = [builder.build_request("GET", _URL) for _ in range(min(calls, 5_000))]
    inner_us = _per_call(mock.handle_request, items)
    wrapped_us = _per_call(transport.handle_request, items)
    figures["transport_inner_us"] = inner_us
    figures["transport_wrapped_us"] = wrapped_us

    with in_process_resilient_adapter():
        plain = InProcessAdapter()
        adapter = InProcessResilientAdapter()
        prepared = [requests.Request("GET", _URL).prepare() for _ in range(min(calls, 5_000))]
        plain_us = _per_call(plain.send, prepared)
        adapter_us = _per_call(adapter.send, prepared)
        figures["adapter_inner_us"] = plain_us
        figures["adapter_wrapped_us"] = adapter_us

        parts.append(
            "\n".join(
                [
                    "## Cost of the layer itself (not profiled, median of 7 x "
                    f"{len(items):,} calls)",
                    "",
                    "| layer | inner alone µs/call | with resilience µs/call | added µs/call |",
                    "| :--- | ---: | ---: | ---: |",
                    f"| `ResilientTransport.handle_request` over `MockTransport` | "
                    f"{inner_us:.2f} | {wrapped_us:.2f} | {wrapped_us - inner_us:+.2f} |",
                    f"| `ResilientAdapter.send` over an in-process send | {plain_us:.2f} | "
                    f"{adapter_us:.2f} | {adapter_us - plain_us:+.2f} |",
                ]
            )
        )

        client = httpx.Client(transport=transport)
        text, summary = _profile(
            "httpx.Client + ResilientTransport", lambda: client.get(_URL), calls, top
        )
        parts.append(text)
        figures["transport_profile"] = summary
        session = requests.Session()
        session.mount("http://", adapter)
        text, summary = _profile(
            "requests.Session + ResilientAdapter", lambda: session.get(_URL), calls, top
        )
        parts.append(text)
        figures["adapter_profile"] = summary
        client.close()
        session.close()
    buffer = io.StringIO()
    buffer.write("\n\n".join(parts) + "\n")
    return buffer.getvalue(), figures
