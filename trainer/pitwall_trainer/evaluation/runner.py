"""Fit and evaluate a model over time-series folds, with the baselines on the same races.

`fit_evaluate` handles one fold and is what a tuner calls per trial and fold (with `rounds`,
it also scores the first k boosting rounds of the same fit); `evaluate_folds` runs a list of
folds (walk-forward CV, a holdout, or a backtest with one fold per race) and pools the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pitwall_trainer import progress
from pitwall_trainer.evaluation.baselines import BASELINES
from pitwall_trainer.evaluation.metrics import model_metrics, race_winner_metrics
from pitwall_trainer.evaluation.splits import Fold
from pitwall_trainer.models.factory import FittedModel, fit_model, get_spec, predict

KEEP = ["raceId", "driverId", "date", "year", "round", "race_name", "circuitId", "driverRef",
        "constructorRef", "won", "podium", "position_order", "quali_position", "first_stop_lap"]


@dataclass
class FoldOutcome:
    fold: Fold
    fitted: FittedModel
    predictions: pd.DataFrame  # KEEP columns + model columns + `baseline.<name>` score columns
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    per_round: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Evaluation:
    model: str
    algorithm: str
    folds: list[FoldOutcome]
    predictions: pd.DataFrame
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]

    def flat_baselines(self) -> dict[str, float]:
        """{"pole_sitter.top1_accuracy": 0.5, ...}: the TrainResult/JSON shape."""
        return {f"{name}.{k}": v for name, m in self.baselines.items() for k, v in m.items() if k != "n_races"}


def fit_evaluate(
    model: str,
    algorithm: str,
    params: dict[str, Any] | None,
    frame: pd.DataFrame,
    fold: Fold,
    rounds: Sequence[int] | None = None,
) -> FoldOutcome:
    """Train on the fold's training races, predict its test races, score model and baselines."""
    started = time.monotonic()
    spec = get_spec(model)
    eligible = spec.rows(frame)
    train = frame[fold.train_mask(frame) & eligible]
    test_all = frame[fold.test_mask(frame) & (frame["year"] >= spec.floor_year)]
    fitted = fit_model(model, algorithm, train, params)
    pred = test_all[[c for c in KEEP if c in test_all]].join(predict(fitted, test_all))
    keep = pred[[c for c in KEEP if c in pred]]
    baselines: dict[str, dict[str, float]] = {}
    for name, scores in BASELINES[model](train, test_all).items():
        pred[f"baseline.{name}"] = scores["score"]
        if "prob" in scores:
            pred[f"baseline.{name}.prob"] = scores["prob"]
        baselines[name] = baseline_metrics(model, keep.join(scores))
    per_round = {}
    for k in rounds or ():
        staged = test_all[[c for c in KEEP if c in test_all]].join(predict(fitted, test_all, (0, int(k))))
        per_round[int(k)] = model_metrics(model, staged)
    return FoldOutcome(fold, fitted, pred, model_metrics(model, pred), baselines, per_round,
                       time.monotonic() - started)


def baseline_metrics(model: str, scored: pd.DataFrame) -> dict[str, float]:
    """Metrics of one baseline's `score` (and `prob`, when the baseline is probabilistic)."""
    if model == "race_winner":
        return race_winner_metrics(scored, "score", "prob" if "prob" in scored else None)
    return model_metrics(model, scored)


def evaluate_folds(
    model: str,
    algorithm: str,
    params: dict[str, Any] | None,
    frame: pd.DataFrame,
    folds: Sequence[Fold],
    on_fold: Callable[[FoldOutcome], None] | None = None,
) -> Evaluation:
    """Run every fold; metrics are computed on the pooled test predictions (each race once)."""
    outcomes = []
    metric = get_spec(model).primary_metric
    progress.phase("Evaluating", total=len(folds), metric_name=metric)
    for fold in folds:
        outcome = fit_evaluate(model, algorithm, params, frame, fold)
        outcomes.append(outcome)
        progress.step(fold.name, metric=outcome.metrics.get(metric))
        if on_fold is not None:
            on_fold(outcome)
    pred = pd.concat([o.predictions for o in outcomes])
    return Evaluation(model, algorithm, outcomes, pred, model_metrics(model, pred),
                      score_baselines(model, pred, list(outcomes[0].baselines)))


def score_baselines(model: str, pred: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Metrics of each baseline from its `baseline.<name>` columns of pooled predictions."""
    keep = pred[[c for c in KEEP if c in pred]]
    baselines = {}
    for name in names:
        scored = keep.assign(score=pred[f"baseline.{name}"])
        if f"baseline.{name}.prob" in pred:
            scored["prob"] = pred[f"baseline.{name}.prob"]
        baselines[name] = baseline_metrics(model, scored)
    return baselines
