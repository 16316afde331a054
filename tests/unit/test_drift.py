"""PSI against values computed by hand, and the drift score's behaviour on shifted samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pitwall_trainer.monitoring.drift import bin_edges, counts, feature_drift, psi, psi_from_counts


def test_psi_of_identical_distributions_is_zero() -> None:
    assert psi_from_counts([10, 20, 30], [1, 2, 3], smoothing=0) == pytest.approx(0.0, abs=1e-12)
    assert psi_from_counts([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0, abs=1e-12)
    # smoothing weighs more on the small sample: same shares, different sizes is not exactly 0
    assert 0 < psi_from_counts([10, 20, 30], [1, 2, 3]) < 0.01


def test_psi_by_hand_without_smoothing() -> None:
    # expected shares 0.5/0.5, actual 0.8/0.2:
    # (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5) = 0.3*0.470004 + 0.3*0.916291 = 0.415888
    assert psi_from_counts([50, 50], [80, 20], smoothing=0) == pytest.approx(0.415888, abs=1e-6)
    # three bins, 0.2/0.3/0.5 vs 0.25/0.25/0.5: 0.05 ln 1.25 + 0.05 ln(0.3/0.25)... signs as written
    by_hand = (0.25 - 0.2) * math.log(0.25 / 0.2) + (0.25 - 0.3) * math.log(0.25 / 0.3)
    assert psi_from_counts([20, 30, 50], [25, 25, 50], smoothing=0) == pytest.approx(by_hand, abs=1e-12)
    assert by_hand == pytest.approx(0.020273, abs=1e-6)


def test_smoothing_keeps_an_empty_bin_finite() -> None:
    # expected 2/2, actual 4/0; +0.5 per bin: e = 2.5/5, 2.5/5 = .5/.5, a = 4.5/5, 0.5/5 = .9/.1
    by_hand = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert psi_from_counts([2, 2], [4, 0]) == pytest.approx(by_hand, abs=1e-12)
    assert psi_from_counts([2, 2], [4, 0]) == pytest.approx(0.878890, abs=1e-6)
    with pytest.raises(ValueError):
        psi_from_counts([1, 2], [1, 2, 3])


def test_bins_are_expected_quantiles_and_nan_has_its_own() -> None:
    expected = np.arange(1, 11, dtype="float64")  # 1..10
    edges = bin_edges(expected, bins=5)
    assert edges.tolist() == pytest.approx([2.8, 4.6, 6.4, 8.2])
    assert counts(expected, edges).tolist() == [2, 2, 2, 2, 2, 0]
    assert counts(np.array([1.0, 9.0, 9.5, np.nan]), edges).tolist() == [1, 0, 0, 0, 2, 1]


def test_psi_end_to_end_by_hand() -> None:
    expected = np.arange(1, 11, dtype="float64")  # edges 2.8 4.6 6.4 8.2: two per bin, no NaN
    actual = np.array([1.0, 2.0, 3.0, 9.0])  # bins: 2, 1, 0, 0, 1; NaN bin empty on both sides (left out)
    e = np.array([2, 2, 2, 2, 2]) + 0.5
    a = np.array([2, 1, 0, 0, 1]) + 0.5
    e, a = e / e.sum(), a / a.sum()
    by_hand = float(np.sum((a - e) * np.log(a / e)))
    assert psi(expected, actual) == pytest.approx(by_hand, abs=1e-12)
    assert psi([], actual) is None and psi(expected, []) is None


def test_feature_drift_scores_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 2000), "y": rng.normal(5, 2, 2000)})
    same = pd.DataFrame({"x": rng.normal(0, 1, 400), "y": rng.normal(5, 2, 400)})
    moved = pd.DataFrame({"x": rng.normal(1, 1, 400), "y": rng.normal(5, 2, 400)})
    stable = feature_drift(train, same, ["x", "y"])
    shifted = feature_drift(train, moved, ["x", "y"])
    assert stable["score"] < 0.05
    assert shifted["features"]["x"] > 0.25 > shifted["features"]["y"]
    assert shifted["score"] == pytest.approx((shifted["features"]["x"] + shifted["features"]["y"]) / 2, abs=1e-6)
    assert shifted["score"] > 0.1  # the RetrainPolicy's default threshold


def test_feature_drift_needs_enough_recent_rows() -> None:
    train = pd.DataFrame({"x": np.arange(100.0)})
    few = feature_drift(train, pd.DataFrame({"x": np.arange(20.0)}), ["x"])
    assert few["score"] is None and "too few" in few["note"]
    assert feature_drift(train, pd.DataFrame({"x": np.arange(20.0)}), ["x"], min_recent_rows=20)["score"] is not None
