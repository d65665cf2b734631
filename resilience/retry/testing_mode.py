"""The testing mode: no real waits, fresh budgets and limits, optionally fewer attempts.

Set by :func:`resilience.testing.set_testing` (as stamina's ``set_testing``);
the core only reads it. While it is on:

* the default sleeps (``time.sleep``, ``anyio.sleep``) return at once; a
  ``sleep=`` the policy names is still called, so a test can record waits;
* every transport whose state lives in its own memory (no ``store=``) starts
  afresh whenever the mode is switched on, and again at each bump (the pytest
  plugin bumps it before every test), so a module-level client does not carry
  one test's spent retry budget or lowered rate into the next;
* ``attempts``, when given, replaces every policy's ``max_attempts``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resilience.retry.policy import Policy

__all__ = ["MODE", "TestingMode", "real_async_sleep", "real_sleep"]


class TestingMode:
    """Whether the testing mode is on, and since which switch (``generation``)."""

    __slots__ = ("active", "attempts", "generation")

    def __init__(self) -> None:
        self.active = False
        self.attempts: int | None = None
        self.generation = 0

    def switch(self, active: bool, attempts: int | None) -> None:
        """Turn the mode on or off; state kept in transports' memory starts afresh."""
        self.active, self.attempts = active, attempts
        self.bump()

    def bump(self) -> None:
        """Start every transport's own state afresh (before the next call)."""
        self.generation += 1

    def policy(self, policy: Policy) -> Policy:
        """``policy`` as the mode makes it (``attempts`` in place of ``max_attempts``)."""
        if not self.active or self.attempts is None or policy.max_attempts == self.attempts:
            return policy
        return replace(policy, max_attempts=self.attempts)


MODE = TestingMode()


def real_sleep(seconds: float) -> None:
    """:func:`time.sleep`, unless the testing mode is on."""
    if not MODE.active:
        time.sleep(seconds)


async def real_async_sleep(seconds: float) -> None:
    """:func:`anyio.sleep` (asyncio and trio alike), unless the testing mode is on."""
    import anyio

    await anyio.sleep(0 if MODE.active else seconds)
