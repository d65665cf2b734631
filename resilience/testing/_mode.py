"""``set_testing``: the testing mode, switched on and off (also as a context manager)."""

from __future__ import annotations

from types import TracebackType

from resilience.core import checks
from resilience.retry.testing_mode import MODE

__all__ = ["is_testing", "set_testing"]


class _Restore:
    """Puts the mode back as it was when used as a context manager."""

    __slots__ = ("_before",)

    def __init__(self, before: tuple[bool, int | None]) -> None:
        self._before = before

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        MODE.switch(*self._before)


def set_testing(testing: bool, *, attempts: int | None = None) -> _Restore:
    """Switch the testing mode on or off, for the whole process.

    While it is on, no retry waits for real (a ``sleep=`` you pass is still
    called, with the delays, so tests can check them), every transport that
    keeps its state in its own memory starts with a full retry budget and
    fresh rate limits (again at every switch, and before every test under the
    pytest plugin), and ``attempts``, when given, replaces ``max_attempts``.

    Works as a plain call and as a context manager, which restores the mode
    that was in force before::

        with resilience.testing.set_testing(True, attempts=2):
            ...

    Args:
        testing: on or off.
        attempts: attempts per call while on (``None``: each policy's own).

    Raises:
        TypeError, ValueError: ``testing`` is not a bool; ``attempts`` is not
            an int >= 1.
    """
    checks.boolean("testing", testing)
    if attempts is not None:
        checks.integer("attempts", attempts, low=1)
    before = (MODE.active, MODE.attempts)
    MODE.switch(testing, attempts if testing else None)
    return _Restore(before)


def is_testing() -> bool:
    """Whether the testing mode is on."""
    return MODE.active
