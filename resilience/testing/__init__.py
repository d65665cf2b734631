"""Test helpers: an embedded simulator of the game-server vendor APIs.

:class:`VendorSimulator` is a real HTTP/1.1 server on 127.0.0.1 that speaks the
Gameye, 8bitedge and Playwave envelopes and answers with scripted faults
(:class:`Reply`), behind an optional per-key rate limit
(:meth:`VendorSimulator.enforce_rate_limit`) and with a random share of
faults (:class:`FaultMix`, :meth:`VendorSimulator.serve_faults`; ``python -m
resilience simulate`` serves one from the command line). The pytest fixture
``vendor_simulator`` gives a started one.

:func:`set_testing` switches the testing mode on (no real waits, fresh
budgets and limits, optionally fewer attempts), as stamina's does.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from resilience.testing._mode import is_testing, set_testing

if _TYPE_CHECKING:
    from resilience.testing._faults import FaultMix
    from resilience.testing._replies import Reply
    from resilience.testing._simulator import RecordedRequest, Served, VendorSimulator

# The simulator is imported on first use: the pytest plugin loads this package
# in every test run of an environment that has it.
_HOMES = {
    "RecordedRequest": "resilience.testing._simulator",
    "VendorSimulator": "resilience.testing._simulator",
    "Served": "resilience.testing._simulator",
    "FaultMix": "resilience.testing._faults",
    "Reply": "resilience.testing._replies",
}


def __getattr__(name: str) -> _Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'resilience.testing' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "FaultMix",
    "RecordedRequest",
    "Reply",
    "Served",
    "VendorSimulator",
    "is_testing",
    "set_testing",
]
