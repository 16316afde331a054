"""Build, fit and apply an estimator for (model, algorithm, params): the one entry the tuner uses.

`build_estimator` merges `params` over per-model defaults and rejects unknown names with a
ConfigError naming the parameter; `fit_model` trains on a frame of feature rows;
`predict` returns the model's prediction columns, optionally from the first k boosting rounds
(so a tuner can score every round of one fit on the same walk-forward folds).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier, XGBRanker, XGBRegressor

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.models import pit_window, quali_order, race_winner
from pitwall_trainer.models.race_winner import ConditionalLogit, utilities_from_probabilities
from pitwall_trainer.models.spec import CLASSIFY, RANK, ModelSpec

MODELS: dict[str, ModelSpec] = {m.SPEC.name: m.SPEC for m in (race_winner, quali_order, pit_window)}
ALGORITHMS = ("xgboost", "random_forest", "logistic_regression")

# Chosen on walk-forward folds of 2022-2023 only (2024 is the reported test season).
_XGB_COMMON = {"n_estimators": 300, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
               "colsample_bytree": 0.8, "min_child_weight": 1.0, "reg_lambda": 1.0,
               "tree_method": "hist", "n_jobs": 1, "random_state": 0}
DEFAULT_PARAMS: dict[tuple[str, str], dict[str, Any]] = {
    # race_winner: shallower, slower, more regularised trees won the 2019-2023 per-race backtests
    # (bench/race_winner_selection.md): ~20 winners a season are few positives for deep trees.
    # (300 rounds at 0.02 scored the same there as 200 at 0.03, and keeps the 300-round default
    # the tuner's ASHA sizing assumes.)
    ("race_winner", "xgboost"): {**_XGB_COMMON, "objective": "binary:logistic", "max_depth": 2,
                                 "learning_rate": 0.02, "min_child_weight": 10.0},
    ("quali_order", "xgboost"): {**_XGB_COMMON, "objective": "rank:pairwise"},
    ("pit_window", "xgboost"): {**_XGB_COMMON, "objective": "reg:absoluteerror"},
}
for _name in MODELS:
    DEFAULT_PARAMS[(_name, "random_forest")] = {"n_estimators": 200, "min_samples_leaf": 5,
                                                "max_features": 0.5, "n_jobs": 1, "random_state": 0}
# race_winner's linear model is the conditional logit (a softmax over each race's field); C is the
# inverse L2 strength per race, chosen on per-race backtests of 2019-2023 (bench/race_winner_selection.md).
DEFAULT_PARAMS[("race_winner", "logistic_regression")] = {"C": 10.0, "max_iter": 1000}
DEFAULT_PARAMS[("quali_order", "logistic_regression")] = {"alpha": 1.0}
DEFAULT_PARAMS[("pit_window", "logistic_regression")] = {"alpha": 1.0}


def _linear_class(model: str, spec: ModelSpec) -> type:
    """race_winner: a conditional logit over the race's field; other classifiers: LogisticRegression."""
    if model == "race_winner":
        return ConditionalLogit
    return LogisticRegression if spec.task == CLASSIFY else Ridge


def _final_step(estimator: Any) -> Any:
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def is_per_race_choice(estimator: Any) -> bool:
    """True when the estimator is fitted on whole races (needs the race id) and outputs utilities."""
    return isinstance(_final_step(estimator), ConditionalLogit)


def get_spec(model: str) -> ModelSpec:
    if model not in MODELS:
        raise ConfigError(f"--model: unknown model {model!r} (choose from {', '.join(MODELS)})")
    return MODELS[model]


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"--algorithm: unknown algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")


def _accepted(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


def _xgb_accepts(name: str) -> bool:
    """XGBoost takes any booster parameter through **kwargs; accept the documented ones."""
    import xgboost

    known = _accepted(xgboost.XGBModel) | {"objective", "eval_metric", "lambdarank_pair_method",
                                           "lambdarank_num_pair_per_sample", "ndcg_exp_gain"}
    return name in known


def resolve_params(model: str, algorithm: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `params`; unknown parameter names raise ConfigError."""
    get_spec(model)
    _check_algorithm(algorithm)
    merged = dict(DEFAULT_PARAMS[(model, algorithm)])
    merged.update(params or {})
    return merged


def build_estimator(model: str, algorithm: str, params: dict[str, Any] | None = None) -> Any:
    """An unfitted estimator for the model's task; linear models get imputation and scaling."""
    spec = get_spec(model)
    merged = resolve_params(model, algorithm, params)
    if algorithm == "xgboost":
        bad = sorted(k for k in merged if not _xgb_accepts(k))
        cls = {CLASSIFY: XGBClassifier, RANK: XGBRanker}.get(spec.task, XGBRegressor)
    elif algorithm == "random_forest":
        cls = RandomForestClassifier if spec.task == CLASSIFY else RandomForestRegressor
        bad = sorted(set(merged) - _accepted(cls))
    else:  # logistic_regression: a linear model (Ridge regression for the rank/regress tasks)
        cls = _linear_class(model, spec)
        bad = sorted(set(merged) - _accepted(cls))
    if bad:
        raise ConfigError(f"params: {bad[0]!r} is not a parameter of {algorithm} for {model}")
    try:
        estimator = cls(**merged)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"params: {error}") from None
    if algorithm == "xgboost":
        return estimator
    steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if algorithm == "logistic_regression":
        steps.append(("scale", StandardScaler()))
    return Pipeline([*steps, ("model", estimator)])


@dataclass
class FittedModel:
    """A fitted estimator with what is needed to apply it to new feature rows."""

    model: str
    algorithm: str
    params: dict[str, Any]
    estimator: Any
    feature_names: list[str]
    train_races: int = 0
    train_rows: int = 0
    train_end_date: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.model)

    def n_rounds(self) -> int | None:
        """Boosting rounds of an XGBoost model (None for other algorithms)."""
        if self.algorithm != "xgboost":
            return None
        return int(self.estimator.get_booster().num_boosted_rounds())


def _target(spec: ModelSpec, rows: pd.DataFrame) -> np.ndarray:
    if spec.task == CLASSIFY:
        return rows[spec.target].astype(int).to_numpy()
    if spec.task == RANK:
        return quali_order.relevance(rows[spec.target])
    return rows[spec.target].astype("float64").to_numpy()


def fit_model(
    model: str, algorithm: str, frame: pd.DataFrame, params: dict[str, Any] | None = None
) -> FittedModel:
    """Fit on the model's eligible rows of `frame` (feature rows sorted by date)."""
    spec = get_spec(model)
    rows = frame[spec.rows(frame)]
    if rows.empty:
        raise ConfigError(f"--seasons: no {model} training rows in the chosen seasons")
    features = list(spec.features)
    estimator = build_estimator(model, algorithm, params)
    X, y = rows[features], _target(spec, rows)
    if spec.task == RANK and algorithm == "xgboost":
        order = np.argsort(rows["raceId"].to_numpy(), kind="stable")  # XGBRanker wants qid non-decreasing
        estimator.fit(X.iloc[order], y[order], qid=rows["raceId"].to_numpy()[order])
    elif spec.task == RANK:
        estimator.fit(X, rows[spec.target].astype("float64").to_numpy())  # regress the position
    elif is_per_race_choice(estimator):  # the likelihood is per race: it needs each row's race
        estimator.fit(X, y, model__groups=rows["raceId"].to_numpy())
    else:
        estimator.fit(X, y)
    return FittedModel(
        model=model,
        algorithm=algorithm,
        params=resolve_params(model, algorithm, params),
        estimator=estimator,
        feature_names=features,
        train_races=int(rows["raceId"].nunique()),
        train_rows=len(rows),
        train_end_date=str(pd.Timestamp(rows["date"].max()).date()),
    )


def raw_scores(fitted: FittedModel, rows: pd.DataFrame, iteration_range: tuple[int, int] | None = None) -> np.ndarray:
    """Estimator output for `rows`: a win utility, a ranking score (higher = better) or a lap.

    race_winner's utility is the conditional logit's x·w, or log P(win) of an independent
    classifier; the model's postprocess turns either into a softmax over each race's field.
    """
    X = rows[fitted.feature_names]
    kwargs = {"iteration_range": iteration_range} if iteration_range and fitted.algorithm == "xgboost" else {}
    spec = fitted.spec
    if spec.task == CLASSIFY and is_per_race_choice(fitted.estimator):
        return np.asarray(fitted.estimator.decision_function(X))
    if spec.task == CLASSIFY:
        return utilities_from_probabilities(fitted.estimator.predict_proba(X, **kwargs)[:, 1])
    out = fitted.estimator.predict(X, **kwargs)
    if spec.task == RANK and fitted.algorithm != "xgboost":
        return -np.asarray(out)  # a smaller predicted position is a better rank
    return np.asarray(out)


def predict(
    fitted: FittedModel, frame: pd.DataFrame, iteration_range: tuple[int, int] | None = None
) -> pd.DataFrame:
    """The model's prediction columns for every row of `frame` (all drivers of each race)."""
    if frame.empty:
        return pd.DataFrame(index=frame.index, columns=["score"])
    return fitted.spec.postprocess(frame, raw_scores(fitted, frame, iteration_range))


def feature_importance(fitted: FittedModel) -> pd.Series:
    """Importance per feature (gain for XGBoost, impurity for forests, |coef| for linear models)."""
    est = fitted.estimator
    inner = est.named_steps["model"] if isinstance(est, Pipeline) else est
    if hasattr(inner, "feature_importances_"):
        values = np.asarray(inner.feature_importances_, dtype="float64")
    else:
        values = np.abs(np.ravel(inner.coef_)).astype("float64")
    return pd.Series(values, index=fitted.feature_names).sort_values(ascending=False)
