"""MLflow tracking, registry and promotion against a real local SQLite store (no mocks)."""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pitwall_trainer import registry
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.registry import RegistryError, RegistryUnavailable
from pitwall_trainer.result import RegistryRecord


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module: creating the schema costs seconds, models get unique names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    """A model name unique to the test, so tests sharing the store never see each other's alias."""
    return re.sub(r"\W", "_", request.node.name)[:60]


@pytest.fixture
def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def loader_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`models:/` URIs resolve through the global tracking URI: point it at the test store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _alias(client: MlflowClient, name: str, alias: str = "champion") -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


# ----------------------------------------------------------------------------- log and register


def test_xgboost_run_has_everything_and_versions_are_strings(
    make_result, uri, client, model, loader_uri, tmp_path
):
    """The run carries params, metrics, baselines, tags, features and card; versions are strings."""
    result = make_result("xgboost", model=model)
    (tmp_path / "backtest.csv").write_text("race,hit\n1,1\n")
    result.extra_artifacts = [tmp_path / "backtest.csv"]
    record = registry.log_and_register(result, tracking_uri=uri)

    assert record.model_version == "1" and isinstance(record.model_version, str)
    assert record.model_name == f"pitwall-{model}"
    assert record.model_uri == f"models:/pitwall-{model}/1"
    assert record.run_url is None  # not an http tracking URI
    run = client.get_run(record.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(record.experiment_id).name == f"pitwall-{model}"
    assert run.data.params["n_estimators"] == "8"
    assert run.data.params["seasons_list"] == "[2022, 2023]"
    assert run.data.params["data_hash"] == result.data_hash
    assert run.data.params["seasons"] == "2022,2023,2024"
    assert run.data.metrics["top1_accuracy"] == pytest.approx(0.55)
    assert run.data.metrics["baseline.pole_sitter.top1_accuracy"] == pytest.approx(0.5)
    assert run.data.tags["model"] == model
    assert run.data.tags["algorithm"] == "xgboost"
    assert run.data.tags["train_end_date"] == "2024-12-08"
    assert run.data.tags["pitwall.flavour"] == "xgboost"
    artifacts = {a.path for a in client.list_artifacts(record.run_id)}
    assert {"feature_names.json", "train_result.json", "model_card"} <= artifacts
    card = {a.path for a in client.list_artifacts(record.run_id, "model_card")}
    assert card == {"model_card/card.md", "model_card/calibration.png"}
    assert [a.path for a in client.list_artifacts(record.run_id, "extra")] == ["extra/backtest.csv"]

    loaded = mlflow.pyfunc.load_model(record.model_uri)
    assert "xgboost" in loaded.metadata.flavors
    assert loaded.metadata.get_input_schema().input_names() == result.feature_names
    np.testing.assert_allclose(
        loaded.predict(result.input_example), result.estimator.predict(result.input_example)
    )

    second = registry.log_and_register(make_result("xgboost", model=model), tracking_uri=uri)
    assert second.model_version == "2"


@pytest.mark.parametrize(
    ("kind", "flavour"),
    [
        ("sklearn", "sklearn/skops"),
        ("xgb_pipeline", "sklearn/cloudpickle"),
        ("wrapper", "sklearn/cloudpickle"),
    ],
)
def test_non_xgboost_estimators_are_stored_and_predict(
    make_result, uri, client, model, loader_uri, kind, flavour
):
    """sklearn goes through skops; a pipeline holding XGBoost or a wrapper through cloudpickle."""
    result = make_result(kind, model=model)
    record = registry.log_and_register(result, tracking_uri=uri)

    assert client.get_run(record.run_id).data.tags["pitwall.flavour"] == flavour
    loaded = mlflow.pyfunc.load_model(record.model_uri)
    np.testing.assert_allclose(
        loaded.predict(result.input_example), result.estimator.predict(result.input_example)
    )


def test_inside_an_active_run_the_training_run_is_its_child(make_result, uri, client, model, loader_uri):
    """A tuning study's parent run stays active and open; the training run nests under it."""
    with mlflow.start_run() as parent:
        record = registry.log_and_register(make_result("sklearn", model=model), tracking_uri=uri)
        assert mlflow.active_run().info.run_id == parent.info.run_id
    assert client.get_run(record.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert client.get_run(record.run_id).info.status == "FINISHED"


def test_requirements_pin_cpu_xgboost_not_the_gpu_wheel(make_result):
    """The logged environment must not pull the 470 MB NVIDIA-laden `xgboost` wheel."""
    kind, kwargs = registry.choose_flavour(make_result("xgb_pipeline").estimator)
    pins = registry.flavours._pip_requirements(make_result("xgb_pipeline").estimator, kwargs)
    assert any(p.startswith("xgboost-cpu==") for p in pins)
    assert "cloudpickle" in " ".join(pins)


def test_bad_input_example_writes_nothing(make_result, uri, client, model):
    """A model that cannot predict its own example is a config error raised before any run."""
    result = make_result("xgboost", model=model)
    result.input_example = result.input_example.drop(columns=["grid"])
    with pytest.raises(ConfigError, match="input example"):
        registry.log_and_register(result, tracking_uri=uri)
    assert client.get_experiment_by_name(f"pitwall-{model}") is None


def test_failed_registration_marks_run_failed(make_result, uri, client, model):
    """Registration refused after the run exists: the run ends FAILED, no version is left."""
    result = make_result("sklearn", model=model)
    with pytest.raises(RegistryError, match=re.escape(uri)):
        registry.log_and_register(result, tracking_uri=uri, registered_model_name="bad/name")
    runs = client.search_runs([client.get_experiment_by_name(f"pitwall-{model}").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert client.search_model_versions("name='bad/name'") == []


def test_tracking_uri_order(tmp_path, monkeypatch):
    """Argument, then $MLFLOW_TRACKING_URI, then SQLite under the cache root (never ./mlruns)."""
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert registry.resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert (tmp_path / "mlflow").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert registry.resolve_tracking_uri() == "http://example.invalid:5000"
    assert registry.resolve_tracking_uri("sqlite:////x/y.db") == "sqlite:////x/y.db"


def test_default_store_keeps_artifacts_beside_the_database(make_result, tmp_path, monkeypatch):
    """With no URI at all, runs and artifacts land under the cache root, and the env is restored."""
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    record = registry.log_and_register(make_result("sklearn", model="default_store"))
    assert record.model_version == "1"
    assert (tmp_path / "mlflow" / "mlflow.db").is_file()
    assert list((tmp_path / "mlflow" / "artifacts" / "pitwall-default_store").rglob("card.md"))
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    assert "MLFLOW_TRACKING_URI" not in os.environ


# ----------------------------------------------------------------------------- promotion


def _registered(make_result, uri, model, value, metric="top1_accuracy", mode="max"):
    result = make_result("sklearn", model=model, metrics={metric: value}, primary_metric=metric, mode=mode)
    return registry.log_and_register(result, tracking_uri=uri), result


def test_first_version_becomes_champion_and_tags_say_why(make_result, uri, client, model):
    """No champion yet: promote, and write the decision as version tags."""
    record, result = _registered(make_result, uri, model, 0.55)
    decision = registry.promote(record, result, tracking_uri=uri)

    assert decision.promoted and not decision.regression
    assert decision.previous_version is None and decision.new_version == "1"
    assert _alias(client, record.model_name) == "1"
    tags = client.get_model_version(record.model_name, "1").tags
    assert tags["pitwall.promotion.decision"] == "promoted"
    assert tags["pitwall.promotion.reason"] == "no version holds the alias yet"
    assert tags["pitwall.promotion.previous_version"] == "none"
    assert tags["pitwall.promotion.metric"] == "top1_accuracy"
    assert float(tags["pitwall.promotion.new_value"]) == pytest.approx(0.55)


def test_better_moves_alias_worse_does_not(make_result, uri, client, model):
    """IfBetter: a better version takes the alias; a worse one is a regression and leaves it."""
    first, first_result = _registered(make_result, uri, model, 0.50)
    registry.promote(first, first_result, tracking_uri=uri)
    better, better_result = _registered(make_result, uri, model, 0.60)
    up = registry.promote(better, better_result, tracking_uri=uri)
    assert up.promoted and not up.regression
    assert (up.previous_version, up.previous_value, up.new_value) == (
        "1",
        pytest.approx(0.5),
        pytest.approx(0.6),
    )
    assert _alias(client, first.model_name) == "2"
    assert client.get_model_version(first.model_name, "1").tags["pitwall.promotion.superseded_by"] == "2"
    assert (
        float(client.get_model_version(first.model_name, "2").tags["pitwall.promotion.previous_value"]) == 0.5
    )

    worse, worse_result = _registered(make_result, uri, model, 0.40)
    down = registry.promote(worse, worse_result, tracking_uri=uri)
    assert not down.promoted and down.regression
    assert "worse" in down.reason
    assert _alias(client, first.model_name) == "2"
    tags = client.get_model_version(first.model_name, "3").tags
    assert tags["pitwall.promotion.decision"] == "not_promoted"
    assert tags["pitwall.promotion.regression"] == "true"
    assert tags["pitwall.promotion.previous_version"] == "2"


def test_min_improvement_is_honoured(make_result, uri, client, model):
    """A gain below the minimum keeps the champion (not a regression); a big enough gain moves it."""
    first, first_result = _registered(make_result, uri, model, 0.20)
    registry.promote(first, first_result, tracking_uri=uri)
    small, small_result = _registered(make_result, uri, model, 0.25)
    kept = registry.promote(small, small_result, min_improvement=0.1, tracking_uri=uri)
    assert not kept.promoted and not kept.regression and "below the minimum" in kept.reason
    enough, enough_result = _registered(make_result, uri, model, 0.30)
    assert 0.30 - 0.20 < 0.1  # floats: the gain falls a hair short of the minimum it equals
    moved = registry.promote(enough, enough_result, min_improvement=0.1, tracking_uri=uri)
    assert moved.promoted
    assert _alias(client, first.model_name) == "3"


def test_never_and_always(make_result, uri, client, model):
    """Never keeps the alias even for a better model; Always moves it even for a worse one."""
    first, first_result = _registered(make_result, uri, model, 0.50)
    registry.promote(first, first_result, tracking_uri=uri)
    better, better_result = _registered(make_result, uri, model, 0.90)
    never = registry.promote(better, better_result, policy="Never", tracking_uri=uri)
    assert not never.promoted and not never.regression
    assert _alias(client, first.model_name) == "1"
    worse, worse_result = _registered(make_result, uri, model, 0.10)
    always = registry.promote(worse, worse_result, policy="Always", tracking_uri=uri)
    assert always.promoted and always.regression
    assert _alias(client, first.model_name) == "3"
    assert client.get_model_version(first.model_name, "3").tags["pitwall.promotion.policy"] == "Always"


def test_mode_min_and_explicit_metric_and_alias(make_result, uri, client, model):
    """With mode min a lower log loss wins; metric and alias can differ from the defaults."""
    first, first_result = _registered(make_result, uri, model, 0.40, metric="log_loss", mode="min")
    registry.promote(first, first_result, alias="staging", tracking_uri=uri)
    lower, lower_result = _registered(make_result, uri, model, 0.30, metric="log_loss", mode="min")
    decision = registry.promote(
        lower, lower_result, metric="log_loss", mode="min", alias="staging", tracking_uri=uri
    )
    assert decision.promoted and decision.metric == "log_loss" and decision.alias == "staging"
    higher, higher_result = _registered(make_result, uri, model, 0.35, metric="log_loss", mode="min")
    worse = registry.promote(higher, higher_result, alias="staging", tracking_uri=uri)
    assert not worse.promoted and worse.regression
    assert _alias(client, first.model_name, "staging") == "2"
    assert _alias(client, first.model_name) is None  # champion untouched


def test_bad_policy_mode_or_metric_is_a_config_error(make_result, uri, model):
    """Misconfigured promotion is exit code 2, before anything is written."""
    record, result = _registered(make_result, uri, model, 0.5)
    with pytest.raises(ConfigError, match="policy"):
        registry.promote(record, result, policy="Sometimes", tracking_uri=uri)
    with pytest.raises(ConfigError, match="mode"):
        registry.promote(record, result, mode="up", tracking_uri=uri)
    with pytest.raises(ConfigError, match="no_such_metric"):
        registry.promote(record, result, metric="no_such_metric", tracking_uri=uri)


@pytest.mark.parametrize(
    ("new", "old", "mode", "promoted", "regression"),
    [
        (0.5, 0.5, "max", False, False),  # equal is not better
        (math.nan, 0.5, "max", False, False),  # NaN never wins
        (0.5, math.nan, "max", True, False),  # an incomparable champion is replaced
        (0.2, 0.3, "min", True, False),
        (0.4, 0.3, "min", False, True),
    ],
)
def test_decision_edges(new, old, mode, promoted, regression):
    """Edge cases of the pure decision that are awkward to reach through a store."""
    decision = registry.promotion._decide("IfBetter", "2", "1", new, old, mode, 0.0)
    assert (decision.promoted, decision.regression) == (promoted, regression)


# ----------------------------------------------------------------------------- champion info


def test_champion_info(make_result, uri, model):
    """The monitor reads the champion by model kind or registered name; None when there is none."""
    assert registry.champion_info(model, tracking_uri=uri) is None
    record, result = _registered(make_result, uri, model, 0.61)
    assert registry.champion_info(model, tracking_uri=uri) is None  # registered, not promoted
    registry.promote(record, result, tracking_uri=uri)
    info = registry.champion_info(model, tracking_uri=uri)
    assert info is not None
    assert info["version"] == "1" and info["run_id"] == record.run_id
    assert info["metrics"]["top1_accuracy"] == pytest.approx(0.61)
    assert info["train_end_date"] == "2024-12-08"
    assert info["seasons"] == [2022, 2023, 2024] and info["tags"]["seasons"] == "2022,2023,2024"
    assert info["registered_model"] == f"pitwall-{model}"
    assert registry.champion_info(f"pitwall-{model}", tracking_uri=uri)["version"] == "1"


# ----------------------------------------------------------------------------- resilience


def test_unreachable_server_fails_fast_naming_the_uri(make_result, monkeypatch):
    """A closed port gives a clear error with the URI in seconds, for every entry point."""
    from tests.plugins.mlflow_server import free_port

    for name in registry.ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    result = make_result("sklearn")
    record = RegistryRecord("r", "0", "pitwall-race_winner", "1", "models:/pitwall-race_winner/1")
    for call in (
        lambda: registry.log_and_register(result, tracking_uri=uri),
        lambda: registry.promote(record, result, tracking_uri=uri),
        lambda: registry.champion_info("race_winner", tracking_uri=uri),
    ):
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match=re.escape(uri)):
            call()
        assert time.monotonic() - started < 20
    assert not any(name in os.environ for name in registry.ENV_DEFAULTS)  # retry settings restored


def test_file_card_dir_must_exist(make_result, uri, client, model):
    """A missing model card folder is a config error found before a run is created."""
    result = make_result("sklearn", model=model)
    result.card_dir = Path("/nonexistent/card")
    with pytest.raises(ConfigError, match="/nonexistent/card"):
        registry.log_and_register(result, tracking_uri=uri)
    assert client.get_experiment_by_name(f"pitwall-{model}") is None


# ----------------------------------------------------------------------------- what the registry serves


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each model trained by the trainer on 2024 with its default algorithm (quick: a 3-race holdout)."""
    from pitwall_trainer.features import load_feature_matrix
    from pitwall_trainer.training import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PITWALL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pitwall-cache"))
        frame = load_feature_matrix(data_dir, validate=False).frame
        results = {m: train(m, "logistic_regression", [2024], data_dir, walk_forward_folds=0, holdout_races=3,
                            validate=False, show_progress=False) for m in ("race_winner", "quali_order", "pit_window")}
    return {"frame": frame, "results": results}


def _two_races(frame, features: list[str]):
    races = frame[(frame["year"] == 2024) & frame["round"].isin([5, 6])]
    return races[["raceId", "driverId", "driverRef", *features]].sample(frac=1.0, random_state=3)


@pytest.mark.parametrize("kind", ["race_winner", "quali_order", "pit_window"])
def test_champion_served_by_pyfunc_answers_per_race(trained, kind, uri, client, loader_uri, request):
    """`mlflow.pyfunc.load_model("models:/<name>@champion").predict(entries)`: what a user needs."""
    from pitwall_trainer.monitoring.signals import load_champion

    result = trained["results"][kind]
    name = "served_" + re.sub(r"\W", "_", request.node.name)[:50]
    record = registry.log_and_register(result, tracking_uri=uri, registered_model_name=name)
    assert registry.promote(record, result, tracking_uri=uri).promoted
    assert client.get_run(record.run_id).data.tags["pitwall.flavour"] == "pyfunc"
    card = {Path(a.path).name for a in client.list_artifacts(record.run_id, "model_card")}
    assert {"card.md", "per_season.csv", "calibration.png"} <= card  # the card, in MLflow
    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    inputs = {c.name: c.required for c in served.metadata.signature.inputs.inputs}
    assert inputs["raceId"] is False and inputs["driverRef"] is False
    assert all(inputs[f] for f in result.feature_names)
    assert served.metadata.get_input_schema() is not None

    entries = _two_races(trained["frame"], result.feature_names)
    out = served.predict(entries)
    assert len(out) == len(entries)
    assert out["driverRef"].tolist() == entries["driverRef"].tolist()  # the input's order, ids echoed
    by_race = out.groupby("raceId")
    if kind == "race_winner":
        assert by_race["prob"].sum().to_numpy() == pytest.approx([1.0, 1.0])
        assert out["prob"].between(0, 1).all()
        one_race = entries[entries["raceId"] == entries["raceId"].iloc[0]]
        alone = served.predict(one_race.drop(columns=["raceId", "driverId", "driverRef"]))
        assert list(alone.columns) == ["prob"] and alone["prob"].sum() == pytest.approx(1.0)
        np.testing.assert_allclose(alone["prob"], out.loc[entries["raceId"].to_numpy() == one_race["raceId"].iloc[0],
                                                          "prob"])
    elif kind == "quali_order":
        for _, race in by_race:
            assert sorted(race["pred_rank"]) == list(range(1, len(race) + 1))
    else:
        assert out["pred_lap"].between(1, 80).all() and out["pred_lap"].nunique() > 1

    champion = load_champion(kind, registry.champion_info(name, tracking_uri=uri), tracking_uri=uri)
    assert champion.load_error is None and champion.fitted.feature_names == result.feature_names
