"""What a retraining policy would have achieved over a season: `pitwall-train backtest --retrain ...`.

The season is replayed race by race. Before each race the deployed model predicts it; after the
race the policy decides whether to retrain before the next one (on every race before it):

- weekly: retrain after every race weekend (the RetrainPolicy example's Tuesday 06:00 schedule);
- never: the model trained before the season's first race serves the whole season;
- on-drift: retrain only when a drift trigger of a RetrainPolicy fires with the RetrainPolicy defaults:
  performance drift (the deployed model's accuracy over the last 5 races it served below 0.9 of
  the accuracy it was measured at when trained) or data drift (PSI of the key features, training
  window vs the races since, above 0.1).

"Measured when trained" is honest: the model is refitted without its last 5 training races and
scored on them, as a TrainingRun's holdout would be. Splits are by date only; nothing leaks.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pitwall_api.triggers import DEFAULT_TRIGGERS

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.evaluation.metrics import model_metrics
from pitwall_trainer.evaluation.splits import race_calendar, season_races
from pitwall_trainer.features import load_feature_matrix
from pitwall_trainer.models.factory import FittedModel, fit_model, get_spec, predict
from pitwall_trainer.monitoring.drift import KEY_FEATURES, feature_drift
from pitwall_trainer.monitoring.signals import ACCURACY_METRIC

POLICIES = ("weekly", "never", "on-drift")
# the RetrainPolicy defaults
PERF_THRESHOLD = DEFAULT_TRIGGERS["performanceDrift"]["threshold"]
WINDOW_RACES = DEFAULT_TRIGGERS["performanceDrift"]["windowRaces"]
DRIFT_THRESHOLD = DEFAULT_TRIGGERS["dataDrift"]["threshold"]


def add_retrain_argument(parser: argparse.ArgumentParser) -> None:
    """`--retrain weekly|never|on-drift` for `pitwall-train backtest`."""
    parser.add_argument(
        "--retrain", choices=POLICIES, default=None,
        help="replay a retraining policy over the season: weekly (after every race), never (one model "
             "for the season) or on-drift (when accuracy drops below 0.9 of its baseline or PSI > 0.1)",
    )


class _Deployed:
    """A model in production: when it was trained, what it was measured at, which races it served."""

    def __init__(self, fitted: FittedModel, before: pd.Timestamp, baseline: float | None, train: pd.DataFrame):
        self.fitted, self.before, self.baseline, self.train = fitted, before, baseline, train
        self.served: list[pd.DataFrame] = []


def _train(model: str, algorithm: str, history: pd.DataFrame, before: pd.Timestamp, first_year: int,
           params: dict[str, Any] | None, with_baseline: bool) -> _Deployed:
    """Fit on every eligible race before `before`; baseline = a refit without the last 5, scored on them."""
    spec = get_spec(model)
    train = history[(history["date"] < before) & (history["year"] >= first_year)]
    baseline = None
    if with_baseline:  # only on-drift reads it: weekly and never skip the extra fit
        holdout = set(race_calendar(train)["raceId"].tail(WINDOW_RACES))
        probe = fit_model(model, algorithm, train[~train["raceId"].isin(holdout)], params)
        scored = train[train["raceId"].isin(holdout) & spec.rows(train)]
        baseline = model_metrics(model, scored.join(predict(probe, scored))).get(ACCURACY_METRIC[model])
    return _Deployed(fit_model(model, algorithm, train, params), before, baseline, train[spec.rows(train)])


def _drift_reasons(model: str, deployed: _Deployed) -> list[str]:
    """The default drift triggers on what this model has served since it was trained."""
    reasons = []
    served = pd.concat(deployed.served) if deployed.served else pd.DataFrame()
    if served.empty:
        return reasons
    recent_ids = list(dict.fromkeys(served["raceId"]))[-WINDOW_RACES:]
    if len(recent_ids) >= WINDOW_RACES and deployed.baseline is not None:
        recent = model_metrics(model, served[served["raceId"].isin(recent_ids)])[ACCURACY_METRIC[model]]
        if recent < PERF_THRESHOLD * deployed.baseline:
            reasons.append("PerformanceDrift")
    drift = feature_drift(deployed.train, served, KEY_FEATURES)
    if drift["score"] is not None and drift["score"] > DRIFT_THRESHOLD:
        reasons.append("DataDrift")
    return reasons


def run_policy_backtest(
    model: str,
    season: int,
    policy: str,
    data_dir: str | Path | None = None,
    progress: Any = None,
    algorithm: str = "xgboost",
    params: dict[str, Any] | None = None,
    first_year: int | None = None,
) -> dict[str, Any]:
    """Replay `policy` over `season`; accuracy of what was deployed, retrains and when/why.

    `progress` is advanced once per race: a `pitwall_trainer.progress.Progress` sized to the
    season's races (or anything with `advance(steps, message, metric)`); None shows a bar of its own
    on a terminal.
    """
    if policy not in POLICIES:
        raise ConfigError(f"--retrain: {policy!r} is not one of {', '.join(POLICIES)}")
    spec = get_spec(model)
    first_year = spec.first_year if first_year is None else first_year
    frame = load_feature_matrix(data_dir).frame
    races = season_races(race_calendar(frame), season)
    if progress is None:
        from pitwall_trainer.progress import Progress

        with Progress(total=len(races), description=f"{model} {season} --retrain {policy}") as own:
            return run_policy_backtest(model, season, policy, data_dir, own, algorithm, params, first_year)

    def train(before: pd.Timestamp) -> _Deployed:
        return _train(model, algorithm, frame, before, first_year, params, policy == "on-drift")

    deployed = train(races["date"].iloc[0])
    retrains: list[dict[str, Any]] = []
    predictions: list[pd.DataFrame] = []
    for i, race in enumerate(races.itertuples(index=False)):
        rows = frame[(frame["raceId"] == race.raceId) & spec.rows(frame)]
        served = rows.join(predict(deployed.fitted, rows))
        deployed.served.append(served)
        predictions.append(served)
        running = model_metrics(model, pd.concat(predictions)).get(ACCURACY_METRIC[model])
        if progress is not None:
            progress.advance(1, f"{season} R{race.round} ({policy})", metric=running)
        if i + 1 == len(races):
            break
        reasons = ["Schedule"] if policy == "weekly" else _drift_reasons(model, deployed) if policy == "on-drift" else []
        if reasons:
            nxt = races.iloc[i + 1]
            deployed = train(nxt["date"])
            retrains.append({"after_round": int(race.round), "before_round": int(nxt["round"]), "reasons": reasons})
    pooled = pd.concat(predictions)
    metrics = model_metrics(model, pooled)
    return {
        "model": model, "season": season, "policy": policy, "algorithm": algorithm, "first_year": first_year,
        "races": len(races), "retrains": len(retrains), "trainings": len(retrains) + 1,
        "accuracy_metric": ACCURACY_METRIC[model], "accuracy": metrics.get(ACCURACY_METRIC[model]),
        "metrics": metrics, "retrain_log": retrains,
    }


def compare_policies(model: str, season: int, data_dir: str | Path | None = None,
                     policies: Sequence[str] = POLICIES, algorithm: str = "xgboost") -> list[dict[str, Any]]:
    """Every policy over the same season: the numbers to choose a policy with."""
    return [run_policy_backtest(model, season, p, data_dir, algorithm=algorithm) for p in policies]


def format_comparison(results: Sequence[dict[str, Any]]) -> str:
    """A small table: policy, accuracy, retrains."""
    lines = [f"{'policy':<9} {'accuracy':>9} {'retrains':>8}  {'races':>5}"]
    for r in results:
        acc = r["accuracy"]
        lines.append(f"{r['policy']:<9} {acc:>9.3f} {r['retrains']:>8}  {r['races']:>5}" if acc is not None
                     else f"{r['policy']:<9} {'-':>9} {r['retrains']:>8}  {r['races']:>5}")
    return "\n".join(lines)
