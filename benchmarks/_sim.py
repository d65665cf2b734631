"""The embedded vendor simulator, in this process or in a child process.

Throughput scenarios (success path over loopback, async scale) run the
simulator in a child process, so that its server threads do not share this
process's GIL with the clients being measured. The fault mix and the outage
script faults and read the simulator's records, so they run it here.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from resilience.testing import VendorSimulator

__all__ = ["Server", "served"]

_CHILD = """
import sys
from resilience.testing import VendorSimulator
with VendorSimulator(record=False) as sim:
    print(sim.url, flush=True)
    sys.stdin.read()
"""

_START_TIMEOUT = 15.0


@dataclass(frozen=True)
class Server:
    """A running simulator: its URL and where it runs (``"child process"``/``"in-process"``)."""

    url: str
    where: str


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
def served(*, child: bool = True) -> Iterator[Server]:
    """A simulator for load (no request recording), in a child process if possible.

    Falls back to an in-process simulator when the child does not start.
    """
    if child:
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = _read_url(process)
            if url is not None:
                yield Server(url, "child process")
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
    with VendorSimulator(record=False) as sim:
        yield Server(sim.url, "in-process")
