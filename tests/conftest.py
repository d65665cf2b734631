"""Shared fixtures: a recording sleep for the transports; the httpx family."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests._libs import LIBRARIES, load, shells_of


class RecordingSleep:
    """A ``sleep`` that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class AsyncRecordingSleep(RecordingSleep):
    """The async counterpart of :class:`RecordingSleep`."""

    async def __call__(self, seconds: float) -> None:  # type: ignore[override]
        self.calls.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    """A recording, non-sleeping ``sleep``."""
    return RecordingSleep()


@pytest.fixture
def async_sleep() -> AsyncRecordingSleep:
    """A recording, non-sleeping async ``sleep``."""
    return AsyncRecordingSleep()


@pytest.fixture(params=LIBRARIES)
def lib(request: pytest.FixtureRequest) -> ModuleType:
    """``httpx``, then ``httpx2``: the library a test of the httpx family runs on."""
    return load(request.param)


@pytest.fixture
def shells(lib: ModuleType) -> Any:
    """``resilience`` for httpx, ``resilience.httpx2`` for httpx2."""
    return shells_of(lib)
