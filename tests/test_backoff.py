"""Backoff schedules and jitter, with an injected ``uniform``."""

from __future__ import annotations

import pytest

from resilience.core.backoff import JITTERS, jittered, nominal, schedule


class RecordingUniform:
    """``uniform(a, b)`` answering ``a + fraction * (b - a)`` and recording its bounds."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def __call__(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + self.fraction * (b - a)


LOW, HIGH = 0.0, 1.0


def _jitter(
    jitter: str,
    cap: float,
    uniform: RecordingUniform,
    *,
    initial: float = 0.5,
    maximum: float = 30.0,
    previous: float | None = None,
) -> float:
    return jittered(
        jitter, cap, initial=initial, maximum=maximum, previous=previous, uniform=uniform
    )


# -- the un-jittered schedule ---------------------------------------------------------


def test_schedule_grows_by_the_multiplier_from_the_initial_delay() -> None:
    assert schedule(0.5, 2.0, 30.0, 5) == (0.5, 1.0, 2.0, 4.0, 8.0)


def test_schedule_is_capped_at_backoff_max() -> None:
    assert schedule(0.5, 2.0, 30.0, 8) == (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0)


def test_schedule_with_multiplier_one_is_constant() -> None:
    assert schedule(1.5, 1.0, 30.0, 4) == (1.5, 1.5, 1.5, 1.5)


def test_schedule_initial_above_max_is_capped() -> None:
    assert schedule(10.0, 2.0, 3.0, 3) == (3.0, 3.0, 3.0)


def test_schedule_always_has_at_least_one_step() -> None:
    assert schedule(0.5, 2.0, 30.0, 0) == (0.5,)


def test_schedule_precomputes_at_most_64_steps() -> None:
    assert len(schedule(0.5, 2.0, 30.0, 10_000)) == 64


def test_nominal_reads_precomputed_steps() -> None:
    steps = schedule(0.5, 2.0, 30.0, 5)
    assert [nominal(steps, i, 2.0, 30.0) for i in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_nominal_extends_past_the_precomputed_steps() -> None:
    steps = (0.5, 1.0)
    assert nominal(steps, 2, 2.0, 30.0) == 2.0
    assert nominal(steps, 3, 2.0, 30.0) == 4.0


def test_nominal_past_the_steps_is_capped() -> None:
    assert nominal((0.5, 1.0), 50, 2.0, 30.0) == 30.0


def test_nominal_overflow_gives_the_cap() -> None:
    assert nominal((1.0,), 10_000, 1e10, 30.0) == 30.0


# -- jitter ----------------------------------------------------------------------------


def test_jitters_are_the_four_documented_ones() -> None:
    assert frozenset({"full", "equal", "decorrelated", "none"}) == JITTERS


def test_no_jitter_is_the_schedule_value_without_drawing() -> None:
    uniform = RecordingUniform(HIGH)
    assert _jitter("none", 4.0, uniform) == 4.0
    assert uniform.calls == []


def test_full_jitter_draws_between_zero_and_the_cap() -> None:
    uniform = RecordingUniform(0.25)
    assert _jitter("full", 4.0, uniform) == 1.0
    assert uniform.calls == [(0.0, 4.0)]


@pytest.mark.parametrize(("fraction", "expected"), [(LOW, 0.0), (HIGH, 4.0)])
def test_full_jitter_bounds(fraction: float, expected: float) -> None:
    assert _jitter("full", 4.0, RecordingUniform(fraction)) == expected


def test_equal_jitter_is_half_the_cap_plus_a_draw_up_to_half() -> None:
    uniform = RecordingUniform(0.5)
    assert _jitter("equal", 4.0, uniform) == 3.0
    assert uniform.calls == [(0.0, 2.0)]


@pytest.mark.parametrize(("fraction", "expected"), [(LOW, 2.0), (HIGH, 4.0)])
def test_equal_jitter_bounds(fraction: float, expected: float) -> None:
    assert _jitter("equal", 4.0, RecordingUniform(fraction)) == expected


def test_decorrelated_first_delay_draws_between_initial_and_three_initial() -> None:
    uniform = RecordingUniform(HIGH)
    assert _jitter("decorrelated", 0.5, uniform, initial=0.5) == 1.5
    assert uniform.calls == [(0.5, 1.5)]


def test_decorrelated_draws_up_to_three_times_the_previous_delay() -> None:
    """sleep = min(cap, uniform(base, 3 * previous sleep)), AWS "decorrelated jitter"."""
    uniform = RecordingUniform(HIGH)
    assert _jitter("decorrelated", 99.0, uniform, initial=0.5, previous=2.0) == 6.0
    assert uniform.calls == [(0.5, 6.0)]


def test_decorrelated_lower_bound_is_the_initial_delay() -> None:
    assert _jitter("decorrelated", 1.0, RecordingUniform(LOW), initial=0.5, previous=7.0) == 0.5


def test_decorrelated_is_capped_at_backoff_max() -> None:
    uniform = RecordingUniform(HIGH)
    assert _jitter("decorrelated", 1.0, uniform, maximum=5.0, previous=4.0) == 5.0


def test_decorrelated_never_draws_below_initial_after_a_tiny_previous_delay() -> None:
    uniform = RecordingUniform(HIGH)
    assert _jitter("decorrelated", 1.0, uniform, initial=0.5, previous=0.1) == 0.5
    assert uniform.calls == [(0.5, 0.5)]


@pytest.mark.parametrize("jitter", ["full", "equal", "none"])
@pytest.mark.parametrize("fraction", [LOW, 0.5, HIGH])
def test_schedule_based_jitter_never_exceeds_backoff_max(jitter: str, fraction: float) -> None:
    steps = schedule(0.5, 2.0, 30.0, 12)
    for index in range(12):
        cap = nominal(steps, index, 2.0, 30.0)
        assert 0.0 <= _jitter(jitter, cap, RecordingUniform(fraction)) <= 30.0
