"""The hook protocol, the process-wide hooks, and what one transport uses."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from resilience.instrumentation._events import AttemptEvent, CallEvent

__all__ = ["PROCESS", "Hook", "Instruments", "ProcessWide", "current", "get_hooks", "set_hooks"]


@runtime_checkable
class Hook(Protocol):
    """What observes attempts and calls. Both methods are called on the calling
    thread or task, in the middle of the call: keep them quick, never block.

    Attributes:
        observes_successes: whether :meth:`on_attempt` and :meth:`on_call`
            want the calls that succeed on their first attempt too (metrics
            do; a log usually does not). When no hook does, such a call
            builds no event at all.
    """

    observes_successes: bool

    def on_attempt(self, event: AttemptEvent) -> None:
        """An attempt ended; ``event`` says what follows."""

    def on_call(self, event: CallEvent) -> None:
        """A call ended."""


class Instruments:
    """A set of hooks, with what the flow needs to know up front."""

    __slots__ = ("hooks", "successes")

    def __init__(self, hooks: Iterable[Hook]) -> None:
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        #: Whether a first-attempt success is worth an event.
        self.successes = any(h.observes_successes for h in self.hooks)

    def attempt(self, event: AttemptEvent) -> None:
        """Tell every hook about an attempt; a failing hook never fails the call."""
        for hook in self.hooks:
            try:
                hook.on_attempt(event)
            except Exception:  # observers must not change what they observe
                _report(hook)

    def call(self, event: CallEvent) -> None:
        """Tell every hook a call ended."""
        for hook in self.hooks:
            try:
                hook.on_call(event)
            except Exception:
                _report(hook)


def _report(hook: Hook) -> None:
    import logging

    logging.getLogger("resilience.instrumentation").debug(
        "instrumentation hook %r failed", hook, exc_info=True
    )


def check_hooks(hooks: object, name: str = "hooks") -> tuple[Hook, ...]:
    """``hooks`` as a tuple of hook instances, or a ``TypeError`` naming ``name``."""
    if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
        raise TypeError(f"{name} must be a list of instrumentation hooks")
    found = tuple(hooks)
    for hook in found:
        if isinstance(hook, type) or not isinstance(hook, Hook):
            raise TypeError(
                f"{name} must hold hook instances with on_attempt(), on_call() and "
                f"observes_successes; got {hook!r}"
            )
    return found


_lock = threading.Lock()
_current: Instruments | None = None


class ProcessWide:
    """What every call reads of the process-wide hooks, as a plain attribute
    (no call, no lock): whether any of them observes first-attempt successes."""

    __slots__ = ("successes",)

    def __init__(self) -> None:
        self.successes = False  # the default LoggingHook does not


PROCESS = ProcessWide()


def set_hooks(hooks: Sequence[Hook]) -> None:
    """Set the hooks of every transport that names none (``instrumentation=``).

    The default is ``[LoggingHook()]``; ``set_hooks([])`` turns observation off.
    """
    global _current
    checked = check_hooks(hooks)
    with _lock:
        _current = Instruments(checked)
        PROCESS.successes = _current.successes


def get_hooks() -> tuple[Hook, ...]:
    """The process-wide hooks."""
    return current().hooks


def current() -> Instruments:
    """The process-wide instruments (made on first use: ``LoggingHook`` alone)."""
    global _current
    found = _current
    if found is None:
        from resilience.instrumentation._logging import LoggingHook

        with _lock:
            if _current is None:
                _current = Instruments((LoggingHook(),))
            found = _current
    return found
