"""Shared fixtures: a recording sleep for the transports."""

from __future__ import annotations

import pytest


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
