"""race_winner: each driver's probability of winning, as one choice among the cars of the race.

The winner is one of the ~20 cars that start, so the default (`logistic_regression`) is a
conditional logit: a linear utility per driver and a softmax over the field, fitted on the
likelihood of the actual winner of every training race (McFadden's choice model). Features that
are equal for every car of a race cancel; what counts is a driver's grid, pace and form
*relative to the rest of the field*, the way the grid-only baseline uses the grid. Tree models
(`xgboost`, `random_forest`) score drivers independently; their P(win) is renormalised per race.
Every algorithm ends in the same per-race softmax, so every race's probabilities sum to one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from pitwall_trainer.models.spec import CLASSIFY, ModelSpec

# The 2019-2023 selection (bench/race_winner_selection.md) kept the earlier 16 features: adding or
# dropping one moved the pooled figures by about one race of top-1, within noise.
FEATURES = (
    "quali_pos", "grid_pos", "quali_gap_pct", "pit_lane_start", "drv_points_share_of_leader",
    "drv_form_points_5", "con_form_points_5", "drv_win_rate_10", "drv_podium_rate_10", "tm_quali_diff",
    "sprint_pos", "circuit_pole_win_rate", "con_form_best_pos_5", "drv_form_pos_5", "drv_gain_5",
    "drv_points_gap_to_leader",
)
LOG_FLOOR = 1e-12  # P(win) of an independent classifier, floored before its log


def _race_blocks(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index of each race in `groups` (sorted) and each row's race number."""
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(groups)])
    return starts, np.repeat(np.arange(len(starts)), sizes)


class ConditionalLogit(ClassifierMixin, BaseEstimator):
    """Softmax over each race's field of a linear utility x·w (no intercept: it cancels per race).

    Minimises the mean over races of -log P(actual winner) + ||w||² / (2C), with L-BFGS.
    Dividing the likelihood by the number of races keeps C's meaning stable as the training
    window grows. `fit` needs `groups` (the race of each row); `decision_function` returns
    the utilities, which `softmax_per_race` turns into each race's probabilities.
    """

    def __init__(self, C: float = 10.0, max_iter: int = 1000, tol: float = 1e-7):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y, groups) -> ConditionalLogit:
        X = np.asarray(X, dtype="float64")
        y = np.asarray(y).astype(int)
        groups = np.asarray(groups)
        if not (len(X) == len(y) == len(groups)):
            raise ValueError("X, y and groups must have the same length")
        if self.C <= 0:
            raise ValueError(f"C must be positive, got {self.C}")
        order = np.argsort(groups, kind="stable")
        X, y, groups = X[order], y[order], groups[order]
        starts, race = _race_blocks(groups)
        has_winner = np.add.reduceat(y, starts) > 0  # a race without a recorded winner teaches nothing
        keep = has_winner[race]
        X, y, groups = X[keep], y[keep], groups[keep]
        if not len(X):
            raise ValueError("no race with a winner to learn from")
        starts, race = _race_blocks(groups)
        won = y == 1
        n_races = len(starts)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            u = X @ w
            top = np.maximum.reduceat(u, starts)
            e = np.exp(u - top[race])
            total = np.add.reduceat(e, starts)
            p = e / total[race]  # each race's softmax
            log_z = top + np.log(total)
            value = -(u[won].sum() - log_z.sum()) / n_races + 0.5 * (w @ w) / self.C
            grad = -(X[won].sum(axis=0) - p @ X) / n_races + w / self.C
            return value, grad

        result = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iter, "gtol": self.tol})
        self.coef_ = result.x.reshape(1, -1)
        self.n_iter_ = int(result.nit)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Utility per row; only differences within a race matter."""
        check_is_fitted(self, "coef_")
        return np.asarray(X, dtype="float64") @ self.coef_[0]

    def predict(self, X) -> np.ndarray:
        """The utility (MLflow's signature and pyfunc use this; softmax it per race for P(win))."""
        return self.decision_function(X)


def softmax_per_race(race_ids: pd.Series, utilities: np.ndarray) -> np.ndarray:
    """exp(u) / sum of exp(u) over the race's field (scipy's softmax, one race at a time)."""
    u = pd.Series(np.asarray(utilities, dtype="float64"), index=race_ids.index)
    return u.groupby(race_ids.to_numpy(), sort=False).transform(lambda s: softmax(s.to_numpy())).to_numpy()


def utilities_from_probabilities(prob: np.ndarray) -> np.ndarray:
    """log P(win) of an independent classifier: its softmax per race is P / (sum of P in the race)."""
    return np.log(np.clip(np.asarray(prob, dtype="float64"), LOG_FLOOR, None))


def normalise_per_race(race_ids: pd.Series, scores: np.ndarray) -> np.ndarray:
    """Scale non-negative scores so they sum to 1 within each race (uniform when all are 0)."""
    s = pd.Series(np.clip(np.asarray(scores, dtype="float64"), 0.0, None), index=race_ids.index)
    total = s.groupby(race_ids).transform("sum")
    size = s.groupby(race_ids).transform("size")
    return np.where(total > 0, s / total.where(total > 0, 1.0), 1.0 / size).astype("float64")


def _postprocess(rows: pd.DataFrame, raw: np.ndarray) -> pd.DataFrame:
    prob = softmax_per_race(rows["raceId"], raw)
    return pd.DataFrame({"score": prob, "prob": prob}, index=rows.index)


SPEC = ModelSpec(
    name="race_winner",
    task=CLASSIFY,
    target="won",
    features=FEATURES,
    primary_metric="top1_accuracy",
    primary_mode="max",
    first_year=2014,
    floor_year=2006,  # knockout qualifying (gap to pole) from 2006
    postprocess=_postprocess,
    description="win probability per driver: a softmax over the race's field; pre-race features incl. "
                "qualifying, grid, sprint",
)
