"""Search space, scheduler and tuning-block parsing; the tuner's folds (no engine runs here)."""

from __future__ import annotations

import json
import math

import optuna
import pandas as pd
import pytest
from pitwall_trainer.cli import main
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.models.factory import get_spec
from pitwall_trainer.tuning import space as sp
from pitwall_trainer.tuning.objective import (
    TuningData,
    final_params,
    pooled,
    resolve_metric,
    rungs,
    sized_scheduler,
    tuning_folds,
)


def test_default_xgboost_space_is_the_seeds():
    space = sp.parse_space(None, "race_winner", "xgboost")
    assert {n: p.as_spec() for n, p in space.items()} == {
        "n_estimators": {"type": "int", "low": 100, "high": 1000},
        "max_depth": {"type": "int", "low": 3, "high": 12},
        "learning_rate": {"type": "logfloat", "low": 0.001, "high": 0.3},
        "subsample": {"type": "float", "low": 0.5, "high": 1.0},
        "colsample_bytree": {"type": "float", "low": 0.5, "high": 1.0},
        "min_child_weight": {"type": "int", "low": 1, "high": 10},
        "reg_alpha": {"type": "logfloat", "low": 0.001, "high": 10.0},
        "reg_lambda": {"type": "logfloat", "low": 0.001, "high": 10.0},
    }


@pytest.mark.parametrize("model", ["race_winner", "quali_order", "pit_window"])
@pytest.mark.parametrize("algorithm", ["xgboost", "random_forest", "logistic_regression"])
def test_every_default_space_names_real_parameters(model, algorithm):
    space = sp.default_space(model, algorithm)
    sp.check_names(space, model, algorithm)  # raises on a name the estimator rejects
    assert space


def test_linear_default_depends_on_the_task():
    assert set(sp.default_space("race_winner", "logistic_regression")) == {"C"}
    assert set(sp.default_space("pit_window", "logistic_regression")) == {"alpha"}


def test_parses_the_crd_shape_and_samples_inside_it():
    spec = {
        "max_depth": {"type": "int", "low": 3, "high": 5},
        "learning_rate": {"type": "logfloat", "low": 0.01, "high": 0.2},
        "subsample": {"type": "float", "low": 0.5, "high": 0.9},
        "tree_method": {"type": "categorical", "values": ["hist", "approx"]},
    }
    space = sp.parse_space(spec, "race_winner", "xgboost")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_depths = set()
    for _ in range(40):
        trial = study.ask()
        params = sp.suggest(trial, space)
        assert sp.contains(space, params), params
        seen_depths.add(params["max_depth"])
        study.tell(trial, 0.0)
    assert seen_depths == {3, 4, 5}  # int bounds are inclusive (unlike Ray's randint)
    dist = sp.distributions(space)
    assert dist["learning_rate"].log and not dist["subsample"].log


def test_the_api_models_dump_parses_unchanged():
    """A TrainingRun's `tuning` block, as the operator's pydantic model dumps it, is accepted as is."""
    from pitwall_api.trainingrun import Tuning

    tuning = Tuning.model_validate({
        "engine": "ray", "numSamples": 30, "maxConcurrentTrials": 4, "metric": "log_loss",
        "searchSpace": {"max_depth": {"type": "int", "low": 3, "high": 12},
                        "learning_rate": {"type": "logfloat", "low": 0.001, "high": 0.3}},
        "scheduler": {"maxT": 300, "gracePeriod": 20, "reductionFactor": 2},
        "rayCluster": {"workers": 2},
    })
    block = tuning.model_dump(by_alias=True, exclude_none=True)
    parsed = sp.parse_tuning(block, "race_winner", "xgboost")
    assert (parsed.engine, parsed.num_samples, parsed.max_concurrent, parsed.metric) == ("ray", 30, 4, "log_loss")
    assert parsed.scheduler == sp.Scheduler("ASHA", 300, 20, 2)
    assert parsed.space["max_depth"] == sp.Param("max_depth", "int", 3, 12)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"max_dept": {"type": "int", "low": 3, "high": 5}}, "searchSpace.max_dept"),
        ({"max_depth": {"type": "int", "low": 5, "high": 3}}, "searchSpace.max_depth"),
        ({"max_depth": {"type": "int", "low": 4, "high": 4}}, "searchSpace.max_depth"),
        ({"learning_rate": {"type": "logfloat", "low": 0, "high": 1}}, "searchSpace.learning_rate"),
        ({"max_depth": {"type": "int", "low": 3.5, "high": 5}}, "searchSpace.max_depth"),
        ({"max_depth": {"type": "integer", "low": 3, "high": 5}}, "searchSpace.max_depth.type"),
        ({"max_depth": {"type": "int", "low": 3}}, "searchSpace.max_depth"),
        ({"max_depth": {"type": "int", "low": 3, "high": 5, "step": 1}}, "searchSpace.max_depth.step"),
        ({"max_depth": {"type": "int", "low": "3", "high": 5}}, "searchSpace.max_depth.low"),
        ({"tree_method": {"type": "categorical", "values": []}}, "searchSpace.tree_method.values"),
        ({"tree_method": {"type": "categorical", "values": ["hist"], "low": 1}}, "searchSpace.tree_method"),
        ({"subsample": {"type": "float", "low": 0.5, "high": 1, "values": [1]}}, "searchSpace.subsample"),
        ({"max-depth": {"type": "int", "low": 3, "high": 5}}, "searchSpace"),
    ],
)
def test_bad_spaces_name_the_field(spec, field):
    with pytest.raises(ConfigError) as caught:
        sp.parse_space(spec, "race_winner", "xgboost")
    assert str(caught.value).startswith(field + ":"), str(caught.value)


def test_forest_parameter_is_not_an_xgboost_parameter():
    with pytest.raises(ConfigError, match=r"^searchSpace\.min_samples_leaf: not accepted by xgboost"):
        sp.parse_space({"min_samples_leaf": {"type": "int", "low": 1, "high": 5}}, "race_winner", "xgboost")
    sp.parse_space({"min_samples_leaf": {"type": "int", "low": 1, "high": 5}}, "race_winner", "random_forest")


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"engine": "katib"}, "tuning.engine"),
        ({"numSamples": 0}, "tuning.numSamples"),
        ({"maxConcurrentTrials": -1}, "tuning.maxConcurrentTrials"),
        ({"mode": "best"}, "tuning.mode"),
        ({"scheduler": {"type": "PBT"}}, "tuning.scheduler.type"),
        ({"scheduler": {"maxT": 5, "gracePeriod": 10}}, "tuning.scheduler"),
        ({"scheduler": {"reductionFactor": 1}}, "tuning.scheduler.reductionFactor"),
        ({"scheduler": {"max_steps": 3}}, "tuning.scheduler.max_steps"),
        ({"samples": 3}, "tuning.samples"),
    ],
)
def test_bad_tuning_blocks_name_the_field(block, field):
    """The operator's messages: the same models validate a TrainingRun and a --search-space file."""
    with pytest.raises(ConfigError) as caught:
        sp.parse_tuning({"searchSpace": {"max_depth": {"type": "int", "low": 3, "high": 5}}, **block},
                        "race_winner", "xgboost")
    assert str(caught.value).startswith(field + ":"), str(caught.value)


def test_search_space_file_forms(tmp_path):
    bare = tmp_path / "space.yaml"
    bare.write_text("max_depth: {type: int, low: 3, high: 6}\n")
    space, extra = sp.load_space_file(bare, "race_winner", "xgboost")
    assert set(space) == {"max_depth"} and extra == {}
    manifest = tmp_path / "run.json"
    manifest.write_text(json.dumps({"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun", "spec": {
        "model": "race_winner", "tuning": {"engine": "optuna", "scheduler": {"gracePeriod": 5},
                                           "searchSpace": {"C": {"type": "logfloat", "low": 0.01, "high": 10}}}}}))
    space, extra = sp.load_space_file(manifest, "race_winner", "logistic_regression")
    assert set(space) == {"C"} and extra["scheduler"] == {"gracePeriod": 5}
    broken = tmp_path / "broken.yaml"
    broken.write_text("max_depth: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^--search-space: .*broken.yaml is not valid"):
        sp.load_space_file(broken, "race_winner", "xgboost")
    with pytest.raises(ConfigError, match=r"^--search-space: cannot read"):
        sp.load_space_file(tmp_path / "missing.yaml", "race_winner", "xgboost")
    bad = tmp_path / "bad.yaml"
    bad.write_text("searchSpace:\n  max_depth: {type: int, low: 9, high: 3}\n")
    with pytest.raises(ConfigError, match=r"searchSpace\.max_depth: low \(9\) must be below high \(3\)"):
        sp.load_space_file(bad, "race_winner", "xgboost")


def test_rungs_follow_the_scheduler():
    asha = sp.Scheduler("ASHA", None, 10, 3)
    assert rungs(300, asha) == [10, 30, 90, 270, 300]
    assert rungs(90, asha) == [10, 30, 90]
    assert rungs(5, asha) == [5]
    assert rungs(40, sp.Scheduler("ASHA", None, 5, 2)) == [5, 10, 20, 40]


def _data(algorithm: str = "xgboost", n_folds: int = 3) -> TuningData:
    from pitwall_trainer.evaluation.splits import Fold

    folds = [Fold(f"fold {i}", (1,), (2,)) for i in range(n_folds)]
    return TuningData(get_spec("race_winner"), algorithm, pd.DataFrame(), folds, "log_loss", "min", [2022, 2023], 2023)


def test_scheduler_is_sized_to_the_space():
    space = sp.default_space("race_winner", "xgboost")
    assert sized_scheduler(sp.Scheduler(), _data(), space).max_t == 1000  # the largest n_estimators
    assert sized_scheduler(sp.Scheduler("ASHA", 300, 10, 3), _data(), space).max_t == 300
    no_rounds = {"max_depth": space["max_depth"]}
    assert sized_scheduler(sp.Scheduler(), _data(), no_rounds).max_t == 300  # the default n_estimators
    forest = sized_scheduler(sp.Scheduler(), _data("random_forest", 4), sp.default_space("race_winner", "random_forest"))
    assert (forest.max_t, forest.grace_period) == (4, 1)  # a step is a fold
    with pytest.raises(ConfigError, match="gracePeriod"):
        sized_scheduler(sp.Scheduler("ASHA", None, 50, 3), _data(), {"n_estimators": sp.Param("n_estimators", "int", 10, 40)})


def test_asha_max_t_caps_the_reported_rounds():
    """maxT is the longest a trial may run: the best parameters say how many rounds were scored."""
    capped = final_params(_data(), {"n_estimators": 800, "max_depth": 4}, sp.Scheduler("ASHA", 300, 10, 3))
    assert capped == {"n_estimators": 300, "max_depth": 4}
    assert final_params(_data(), {"n_estimators": 800}, sp.Scheduler("FIFO", None, 10, 3)) == {"n_estimators": 800}


def test_metric_resolution():
    assert resolve_metric(get_spec("race_winner"), None, None) == ("top1_accuracy", "max")
    assert resolve_metric(get_spec("race_winner"), "log_loss", None) == ("log_loss", "min")
    assert resolve_metric(get_spec("pit_window"), None, None) == ("mae_laps", "min")
    with pytest.raises(ConfigError, match=r"^metric: 'ndcg_at_10' is not a metric of race_winner"):
        resolve_metric(get_spec("race_winner"), "ndcg_at_10", None)


def test_pooling_weights_races():
    folds = [{"top1_accuracy": 1.0, "n_races": 1.0}, {"top1_accuracy": 0.0, "n_races": 3.0}]
    assert pooled(folds, "top1_accuracy") == pytest.approx(0.25)
    assert math.isnan(pooled([{"n_races": 2.0}], "top1_accuracy"))


def _calendar(years: dict[int, int]) -> pd.DataFrame:
    rows, race_id = [], 0
    for year, n in years.items():
        for rnd in range(1, n + 1):
            race_id += 1
            date = pd.Timestamp(year=year, month=3, day=1) + pd.Timedelta(days=7 * rnd)
            rows += [{"raceId": race_id, "date": date, "year": year, "round": rnd, "driverId": d} for d in (1, 2)]
    return pd.DataFrame(rows)


def test_tuning_folds_hold_out_the_last_season_and_walk_forward():
    frame = _calendar({2019: 6, 2020: 6, 2021: 6, 2022: 6, 2023: 6})
    window, folds = tuning_folds(frame, get_spec("race_winner"), [2021, 2022, 2023], n_folds=3)
    assert set(window["year"]) == {2019, 2020, 2021, 2022}  # the trainer's history; 2023 never seen
    dates = frame.drop_duplicates("raceId").set_index("raceId")["date"]
    tested = [r for f in folds for r in f.test_races]
    assert sorted(tested) == sorted(frame.loc[frame["year"] == 2022, "raceId"].unique())
    for fold in folds:
        assert max(dates[list(fold.train_races)]) < min(dates[list(fold.test_races)])  # never shuffled
    assert len(folds[1].train_races) > len(folds[0].train_races) == 18  # expanding window
    window, _ = tuning_folds(frame, get_spec("race_winner"), [2021, 2022, 2023], n_folds=2, holdout_season=2021)
    assert set(window["year"]) == {2019, 2020}  # an earlier holdout: nothing from it on
    window, _ = tuning_folds(frame, get_spec("race_winner"), [2021, 2022, 2023], n_folds=2, holdout_races=8)
    assert window["date"].max() < frame.loc[frame["year"] == 2022, "date"].iloc[-4]  # the last 8 races held out
    assert window["raceId"].nunique() == 22
    with pytest.raises(ConfigError, match=r"^--holdout-races: 99 is not between 1 and 29"):
        tuning_folds(frame, get_spec("race_winner"), [2021, 2022, 2023], holdout_races=99)
    _, (first, *_) = tuning_folds(_calendar({2022: 6, 2023: 6}), get_spec("race_winner"), [2023], n_folds=2)
    assert len(first.train_races) == 3  # one season of history: its first half trains the first fold
    with pytest.raises(ConfigError, match=r"^--seasons: no race_winner races to tune on before the holdout season 2023"):
        tuning_folds(_calendar({2023: 5}), get_spec("race_winner"), [2023])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "katib"], "error: --engine: unknown engine 'katib'"),
        (["--num-samples", "0"], "error: --num-samples: must be a whole number >= 1"),
        (["--algorithm", "svm"], "error: --algorithm: unknown algorithm 'svm'"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_option(argv, message, capsys):
    assert main(["tune", "--model", "race_winner", "--no-tune-tracking", *argv]) == 2
    assert message in capsys.readouterr().err


def _example_spec(**tuning_changes):
    import yaml
    from pitwall_api import parse_training_run_spec

    from tests.conftest import REPO_ROOT

    document = yaml.safe_load((REPO_ROOT / "examples" / "trainingrun-tuned.yaml").read_text())
    document["spec"]["tuning"].update(tuning_changes)
    return parse_training_run_spec(document["spec"])


def test_the_tuned_example_parses_as_the_trainer_runs_it():
    spec = _example_spec()
    parsed = sp.parse_tuning(spec.tuning.model_dump(by_alias=True, exclude_none=True), "race_winner", "xgboost")
    assert parsed.space == sp.XGBOOST_SPACE
    assert parsed.scheduler == sp.Scheduler("ASHA", 100, 10, 3)
    assert (parsed.engine, parsed.num_samples, parsed.max_concurrent) == ("ray", 100, 4)


def test_a_spec_with_a_misspelt_parameter_fails_before_any_data_is_read(monkeypatch):
    from pitwall_trainer.tuning import tune_from_spec

    monkeypatch.setenv("PITWALL_DATA_DIR", "/nonexistent")  # reading data would fail differently
    spec = _example_spec(searchSpace={"max_dept": {"type": "int", "low": 3, "high": 12}})
    with pytest.raises(ConfigError, match=r"^tuning\.searchSpace\.max_dept: not accepted by xgboost"):
        tune_from_spec(spec, data_dir="/nonexistent")


@pytest.mark.parametrize("param", [
    {"type": "int", "low": 9, "high": 3},
    {"type": "categorical", "values": ["hist", "hist"]},
    {"type": "logfloat", "low": 0, "high": 1},
])
def test_a_space_file_fails_with_the_operators_words(param):
    """Validated once: `--search-space` and a TrainingRun's tuning give the same message for the same field."""
    from pitwall_api import SpecError, parse_training_run_spec

    with pytest.raises(SpecError) as operator:
        parse_training_run_spec({"model": "race_winner", "algorithm": "xgboost", "data": {"seasons": [2024]},
                                 "tuning": {"searchSpace": {"max_depth": param}}})
    with pytest.raises(ConfigError) as trainer:
        sp.parse_space({"max_depth": param}, "race_winner", "xgboost", where="spec.tuning.searchSpace")
    assert str(trainer.value) == operator.value.message
