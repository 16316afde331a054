"""race_winner: each driver's probability of winning, normalised so every race sums to one.

A binary classifier scores drivers independently; dividing by the race total turns the scores
into one distribution over the field, which is what top-1 accuracy, log loss and Brier need.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pitwall_trainer.models.spec import CLASSIFY, ModelSpec

# A compact set: with ~20 winners a season, the full feature list let trees fit noise. Chosen on
# per-race walk-forward backtests of 2019-2023 only (104 races; 2024 stays the test season), see
# bench/race_winner_selection.md: the 15 earlier features plus the points gap to the championship
# leader, with a more strongly regularised linear model (C=0.05), beat every XGBoost variant tried
# (binary, per-race softmax objective, rank:pairwise / rank:ndcg rankers) on top-1 and log loss.
FEATURES = (
    "quali_pos", "grid_pos", "quali_gap_pct", "pit_lane_start", "drv_points_share_of_leader",
    "drv_form_points_5", "con_form_points_5", "drv_win_rate_10", "drv_podium_rate_10", "tm_quali_diff",
    "sprint_pos", "circuit_pole_win_rate", "con_form_best_pos_5", "drv_form_pos_5", "drv_gain_5",
    "drv_points_gap_to_leader",
)


def normalise_per_race(race_ids: pd.Series, scores: np.ndarray) -> np.ndarray:
    """Scale non-negative scores so they sum to 1 within each race (uniform when all are 0)."""
    s = pd.Series(np.clip(np.asarray(scores, dtype="float64"), 0.0, None), index=race_ids.index)
    total = s.groupby(race_ids).transform("sum")
    size = s.groupby(race_ids).transform("size")
    return np.where(total > 0, s / total.where(total > 0, 1.0), 1.0 / size).astype("float64")


def _postprocess(rows: pd.DataFrame, raw: np.ndarray) -> pd.DataFrame:
    prob = normalise_per_race(rows["raceId"], raw)
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
    description="win probability per driver, normalised per race; pre-race features incl. qualifying, grid, sprint",
    default_algorithm="logistic_regression",  # won the 2019-2023 backtests (race_winner_selection.md)
)
