"""Population stability index (PSI): how far a feature's recent distribution moved from training.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the shares of the expected (training)
and actual (recent) rows per bin. Bins are the expected sample's quantiles, so each holds about
the same share of training rows; missing values get a bin of their own (a feature that suddenly
goes missing is drift too). Counts get half a pseudo-row per bin (Laplace smoothing) so an empty
bin in a small recent sample does not read as a huge shift. Common reading: < 0.1 stable,
0.1-0.25 moderate shift, > 0.25 major shift.

Measured on the real data (race_winner features, 2022 to mid-2024 as training): one race alone
scores 0.18, three races 0.14, five 0.11, twelve 0.08 -- small samples read as drift, hence
quintiles (5 bins) and MIN_RECENT_ROWS before a score is reported at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_BINS = 5
SMOOTHING = 0.5  # pseudo-rows added to every bin's count before taking shares
MIN_RECENT_ROWS = 60  # about three races of driver entries; fewer give no score
# Features whose distribution is comparable across parts of a season: forms and rates over a
# fixed window, qualifying gaps. Cumulative standings (points before the race) grow through
# every season, so comparing late-season races with whole training seasons would always "drift".
KEY_FEATURES: tuple[str, ...] = (
    "quali_gap_pct",
    "drv_form_points_5",
    "drv_form_pos_5",
    "con_form_points_5",
    "drv_dnf_rate_10",
    "drv_gain_5",
    "tm_quali_diff",
)


def bin_edges(expected: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner cut points: the distinct quantiles of the expected sample (ties collapse bins)."""
    values = expected[~np.isnan(expected)]
    if values.size == 0:
        return np.array([])
    cuts = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(cuts)


def counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin: (-inf, e0], (e0, e1], ..., (ek, inf), then one bin for NaN."""
    values = np.asarray(values, dtype="float64")
    missing = np.isnan(values)
    index = np.searchsorted(edges, values[~missing], side="left")
    out = np.bincount(index, minlength=len(edges) + 1).astype("float64")
    return np.append(out, float(missing.sum()))


def psi_from_counts(expected: Sequence[float], actual: Sequence[float], smoothing: float = SMOOTHING) -> float:
    """PSI of two count vectors over the same bins; bins empty on both sides are left out."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.shape != a.shape:
        raise ValueError(f"count vectors differ in length: {e.shape} vs {a.shape}")
    used = (e > 0) | (a > 0)
    e, a = e[used] + smoothing, a[used] + smoothing
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray,
        bins: int = DEFAULT_BINS, smoothing: float = SMOOTHING) -> float | None:
    """PSI of one feature, bins from the expected sample's quantiles; None when either side is empty."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.size == 0 or a.size == 0:
        return None
    edges = bin_edges(e, bins)
    return psi_from_counts(counts(e, edges), counts(a, edges), smoothing)


def feature_drift(train: pd.DataFrame, recent: pd.DataFrame, features: Sequence[str] = KEY_FEATURES,
                  bins: int = DEFAULT_BINS, min_recent_rows: int = MIN_RECENT_ROWS) -> dict[str, object]:
    """PSI per feature and the score (their mean): one number to hold against the threshold.

    The mean, not the maximum: with a few hundred recent rows one feature's PSI is noisy, and a
    single noisy feature should not retrain the model on its own. Too few recent rows: no score.
    """
    if len(recent) < min_recent_rows or train.empty:
        return {"score": None, "features": {}, "train_rows": len(train), "recent_rows": len(recent), "bins": bins,
                "note": f"too few rows to score drift (recent {len(recent)} < {min_recent_rows})"}
    per_feature: dict[str, float] = {}
    for name in features:
        if name in train and name in recent:
            value = psi(train[name].to_numpy(dtype="float64"), recent[name].to_numpy(dtype="float64"), bins)
            if value is not None:
                per_feature[name] = round(value, 6)
    score = float(np.mean(list(per_feature.values()))) if per_feature else None
    return {"score": None if score is None else round(score, 6), "features": per_feature,
            "train_rows": len(train), "recent_rows": len(recent), "bins": bins}
