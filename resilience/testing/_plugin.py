"""Pytest plugin of :mod:`resilience.testing`: the ``vendor_simulator`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience.testing._simulator import VendorSimulator


@pytest.fixture
def vendor_simulator() -> Iterator[VendorSimulator]:
    """A started :class:`~resilience.testing.VendorSimulator`, stopped after the test.

    Yields:
        The simulator.
    """
    with VendorSimulator() as simulator:
        yield simulator
