"""Metrics per model, computed per race and averaged over races (each race counts once)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import ndcg_score

EPS = 1e-15


def race_winner_metrics(pred: pd.DataFrame, score: str = "score", prob: str | None = "prob") -> dict[str, float]:
    """top1_accuracy, podium_hit_rate from `score`; log_loss and brier from `prob` (per-race softmax).

    log loss is -log P(actual winner) per race; Brier sums (p - won)^2 over the field per race.
    """
    top1, podium, logloss, brier = [], [], [], []
    for _, race in pred.groupby("raceId", sort=False):
        order = race.sort_values(score, ascending=False, kind="stable")
        top1.append(float(order["won"].iloc[0] == 1))
        actual = set(race.loc[race["position_order"] <= 3, "driverId"])
        podium.append(len(actual & set(order["driverId"].iloc[:3])) / max(1, len(actual)))
        if prob is not None and prob in race:
            p = race[prob].to_numpy(dtype="float64")
            y = race["won"].to_numpy(dtype="float64")
            logloss.append(-np.log(max(EPS, float(p[y == 1].sum()))))
            brier.append(float(((p - y) ** 2).sum()))
    out = {"top1_accuracy": float(np.mean(top1)), "podium_hit_rate": float(np.mean(podium)),
           "n_races": float(len(top1))}
    if logloss:
        out["log_loss"] = float(np.mean(logloss))
        out["brier"] = float(np.mean(brier))
    return out


def quali_order_metrics(pred: pd.DataFrame, score: str = "score") -> dict[str, float]:
    """Spearman correlation of predicted and actual order, NDCG@10 (pole = most relevant), pole accuracy."""
    rhos, ndcgs, poles = [], [], []
    for _, race in pred.groupby("raceId", sort=False):
        race = race[race["quali_position"].notna()]
        if len(race) < 2:
            continue
        s = race[score].to_numpy(dtype="float64")
        pos = race["quali_position"].to_numpy(dtype="float64")
        rhos.append(float(spearmanr(-s, pos).statistic))
        relevance = np.clip(len(race) + 1 - pos, 0, None)
        ndcgs.append(float(ndcg_score([relevance], [s], k=10)))
        poles.append(float(pos[int(np.argmax(s))] == 1))
    return {"spearman": float(np.nanmean(rhos)), "ndcg_at_10": float(np.mean(ndcgs)),
            "pole_accuracy": float(np.mean(poles)), "n_races": float(len(rhos))}


def pit_window_metrics(pred: pd.DataFrame, score: str = "score") -> dict[str, float]:
    """MAE in laps and share within ±3 laps, over drivers, plus the number of races."""
    rows = pred[pred["first_stop_lap"].notna() & pred[score].notna()]
    err = (rows[score] - rows["first_stop_lap"]).abs()
    return {"mae_laps": float(err.mean()), "within_3_laps": float((err <= 3).mean()),
            "n_races": float(rows["raceId"].nunique()), "n_stops": float(len(rows))}


# The figures a model must win to be worth promoting, per model; and the metrics where lower is better.
HEADLINE = {"race_winner": ("top1_accuracy", "log_loss"), "quali_order": ("ndcg_at_10", "spearman"),
            "pit_window": ("mae_laps", "within_3_laps")}
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae_laps"})


def worse(metric: str, model_value: float, baseline_value: float) -> bool:
    """True when the model's value is strictly worse than the baseline's (a tie is not worse)."""
    if metric in LOWER_IS_BETTER:
        return model_value > baseline_value
    return model_value < baseline_value


METRICS = {"race_winner": race_winner_metrics, "quali_order": quali_order_metrics,
           "pit_window": pit_window_metrics}


def model_metrics(model: str, pred: pd.DataFrame, score: str = "score") -> dict[str, float]:
    if model == "race_winner":
        return race_winner_metrics(pred, score, "prob" if score == "score" else None)
    return METRICS[model](pred, score)
