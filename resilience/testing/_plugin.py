"""Pytest plugin of :mod:`resilience.testing`: the ``vendor_simulator`` fixture.

Loaded in every pytest run of an environment that has the package, so it
imports nothing heavy: the simulator is imported when the fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from resilience.retry.testing_mode import MODE

if TYPE_CHECKING:
    from resilience.testing._simulator import VendorSimulator


@pytest.fixture
def vendor_simulator() -> Iterator[VendorSimulator]:
    """A started :class:`~resilience.testing.VendorSimulator`, stopped after the test.

    Yields:
        The simulator.
    """
    from resilience.testing._simulator import VendorSimulator

    with VendorSimulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _resilience_fresh_state() -> None:
    """Under the testing mode, every test starts with fresh budgets and limits."""
    if MODE.active:
        MODE.bump()
