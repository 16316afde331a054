"""The registry against a real `mlflow server` on loopback, artifacts proxied over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pitwall_trainer import registry

pytestmark = pytest.mark.integration


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    """A model name unique to the test: the server lives for the whole session."""
    return "srv_" + re.sub(r"\W", "_", request.node.name)[:60]


def test_log_register_promote_and_load_over_http(make_result, mlflow_server, model, monkeypatch, tmp_path):
    """The full trainer flow on a server: REST versions are strings, artifacts go through the proxy."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # for loading models:/ URIs
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    first = make_result("xgboost", model=model, metrics={"top1_accuracy": 0.52})
    record = registry.log_and_register(first, tracking_uri=mlflow_server)

    assert record.model_version == "1" and isinstance(record.model_version, str)
    assert record.run_url == f"{mlflow_server}/#/experiments/{record.experiment_id}/runs/{record.run_id}"
    assert client.get_run(record.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    card = mlflow.artifacts.download_artifacts(
        run_id=record.run_id,
        artifact_path="model_card/card.md",
        dst_path=str(tmp_path),
        tracking_uri=mlflow_server,
    )
    assert Path(card).read_text().startswith(f"# {model} model card")
    loaded = mlflow.pyfunc.load_model(record.model_uri)
    np.testing.assert_allclose(
        loaded.predict(first.input_example), first.estimator.predict(first.input_example)
    )

    assert registry.promote(record, first, tracking_uri=mlflow_server).promoted
    better = make_result("sklearn", model=model, metrics={"top1_accuracy": 0.58})
    better_record = registry.log_and_register(better, tracking_uri=mlflow_server)
    decision = registry.promote(better_record, better, min_improvement=0.05, tracking_uri=mlflow_server)
    assert decision.promoted and decision.previous_version == "1" and decision.new_version == "2"
    worse = make_result("sklearn", model=model, metrics={"top1_accuracy": 0.40})
    worse_record = registry.log_and_register(worse, tracking_uri=mlflow_server)
    kept = registry.promote(worse_record, worse, tracking_uri=mlflow_server)
    assert not kept.promoted and kept.regression

    info = registry.champion_info(model, tracking_uri=mlflow_server)
    assert info["version"] == "2" and info["metrics"]["top1_accuracy"] == pytest.approx(0.58)
    assert info["train_end_date"] == "2024-12-08"
    champion = mlflow.pyfunc.load_model(f"models:/{record.model_name}@champion")
    np.testing.assert_allclose(
        champion.predict(better.input_example), better.estimator.predict(better.input_example)
    )
    tags = client.get_model_version(record.model_name, "3").tags
    assert tags["pitwall.promotion.decision"] == "not_promoted"
    assert tags["pitwall.promotion.regression"] == "true"


def test_wrapper_model_round_trips_through_the_server(make_result, mlflow_server, model, monkeypatch, capsys):
    """A project-style wrapper (cloudpickle) uploads and loads back; stdout stays the CLI's."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = make_result("wrapper", model=model)
    record = registry.log_and_register(result, tracking_uri=mlflow_server)
    assert "View run" not in capsys.readouterr().out  # --json wants the last stdout line
    loaded = mlflow.pyfunc.load_model(record.model_uri)
    np.testing.assert_allclose(
        loaded.predict(result.input_example), result.estimator.predict(result.input_example)
    )


def test_failed_registration_on_server_marks_run_failed(make_result, mlflow_server, model):
    """Over REST too, a refused registration leaves a FAILED run and no version."""
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    with pytest.raises(registry.RegistryError, match=re.escape(mlflow_server)):
        registry.log_and_register(
            make_result("sklearn", model=model), tracking_uri=mlflow_server, registered_model_name="bad:name"
        )
    experiment = client.get_experiment_by_name(f"pitwall-{model}")
    assert [r.info.status for r in client.search_runs([experiment.experiment_id])] == ["FAILED"]
