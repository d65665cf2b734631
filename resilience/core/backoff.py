"""Backoff schedules.

The un-jittered schedule is the exponential one,
``min(backoff_max, backoff_initial * backoff_multiplier ** n)`` for the n-th
retry (n from 0), computed once per policy. It is written out here rather than
taken from the ``backoff`` package: its ``expo`` is this one line, while
importing ``backoff`` imports asyncio (about 25 ms on every ``import
resilience``), and its jitter functions draw from the module-level ``random``,
which tests cannot make deterministic; ``uniform`` is passed in instead.

For a schedule value ``cap``:

* ``"none"``: ``cap``
* ``"full"``: ``uniform(0, cap)`` (AWS "full jitter")
* ``"equal"``: ``cap / 2 + uniform(0, cap / 2)``
* ``"decorrelated"``: ``min(backoff_max, uniform(backoff_initial, 3 * previous))``
  where ``previous`` is the last delay (``backoff_initial`` at first).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["JITTERS", "Uniform", "jittered", "nominal", "schedule"]

JITTERS = frozenset({"full", "equal", "decorrelated", "none"})

#: ``uniform(a, b)`` returns a float in ``[a, b]``, like :func:`random.uniform`.
Uniform = Callable[[float, float], float]

_PRECOMPUTED = 64


def schedule(initial: float, multiplier: float, maximum: float, retries: int) -> tuple[float, ...]:
    """The un-jittered delays of the first ``retries`` retries (at most 64)."""
    delays: list[float] = []
    delay = initial
    for _ in range(max(1, min(retries, _PRECOMPUTED))):
        delays.append(min(maximum, delay))
        if delay < maximum:  # past the cap it stays there: no overflow to infinity
            delay *= multiplier
    return tuple(delays)


def nominal(steps: tuple[float, ...], index: int, multiplier: float, maximum: float) -> float:
    """The un-jittered delay of retry ``index`` (0-based)."""
    if index < len(steps):
        return steps[index]
    try:
        return min(maximum, steps[-1] * multiplier ** (index - len(steps) + 1))
    except OverflowError:
        return maximum


def jittered(
    jitter: str,
    cap: float,
    *,
    initial: float,
    maximum: float,
    previous: float | None,
    uniform: Uniform,
) -> float:
    """Apply ``jitter`` to the schedule value ``cap`` (see the module docstring)."""
    if jitter == "full":
        return uniform(0.0, cap)
    if jitter == "equal":
        half = cap / 2.0
        return half + uniform(0.0, half)
    if jitter == "decorrelated":
        last = initial if previous is None else previous
        return min(maximum, uniform(initial, max(initial, last * 3.0)))
    return cap
