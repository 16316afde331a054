"""Each model trains, evaluates and is registered on a real MLflow server, as `pitwall-train train` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pitwall_trainer.cli import main

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("model", "algorithm", "metric"), [
    ("race_winner", "xgboost", "top1_accuracy"),
    ("quali_order", "xgboost", "ndcg_at_10"),
    ("pit_window", "random_forest", "mae_laps"),
])
def test_model_trains_and_registers_on_a_real_server(
    model: str, algorithm: str, metric: str, mlflow_server: str, data_dir: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path / "cache"))
    name = f"it-{model}-{tmp_path.name}"[:60]
    code = main(["train", "--model", model, "--algorithm", algorithm, "--seasons", "2023,2024",
                 "--holdout-races", "4", "--folds", "0", "--data-dir", str(data_dir),
                 "--tracking-uri", mlflow_server, "--registered-model-name", name, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    version = summary["mlflow"]["model_version"]
    assert isinstance(version, str)
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.data.metrics[metric] == pytest.approx(summary["metrics"][metric])
    assert client.get_model_version_by_alias(name, "champion").version == version
