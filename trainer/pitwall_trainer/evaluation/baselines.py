"""Baselines scored on the same test races as the model, fitted only on the same training races.

race_winner: pole sitter, championship leader (before the race), and a grid-only logistic model
(the probabilistic baseline for log loss); quali_order: the previous race's qualifying order;
pit_window: the median first-stop lap per circuit over the training races.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from pitwall_trainer.models.race_winner import normalise_per_race

GRID_FEATURES = ["grid_pos", "log_grid", "pit_lane_start"]


def _grid_frame(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"grid_pos": rows["grid_pos"], "log_grid": np.log(rows["grid_pos"].clip(lower=1)),
                         "pit_lane_start": rows["pit_lane_start"]}, index=rows.index)


def race_winner_baselines(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Scores (higher = predicted ahead) per baseline; grid_only also has a normalised `prob`."""
    pole = -test["quali_pos"] - 0.001 * test["grid_pos"]
    leader = test["drv_points_before"] - 0.001 * test["drv_prev_season_position"].fillna(99)
    fitted = LogisticRegression(max_iter=1000).fit(_grid_frame(train), train["won"].astype(int))
    grid_prob = normalise_per_race(test["raceId"], fitted.predict_proba(_grid_frame(test))[:, 1])
    return {
        "pole_sitter": pd.DataFrame({"score": pole}, index=test.index),
        "championship_leader": pd.DataFrame({"score": leader}, index=test.index),
        "grid_only": pd.DataFrame({"score": grid_prob, "prob": grid_prob}, index=test.index),
    }


def quali_order_baselines(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The previous race's qualifying order (drivers without one go to the back)."""
    return {"previous_race": pd.DataFrame({"score": -test["drv_prev_quali"].fillna(99.0)}, index=test.index)}


def pit_window_baselines(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Median first-stop lap at the circuit over the training races (overall median if unseen)."""
    by_circuit = train.groupby("circuitId")["first_stop_lap"].median()
    pred = test["circuitId"].map(by_circuit).astype("float64").fillna(float(train["first_stop_lap"].median()))
    return {"circuit_median": pd.DataFrame({"score": pred}, index=test.index)}


BASELINES = {"race_winner": race_winner_baselines, "quali_order": quali_order_baselines,
             "pit_window": pit_window_baselines}
