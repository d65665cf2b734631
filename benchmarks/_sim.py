"""The embedded vendor simulator, in this process or in a child process.

Throughput scenarios (success path over loopback, async scale, the fleet) run
the simulator in a child process, so that its server threads do not share this
process's GIL with the clients being measured. The fault mix and the outage
script faults and read the simulator's records, so they run it here.

A child simulator takes commands on its stdin, one JSON object per line
(``{"op": "count_status", "status": 429}``), and answers each on its stdout
(``{"ok": 12}``), so that a scenario can set a rate limit or a fault mix and
read the counts of a simulator in another process
(:meth:`Server.enforce_rate_limit`, :meth:`Server.serve_faults`,
:meth:`Server.count_status`, :meth:`Server.count_fault`, :meth:`Server.reset`).
A fault mix travels as the dict of its fields. Closing its stdin stops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from resilience.testing import FaultMix, VendorSimulator

__all__ = ["Server", "served"]

#: Simulator methods a child runs on command.
COMMANDS = ("count", "count_fault", "count_status", "enforce_rate_limit", "reset", "serve_faults")

_CHILD = f"""
import json
import sys
from resilience.testing import FaultMix, VendorSimulator
with VendorSimulator(record=sys.argv[1] == "record") as sim:
    print(sim.url, flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op not in {COMMANDS!r}:
                raise ValueError(f"unknown command {{op!r}}")
            if op == "serve_faults" and command["mix"] is not None:
                command["mix"] = FaultMix(**command["mix"])
            answer = {{"ok": getattr(sim, op)(**command)}}
        except Exception as exc:
            answer = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
        print(json.dumps(answer), flush=True)
"""

_START_TIMEOUT = 15.0

Control = Callable[[str, dict[str, Any]], Any]
"""Runs ``VendorSimulator.<op>(**kwargs)`` wherever the simulator lives."""


def _local(sim: VendorSimulator) -> Control:
    def control(op: str, kwargs: dict[str, Any]) -> Any:
        if op not in COMMANDS:
            raise ValueError(f"unknown command {op!r}")
        if op == "serve_faults" and kwargs["mix"] is not None:
            kwargs = {**kwargs, "mix": FaultMix(**kwargs["mix"])}
        return getattr(sim, op)(**kwargs)

    return control


def _piped(process: subprocess.Popen[str]) -> Control:
    lock = threading.Lock()

    def control(op: str, kwargs: dict[str, Any]) -> Any:
        assert process.stdin is not None
        assert process.stdout is not None
        with lock:
            process.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (exit status {process.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"simulator {op}: {answer['error']}")
        return answer["ok"]

    return control


def _no_control(op: str, kwargs: dict[str, Any]) -> Any:
    raise RuntimeError("this Server has no control over its simulator")


@dataclass(frozen=True)
class Server:
    """A running simulator: its URL and where it runs (``"child process"``/``"in-process"``)."""

    url: str
    where: str
    control: Control = field(default=_no_control, repr=False, compare=False)

    def enforce_rate_limit(
        self,
        limit: int | None,
        per: float = 60.0,
        *,
        key_header: str = "Authorization",
        window: str = "sliding",
    ) -> None:
        """``VendorSimulator.enforce_rate_limit``, wherever the simulator runs."""
        self.control(
            "enforce_rate_limit",
            {"limit": limit, "per": per, "key_header": key_header, "window": window},
        )

    def serve_faults(self, mix: FaultMix | None, *, seed: int | None = None) -> None:
        """``VendorSimulator.serve_faults``, wherever the simulator runs."""
        fields = None
        if mix is not None:
            fields = {f.name: getattr(mix, f.name) for f in dataclasses.fields(mix)}
            fields["capacity"] = dict(mix.capacity)
        self.control("serve_faults", {"mix": fields, "seed": seed})

    def count_fault(self, fault: str | None = None) -> int:
        """``VendorSimulator.count_fault``: requests the fault mix drew for, at their arrival."""
        count: int = self.control("count_fault", {"fault": fault})
        return count

    def count(self, key: str | None = None) -> int:
        """``VendorSimulator.count``: requests with ``X-Sim-Key: key`` (``served(record=True)``)."""
        count: int = self.control("count", {"key": key})
        return count

    def count_status(self, status: int | None = None) -> int:
        """``VendorSimulator.count_status``, wherever the simulator runs."""
        count: int = self.control("count_status", {"status": status})
        return count

    def reset(self) -> None:
        """``VendorSimulator.reset``, wherever the simulator runs."""
        self.control("reset", {})


def _read_url(process: subprocess.Popen[str]) -> str | None:
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line.startswith("http://"):
            found.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(_START_TIMEOUT)
    return found[0] if found else None


@contextlib.contextmanager
def served(*, child: bool = True, record: bool = False) -> Iterator[Server]:
    """A simulator for load, in a child process if possible.

    Falls back to an in-process simulator when the child does not start. With
    ``record``, it keeps every request, so that :meth:`Server.count` can count
    them by ``X-Sim-Key``; without, long runs keep no memory of them.
    """
    if child:
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, "record" if record else "no-record"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = _read_url(process)
            if url is not None:
                yield Server(url, "child process", _piped(process))
                return
        finally:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    with VendorSimulator(record=record) as sim:
        yield Server(sim.url, "in-process", _local(sim))
