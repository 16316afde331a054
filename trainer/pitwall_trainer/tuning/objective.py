"""The tuning objective: walk-forward folds by race date, the model's metric, results per round.

Folds: the holdout season (by default the last of `seasons`, as in the trainer's evaluation)
is never seen by the tuner, so the final model's reported metric stays honest; the tuner's
folds are the trainer's kind (expanding-window blocks by race date, splits.walk_forward_folds)
over the season before the holdout, each trained on every earlier race from the model's first
year, the same history the trainer uses. Never shuffled.

Intermediate results, so that ASHA and Optuna's pruner can stop bad trials early and save the
work: XGBoost trials grow in stages whose ends are the scheduler's rungs (grace, grace*rf, ...,
n_estimators); each stage continues every fold's booster to that many rounds and reports the
pooled metric at that round. A stopped trial never pays for its later rounds; a finished one
pays one fit plus a scoring per rung. Without a scheduler a trial fits once and reports the
same rungs from that fit. Other algorithms report after each fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.evaluation.metrics import model_metrics
from pitwall_trainer.evaluation.runner import KEEP, fit_evaluate
from pitwall_trainer.evaluation.splits import Fold, race_calendar, walk_forward_folds
from pitwall_trainer.models import factory
from pitwall_trainer.models.factory import get_spec, predict, resolve_params
from pitwall_trainer.models.spec import RANK, ModelSpec
from pitwall_trainer.tuning.space import Scheduler, SearchSpace

# Metrics each model reports (evaluation/metrics.py) and their natural direction.
MODEL_METRICS = {
    "race_winner": ("top1_accuracy", "podium_hit_rate", "log_loss", "brier"),
    "quali_order": ("spearman", "ndcg_at_10", "pole_accuracy"),
    "pit_window": ("mae_laps", "within_3_laps"),
}
MINIMISED = {"log_loss", "brier", "mae_laps"}
DEFAULT_FOLDS = 3

# report(step, value, final) -> True when the engine wants the trial stopped
Reporter = Callable[[int, float, bool], bool]


@dataclass
class TuningData:
    """What every trial needs, built once in the driver and shipped to the workers."""

    spec: ModelSpec  # the model, resolved once in `prepare`
    algorithm: str
    frame: pd.DataFrame  # feature rows of the tuning window only (the holdout season left out)
    folds: list[Fold]
    metric: str
    mode: str
    seasons: list[int]
    holdout_season: int
    data_hash: str = ""
    n_jobs: int = 1  # threads per trial: the CPUs the engine gives each trial

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def boosted(self) -> bool:
        return self.algorithm == "xgboost"

    def better(self, a: float, b: float | None) -> bool:
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return not math.isnan(a)
        return a > b if self.mode == "max" else a < b


def resolve_metric(spec: ModelSpec, metric: str | None, mode: str | None, where: str = "metric") -> tuple[str, str]:
    """The model's primary metric and direction unless overridden; unknown names are ConfigErrors."""
    model = spec.name
    metric = metric or spec.primary_metric
    if metric not in MODEL_METRICS[model]:
        raise ConfigError(f"{where}: {metric!r} is not a metric of {model} (one of {', '.join(MODEL_METRICS[model])})")
    if mode is None:
        mode = spec.primary_mode if metric == spec.primary_metric else ("min" if metric in MINIMISED else "max")
    if mode not in ("max", "min"):
        raise ConfigError(f"mode: must be max or min, got {mode!r}")
    return metric, mode


def tuning_folds(
    frame: pd.DataFrame, spec: ModelSpec, seasons: Sequence[int], n_folds: int = DEFAULT_FOLDS,
    holdout_season: int | None = None, holdout_races: int | None = None, first_year: int | None = None,
) -> tuple[pd.DataFrame, list[Fold]]:
    """The races before the holdout, and walk-forward folds over the last season of them.

    The data scope is the trainer's (training.train): history from the model's first year (or
    the first chosen season, if earlier) up to the holdout (a season, by default the last
    chosen, or the last N races), which the tuner never sees.
    """
    model = spec.name
    seasons = sorted(set(int(s) for s in seasons))
    if not seasons:
        raise ConfigError("--seasons: no season given")
    first = min(spec.first_year if first_year is None else first_year, seasons[0])
    scope = frame[(frame["year"] >= first) & (frame["year"] <= seasons[-1])]
    if holdout_races is not None:
        calendar = race_calendar(scope)
        if not 1 <= holdout_races < len(calendar):
            raise ConfigError(f"--holdout-races: {holdout_races} is not between 1 and {len(calendar) - 1}")
        start = calendar["date"].iloc[-holdout_races]
        window, held = scope[scope["date"] < start], f"the last {holdout_races} races"
    else:
        holdout = seasons[-1] if holdout_season is None else int(holdout_season)
        window, held = scope[scope["year"] < holdout], f"the holdout season {holdout}"
    calendar = race_calendar(window)
    if len(calendar) < 2:
        raise ConfigError(f"--seasons: no {model} races to tune on before {held} ({model} learns from {first} on)")
    last = int(calendar["year"].max())
    eval_races = calendar[calendar["year"] == last]
    if len(eval_races) == len(calendar):  # one season only: its first half trains the first fold
        eval_races = calendar.iloc[len(calendar) // 2 :]
    folds = walk_forward_folds(window, eval_races, n_folds, first)
    return window.reset_index(drop=True), folds


def prepare(
    model: str,
    algorithm: str,
    seasons: Sequence[int],
    data_dir: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    n_folds: int = DEFAULT_FOLDS,
    holdout_season: int | None = None,
    holdout_races: int | None = None,
    first_year: int | None = None,
) -> TuningData:
    """Load the feature matrix (cached) and cut the tuning folds."""
    from pitwall_trainer.features import load_feature_matrix

    spec = get_spec(model)
    metric, mode = resolve_metric(spec, metric, mode)
    resolve_params(model, algorithm, None)  # unknown algorithm -> ConfigError before loading data
    matrix = load_feature_matrix(data_dir)
    window, folds = tuning_folds(matrix.frame, spec, seasons, n_folds, holdout_season, holdout_races, first_year)
    seasons = sorted(set(int(s) for s in seasons))
    holdout = seasons[-1] if holdout_season is None else int(holdout_season)  # with holdout_races: its season
    return TuningData(spec, algorithm, window, folds, metric, mode, seasons, holdout, matrix.data_hash)


def pooled(metrics: Sequence[dict[str, float]], metric: str) -> float:
    """Pool per-fold metrics: each race (or pit stop) counts once, as in evaluate_folds."""
    total = weight = 0.0
    for m in metrics:
        value = m.get(metric, math.nan)
        w = m.get("n_stops", m.get("n_races", 1.0))
        if value is None or math.isnan(value) or not w:
            continue
        total += value * w
        weight += w
    return total / weight if weight else math.nan


def rungs(budget: int, scheduler: Scheduler) -> list[int]:
    """Report points: grace, grace*rf, grace*rf^2, ... below `budget`, then the budget itself."""
    points, step = [], max(1, scheduler.grace_period)
    while step < budget:
        points.append(step)
        step *= scheduler.reduction_factor
    return [*points, budget]


def round_budget(data: TuningData, params: dict[str, Any]) -> int:
    return int(resolve_params(data.model, data.algorithm, params)["n_estimators"])


@dataclass
class TrialOutcome:
    params: dict[str, Any]
    value: float  # the last reported value (the final one when not stopped)
    step: int  # the last reported step (round or fold)
    stopped: bool  # stopped early by the scheduler or pruner
    history: list[tuple[int, float]] = field(default_factory=list)


def _with_threads(data: TuningData, params: dict[str, Any]) -> dict[str, Any]:
    """Pin the estimator's threads to the trial's CPUs (OpenMP spinning across trials costs 10x)."""
    if data.algorithm in ("xgboost", "random_forest") and "n_jobs" not in params:
        return {**params, "n_jobs": data.n_jobs}
    return dict(params)


def run_trial(data: TuningData, params: dict[str, Any], report: Reporter, scheduler: Scheduler) -> TrialOutcome:
    """Evaluate one configuration on every fold, reporting intermediate values as it goes."""
    history: list[tuple[int, float]] = []
    fit_params = _with_threads(data, params)

    def emit(step: int, value: float, final: bool) -> bool:
        history.append((step, value))
        return report(step, value, final)

    if data.boosted:
        budget = round_budget(data, params)
        if scheduler.enabled and scheduler.max_t is not None:
            budget = min(budget, scheduler.max_t)
        points = rungs(budget, scheduler)
        if not scheduler.enabled:  # one fit, every rung read from it
            outcomes = [fit_evaluate(data.model, data.algorithm, {**fit_params, "n_estimators": budget},
                                     data.frame, fold, rounds=points) for fold in data.folds]
            for k in points:
                emit(k, pooled([o.per_round[k] for o in outcomes], data.metric), k == budget)
            return TrialOutcome(params, history[-1][1], budget, False, history)
        folds = [_GrowingFold(data, fold, fit_params) for fold in data.folds]
        for k in points:
            value = pooled([f.grow(k) for f in folds], data.metric)
            if emit(k, value, k == budget) and k < budget:
                return TrialOutcome(params, value, k, True, history)
        return TrialOutcome(params, history[-1][1], budget, False, history)
    done: list[dict[str, float]] = []
    for i, fold in enumerate(data.folds, start=1):
        done.append(fit_evaluate(data.model, data.algorithm, fit_params, data.frame, fold).metrics)
        value = pooled(done, data.metric)
        if emit(i, value, i == len(data.folds)) and scheduler.enabled and i < len(data.folds):
            return TrialOutcome(params, value, i, True, history)
    return TrialOutcome(params, history[-1][1], len(data.folds), False, history)


class _GrowingFold:
    """One fold's XGBoost model grown rung by rung: training continues from the last booster.

    The first rung goes through `fit_evaluate` (the trainer's rows of the fold); later rungs add
    rounds with XGBoost's training continuation and score only the model (no baselines again).
    """

    def __init__(self, data: TuningData, fold: Fold, params: dict[str, Any]):
        self.data, self.fold, self.params = data, fold, params
        self.fitted: Any = None
        self.rounds = 0

    def grow(self, k: int) -> dict[str, float]:
        data = self.data
        if self.fitted is None:
            outcome = fit_evaluate(data.model, data.algorithm, {**self.params, "n_estimators": k}, data.frame, self.fold)
            self.fitted, self.rounds = outcome.fitted, k
            self.test = data.frame.loc[outcome.predictions.index]
            return outcome.metrics
        spec = data.spec
        rows = data.frame[self.fold.train_mask(data.frame) & spec.rows(data.frame)]
        order = np.argsort(rows["raceId"].to_numpy(), kind="stable")  # XGBRanker wants qid sorted
        rows = rows.iloc[order]
        extra = {"qid": rows["raceId"].to_numpy()} if spec.task == RANK else {}
        estimator = self.fitted.estimator
        booster = estimator.get_booster()
        estimator.set_params(n_estimators=k - self.rounds)
        estimator.fit(rows[self.fitted.feature_names], factory._target(spec, rows), xgb_model=booster, **extra)
        self.rounds = k
        keep = self.test[[c for c in KEEP if c in self.test]]
        return model_metrics(data.model, keep.join(predict(self.fitted, self.test)))


def final_params(data: TuningData, params: dict[str, Any], scheduler: Scheduler) -> dict[str, Any]:
    """The parameters a finished trial was scored with (n_estimators capped by ASHA's maxT)."""
    out = dict(params)
    if data.boosted and scheduler.enabled and scheduler.max_t is not None:
        budget = round_budget(data, params)
        if budget > scheduler.max_t:
            out["n_estimators"] = scheduler.max_t
    return out


def sized_scheduler(scheduler: Scheduler, data: TuningData, space: SearchSpace) -> Scheduler:
    """Fill maxT from the space (largest n_estimators, or the folds) and keep rungs inside it."""
    if data.boosted:
        p = space.get("n_estimators")
        largest = int(p.high) if p is not None and p.type == "int" else (
            max(int(v) for v in p.values) if p is not None and p.type == "categorical"
            else round_budget(data, {}))
        max_t = scheduler.max_t or largest
    else:
        max_t = len(data.folds)  # for forests and linear models a step is one fold
        grace = 1
        return Scheduler(scheduler.type, max_t, grace, scheduler.reduction_factor)
    if scheduler.grace_period > max_t:
        raise ConfigError(
            f"scheduler.gracePeriod: {scheduler.grace_period} exceeds maxT ({max_t} boosting rounds)"
        )
    return Scheduler(scheduler.type, max_t, scheduler.grace_period, scheduler.reduction_factor)
