"""Each model trains, evaluates and is registered on a real MLflow server, as `pitwall-train train` does."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from pitwall_trainer.cli import main
from pitwall_trainer.features import load_feature_matrix

pytestmark = pytest.mark.integration


# A separate process loads the champion the way a serving process would: only MLflow's own API,
# and without the trainer installed (python -S: site-packages on the path, but not the editable
# install's .pth), so the trainer code must come from the model itself.
SERVE = """
import json, sys
import mlflow.pyfunc
import pandas as pd
entries = pd.read_pickle(sys.argv[2])  # feature columns are doubles, as the signature says
out = mlflow.pyfunc.load_model(sys.argv[1]).predict(entries)
print(json.dumps({"out": out.to_dict(orient="list"), "code": sys.modules["pitwall_trainer"].__file__}))
"""


@pytest.mark.parametrize(("model", "algorithm", "metric"), [
    ("race_winner", "logistic_regression", "top1_accuracy"),
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

    # the champion, loaded by MLflow alone in another process, answers for one race's entries
    features = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="feature_names.json", dst_path=str(tmp_path), tracking_uri=mlflow_server,
    )).read_text())
    frame = load_feature_matrix(data_dir, validate=False).frame
    race = frame[(frame["year"] == 2024) & (frame["round"] == 3)]
    entries = tmp_path / "entries.pkl"
    race[["driverRef", *features]].reset_index(drop=True).to_pickle(entries)
    served = subprocess.run(
        [sys.executable, "-S", "-c", SERVE, f"models:/{name}@champion", str(entries)], cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_DISABLE_TELEMETRY": "true",
             "PYTHONPATH": site.getsitepackages()[0]},
        capture_output=True, text=True, timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    answer = json.loads(served.stdout.strip().splitlines()[-1])
    out = answer["out"]
    assert "/code/pitwall_trainer/" in answer["code"]  # the model's bundled code, not the repo's
    assert out["driverRef"] == race["driverRef"].tolist()
    if model == "race_winner":
        assert sum(out["prob"]) == pytest.approx(1.0) and min(out["prob"]) >= 0
    elif model == "quali_order":
        assert sorted(out["pred_rank"]) == list(range(1, len(race) + 1))
    else:
        assert all(1 <= lap <= 80 for lap in out["pred_lap"])
