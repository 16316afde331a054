"""Models: the estimator factory, fitting and predicting each model with each algorithm on real races."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    is_per_race_choice,
    predict,
    resolve_params,
)
from pitwall_trainer.models.race_winner import ConditionalLogit, normalise_per_race, softmax_per_race

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


def test_one_default_algorithm_everywhere():
    """The CLI's per-model default, the TrainingRun's default and the examples name one algorithm."""
    import yaml
    from pitwall_api.trainingrun import TrainingRunSpec

    defaults = {spec.default_algorithm for spec in MODELS.values()}
    assert defaults == {TrainingRunSpec.model_fields["algorithm"].default}
    examples = Path(__file__).resolve().parents[2] / "examples"
    named = {}
    for path in examples.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc or {}).get("spec") or {}
            spec = spec.get("template", {}).get("spec", spec) if "template" in spec else spec
            if "algorithm" in spec and "tuning" not in spec:  # a tuned example may show another search space
                named[path.name] = spec["algorithm"]
    assert named and set(named.values()) == defaults, named


def test_race_winner_default_is_the_conditional_logit():
    """Chosen on per-race backtests of 2019-2023 only (bench/race_winner_selection.md)."""
    estimator = build_estimator("race_winner", MODELS["race_winner"].default_algorithm)
    assert is_per_race_choice(estimator)
    assert resolve_params("race_winner", "logistic_regression", None)["C"] == 10.0
    assert "drv_points_gap_to_leader" in MODELS["race_winner"].features


def _synthetic_races(n_races: int, true_w: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Races of 20 cars whose winner is drawn from the softmax of x·true_w over the field."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_races * 20, len(true_w)))
    groups = np.repeat(np.arange(n_races), 20)
    y = np.zeros(len(X), dtype=int)
    for race in range(n_races):
        rows = np.flatnonzero(groups == race)
        u = X[rows] @ true_w
        p = np.exp(u - u.max()) / np.exp(u - u.max()).sum()
        y[rows[rng.choice(20, p=p)]] = 1
    return X, y, groups


def test_conditional_logit_recovers_the_utility_that_chose_the_winners():
    true_w = np.array([1.5, -1.0, 0.0])
    X, y, groups = _synthetic_races(600, true_w)
    shuffled = np.random.default_rng(1).permutation(len(X))  # fit must not rely on rows being grouped
    model = ConditionalLogit(C=1000.0).fit(X[shuffled], y[shuffled], groups=groups[shuffled])
    np.testing.assert_allclose(model.coef_[0], true_w, atol=0.25)


def test_conditional_logit_ignores_what_is_equal_across_the_field_and_races_without_a_winner():
    X, y, groups = _synthetic_races(200, np.array([1.0, -0.5]))
    base = ConditionalLogit().fit(X, y, groups=groups)
    constant = np.repeat(np.random.default_rng(2).normal(size=200), 20)[:, None]  # one value per race
    y_lost = y.copy()
    y_lost[groups == 0] = 0  # a race without a recorded winner
    widened = ConditionalLogit().fit(np.hstack([X, constant]), y_lost, groups=groups)
    without_race_0 = ConditionalLogit().fit(X[groups != 0], y[groups != 0], groups=groups[groups != 0])
    np.testing.assert_allclose(widened.coef_[0, :2], without_race_0.coef_[0], atol=1e-4)
    assert abs(widened.coef_[0, 2]) < 1e-6  # a per-race constant cancels in the softmax
    assert not np.allclose(base.coef_, without_race_0.coef_)  # race 0 did count when it had a winner
    race_ids = pd.Series(groups[:40])
    prob = softmax_per_race(race_ids, base.decision_function(X[:40]))
    assert pd.Series(prob).groupby(groups[:40]).sum().to_numpy() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        ConditionalLogit().fit(X, y, groups=groups[:-1])


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
        assert (pred["pred_lap"] == pred["pred_lap"].round()).all()  # a lap, not a fraction of one
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
