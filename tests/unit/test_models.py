"""Models: the estimator factory, fitting and predicting each model with each algorithm on real races."""

from __future__ import annotations

import pandas as pd
import pytest
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.evaluation.runner import fit_evaluate
from pitwall_trainer.evaluation.splits import race_calendar, temporal_holdout
from pitwall_trainer.features import FEATURES, HISTORY_FEATURES, load_feature_matrix
from pitwall_trainer.models.factory import (
    ALGORITHMS,
    MODELS,
    build_estimator,
    feature_importance,
    fit_model,
    predict,
    resolve_params,
)
from pitwall_trainer.models.race_winner import normalise_per_race

SMALL = {"xgboost": {"n_estimators": 20}, "random_forest": {"n_estimators": 20}, "logistic_regression": {}}


@pytest.fixture(scope="module")
def frame(data_dir, tmp_path_factory) -> pd.DataFrame:
    """2021-2024 feature rows (history computed from all data): small and quick to fit."""
    with pytest.MonkeyPatch.context() as patch:  # keep the user's cache untouched
        patch.setenv("PITWALL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pitwall-cache"))
        full = load_feature_matrix(data_dir, validate=False).frame
    return full[full["year"].between(2021, 2024)].reset_index(drop=True)


def test_unknown_model_algorithm_or_param_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="--model"):
        build_estimator("race_loser", "xgboost")
    with pytest.raises(ConfigError, match="--algorithm"):
        build_estimator("race_winner", "svm")
    with pytest.raises(ConfigError, match="max_dept"):
        build_estimator("race_winner", "xgboost", {"max_dept": 3})
    with pytest.raises(ConfigError, match="n_estimatorz"):
        build_estimator("pit_window", "random_forest", {"n_estimatorz": 3})


def test_params_overlay_defaults():
    merged = resolve_params("race_winner", "xgboost", {"max_depth": 5})
    assert merged["max_depth"] == 5 and merged["objective"] == "binary:logistic"
    assert build_estimator("quali_order", "xgboost").__class__.__name__ == "XGBRanker"
    assert build_estimator("pit_window", "logistic_regression").named_steps["model"].__class__.__name__ == "Ridge"


def test_every_model_feature_is_covered_by_the_leakage_test():
    """test_features.py checks every column of FEATURES for leakage: models may only use those."""
    for spec in MODELS.values():
        assert set(spec.features) <= set(FEATURES), spec.name


def test_race_winner_defaults_are_the_2019_2023_backtest_choice():
    """Chosen on per-race backtests of 2019-2023 only (bench/race_winner_selection.md)."""
    assert MODELS["race_winner"].default_algorithm == "logistic_regression"
    assert resolve_params("race_winner", "logistic_regression", None)["C"] == 0.05
    xgb = resolve_params("race_winner", "xgboost", None)
    assert (xgb["max_depth"], xgb["n_estimators"], xgb["learning_rate"], xgb["min_child_weight"]) == (2, 300, 0.02, 10.0)
    assert "drv_points_gap_to_leader" in MODELS["race_winner"].features


def test_normalise_per_race_sums_to_one():
    races = pd.Series([1, 1, 1, 2, 2])
    prob = normalise_per_race(races, [0.2, 0.2, 0.6, 0.0, 0.0])
    assert prob[:3].sum() == pytest.approx(1.0) and list(prob[3:]) == [0.5, 0.5]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_fits_and_predicts(frame, model, algorithm):
    calendar = race_calendar(frame)
    train = frame[frame["raceId"].isin(calendar["raceId"].iloc[:-5])]
    test = frame[frame["raceId"].isin(calendar["raceId"].iloc[-5:])]
    fitted = fit_model(model, algorithm, train.sample(frac=1.0, random_state=1), SMALL[algorithm])
    pred = predict(fitted, test)
    assert len(pred) == len(test) and pred["score"].notna().all()
    if model == "race_winner":
        assert pred.groupby(test["raceId"])["prob"].sum().to_numpy() == pytest.approx([1.0] * 5)
    if model == "quali_order":
        assert set(fitted.feature_names) == set(HISTORY_FEATURES)  # nothing from the weekend it predicts
        assert (pred.groupby(test["raceId"])["pred_rank"].min() == 1).all()
    if model == "pit_window":
        assert pred["pred_lap"].between(1, 80).all()
    importance = feature_importance(fitted)
    assert len(importance) == len(fitted.feature_names) and importance.iloc[0] > 0


def test_fit_evaluate_reports_every_requested_boosting_round(frame):
    fold = temporal_holdout(frame, race_calendar(frame).tail(4), 2021)
    outcome = fit_evaluate("race_winner", "xgboost", {"n_estimators": 30}, frame, fold, rounds=[10, 30])
    assert set(outcome.per_round) == {10, 30}
    assert outcome.per_round[30]["log_loss"] == pytest.approx(outcome.metrics["log_loss"])
    assert outcome.per_round[10]["log_loss"] != pytest.approx(outcome.metrics["log_loss"])
    assert outcome.metrics["n_races"] == 4
    assert set(outcome.baselines) == {"pole_sitter", "championship_leader", "grid_only"}
