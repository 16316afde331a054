"""`pitwall-train run`: what the training pod runs, on real data and a local MLflow store."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from pitwall_trainer.cli import main
from pitwall_trainer.progress import ProgressUpdate
from pitwall_trainer.reporting import TERMINATION_LIMIT, StatusReporter, progress_status, termination_message

SMALL_SPEC = {
    "model": "race_winner",
    "algorithm": "logistic_regression",
    "data": {"seasons": [2023, 2024]},
    "evaluation": {"holdoutRaces": 4, "walkForwardFolds": 0},
}


def _write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def local_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PITWALL_TRAININGRUN_NAME", raising=False)
    return uri


def test_bad_spec_exits_2_and_names_the_field_in_the_termination_message(tmp_path: Path) -> None:
    spec = _write(tmp_path / "spec.yaml", {**SMALL_SPEC, "model": "race_winnr"})
    log = tmp_path / "termination-log"
    assert main(["run", "--spec", str(spec), "--termination-log", str(log)]) == 2
    message = json.loads(log.read_text())
    assert message["ok"] is False and message["exitCode"] == 2
    assert "spec.model" in message["error"]["message"]


def test_unreadable_spec_is_a_config_error(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    assert main(["run", "--spec", str(tmp_path / "missing.yaml"), "--termination-log", str(log)]) == 2
    assert "cannot read" in json.loads(log.read_text())["error"]["message"]


def test_down_mlflow_fails_fast_as_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    spec = _write(tmp_path / "spec.yaml", SMALL_SPEC)
    log = tmp_path / "termination-log"
    assert main(["run", "--spec", str(spec), "--data-dir", str(data_dir), "--termination-log", str(log)]) == 1
    message = json.loads(log.read_text())
    assert message["error"]["type"] == "RegistryUnavailable"
    assert "http://127.0.0.1:9" in message["error"]["message"]


def test_run_trains_registers_promotes_then_a_never_run_is_not_promoted(
    tmp_path: Path, local_mlflow: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path / "spec.yaml", SMALL_SPEC)
    log = tmp_path / "termination-log"
    assert main(["run", "--spec", str(spec), "--data-dir", str(data_dir), "--termination-log", str(log), "--json"]) == 0
    first = json.loads(log.read_text())
    assert first["ok"] is True
    assert first["mlflow"]["modelVersion"] == "1"
    assert first["promotion"] == {**first["promotion"], "promoted": True, "version": "1", "alias": "champion"}
    assert 0.0 <= first["metrics"]["top1_accuracy"] <= 1.0
    assert "pole_sitter.top1_accuracy" in first["baselines"]
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["mlflow"]["runId"] == first["mlflow"]["runId"]

    manifest = {"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "x"},
                "spec": {**SMALL_SPEC, "promotion": {"policy": "Never"}}}
    spec2 = _write(tmp_path / "manifest.yaml", manifest)
    assert main(["run", "--spec", str(spec2), "--data-dir", str(data_dir), "--termination-log", str(log)]) == 0
    second = json.loads(log.read_text())
    assert second["mlflow"]["modelVersion"] == "2"
    assert second["promotion"]["promoted"] is False and "version" not in second["promotion"]
    assert second["promotion"]["previousVersion"] == "1"


def test_termination_message_stays_within_the_kubelet_limit() -> None:
    payload = {
        "ok": False,
        "exitCode": 1,
        "metrics": {f"metric_{i}": 0.123456789 for i in range(200)},
        "baselines": {f"baseline_{i}": 0.5 for i in range(200)},
        "error": {"type": "RuntimeError", "message": "x" * 10_000},
    }
    text = termination_message(payload)
    assert len(text.encode()) <= TERMINATION_LIMIT
    decoded = json.loads(text)
    assert decoded["ok"] is False and decoded["error"]["type"] == "RuntimeError"


def test_a_long_result_keeps_the_model_version_and_the_first_metrics() -> None:
    payload = {"ok": True, "exitCode": 0, "mlflow": {"modelVersion": "7", "runId": "r" * 32},
               "promotion": {"promoted": True, "reason": "y" * 3000},
               "metrics": {"top1_accuracy": 0.6, "log_loss": 1.2, **{f"m_{i}": 0.1 for i in range(150)}},
               "baselines": {f"b_{i}": 0.5 for i in range(200)}, "bestParams": {f"p{i}": i for i in range(100)}}
    decoded = json.loads(termination_message(payload))
    assert decoded["mlflow"]["modelVersion"] == "7" and decoded["promotion"]["promoted"] is True
    assert decoded["metrics"]["top1_accuracy"] == 0.6 and decoded["metrics"]["log_loss"] == 1.2
    assert "baselines" not in decoded and "bestParams" not in decoded


def test_non_finite_figures_are_named_never_sent() -> None:
    """A real API server refuses a whole status patch holding one NaN; the other figures must land."""
    sent: list[dict] = []

    class Api:
        def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body):
            json.dumps(body, allow_nan=False)  # what a real server accepts
            sent.append(body["status"])

    reporter = StatusReporter("rw", "f1", api=Api())
    assert reporter.patch({"metrics": {"top1_accuracy": 0.5, "log_loss": float("nan")},
                           "baselines": {"grid_only.log_loss": float("inf")}, "mlflow": {"modelVersion": "3"}})
    assert sent[0]["metrics"] == {"top1_accuracy": 0.5} and sent[0]["mlflow"] == {"modelVersion": "3"}
    assert sent[0]["nonFiniteMetrics"] == ["baselines.grid_only.log_loss", "metrics.log_loss"]
    text = termination_message({"ok": True, "metrics": {"log_loss": float("-inf"), "top1_accuracy": 0.5}})
    assert json.loads(text)["metrics"] == {"top1_accuracy": 0.5} and "NaN" not in text and "Infinity" not in text


def test_progress_status_is_the_crd_shape() -> None:
    block = progress_status(ProgressUpdate(3, 4, "fold 3/4", 0.5, 0.55, 12.7))
    assert block["percent"] == 75 and block["message"] == "fold 3/4"
    assert block["currentMetric"] == 0.5 and block["bestMetric"] == 0.55 and block["etaSeconds"] == 12
    assert block["updatedAt"].endswith("Z")


class _HalfMlflow(BaseHTTPRequestHandler):
    """Answers the reachability probe, then fails everything else: MLflow going down mid-run."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        ok = "experiments/search" in self.path
        body = json.dumps({"experiments": []} if ok else {"error_code": "TEMPORARILY_UNAVAILABLE"}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_mlflow_failing_after_training_keeps_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HalfMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path / "cache"))
        spec = _write(tmp_path / "spec.yaml", SMALL_SPEC)
        log = tmp_path / "termination-log"
        assert main(["run", "--spec", str(spec), "--data-dir", str(data_dir), "--termination-log", str(log)]) == 1
    finally:
        server.shutdown()
    message = json.loads(log.read_text())
    assert message["ok"] is False and message["exitCode"] == 1
    assert 0.0 <= message["metrics"]["top1_accuracy"] <= 1.0  # the training's figures are not lost
    assert "pole_sitter.top1_accuracy" in message["baselines"]
