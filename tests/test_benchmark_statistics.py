"""The statistics the benchmark tables report (pure arithmetic, no timing)."""

from __future__ import annotations

import pytest

from benchmarks._timing import summarise


def test_ratio_is_the_median_of_the_per_round_ratios() -> None:
    out = summarise([110.0, 200.0, 330.0], [100.0, 100.0, 300.0])

    assert out["ratio"] == pytest.approx(1.1)  # rounds: 1.1, 2.0, 1.1
    assert (out["ratio_min"], out["ratio_max"]) == pytest.approx((1.1, 2.0))
    assert out["added"] == pytest.approx(30.0)  # rounds: +10, +100, +30


def test_pooled_calls_give_the_ratio_of_their_medians() -> None:
    out = summarise(
        [110.0, 200.0],
        [100.0, 100.0],
        pooled=[101.0, 102.0, 103.0, 104.0, 105.0],
        pooled_bare=[100.0, 100.0, 100.0, 100.0, 100.0],
    )

    assert out["median"] == 103.0
    assert out["calls"] == 5
    assert out["ratio"] == pytest.approx(1.03)
    assert out["added"] == pytest.approx(3.0)


def test_pooled_calls_keep_the_per_round_spread() -> None:
    out = summarise(
        [110.0, 200.0],
        [100.0, 100.0],
        pooled=[103.0],
        pooled_bare=[100.0],
    )

    assert (out["ratio_min"], out["ratio_max"]) == pytest.approx((1.1, 2.0))
    assert out["ratio_of_rounds"] == pytest.approx(1.55)


def test_bare_client_has_no_ratio() -> None:
    out = summarise([100.0, 120.0], None, pooled=[100.0, 110.0, 120.0])

    assert out["median"] == 110.0
    assert "ratio" not in out
