"""Credentials in a tracking URI never reach status, conditions, Events, Slack or logs."""

from __future__ import annotations

import json

import pytest
from pitwall_api.redact import redact_text, redact_uri
from pitwall_operator.builders import status

SECRET_URI = "https://alice:s3cr3t@mlflow.example.com:5000/api?token=abc123&x=1"


@pytest.mark.parametrize(("uri", "shown"), [
    ("https://alice:s3cr3t@mlflow.example.com/", "https://***@mlflow.example.com/"),
    ("http://tok@mlflow:5000", "http://***@mlflow:5000"),
    ("https://mlflow/x?token=abc&experiment=7", "https://mlflow/x?token=***&experiment=7"),
    ("https://mlflow/x?X-Amz-Signature=ff&a=b", "https://mlflow/x?X-Amz-Signature=***&a=b"),
    ("postgresql://u:p@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ("http://mlflow.pitwall-system.svc:5000", "http://mlflow.pitwall-system.svc:5000"),
    ("sqlite:////home/u/.cache/mlflow.db", "sqlite:////home/u/.cache/mlflow.db"),
])
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_redact_text_finds_uris_inside_messages() -> None:
    text = f"RegistryError: MLflow tracking server at {SECRET_URI} is unreachable ('{SECRET_URI}')"
    shown = redact_text(text)
    assert "s3cr3t" not in shown and "alice" not in shown and "abc123" not in shown
    assert "mlflow.example.com:5000" in shown and shown.startswith("RegistryError: MLflow tracking server at https://***@")


def _failed_job() -> dict:
    return {"metadata": {"name": "r-train"}, "status": {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "x"}]}}


def _pod(result: dict) -> dict:
    return {"status": {"containerStatuses": [{"name": status.CONTAINER, "state": {"terminated": {
        "exitCode": 1, "reason": "Error", "message": json.dumps(result), "finishedAt": "2026-01-01T00:00:00Z"}}}]}}


def test_a_failure_quoting_the_uri_is_redacted_in_conditions_events_and_the_alert() -> None:
    pod = _pod({"error": {"type": "RegistryError", "message": f"MLflow tracking server at {SECRET_URI} is unreachable"}})
    current = {"state": "Running", "jobName": "r-train", "attempts": 1}
    outcome = status.observe(current, 1, _failed_job(), [pod], "2026-01-01T00:00:00Z")
    shown = [c["message"] for c in outcome.status["conditions"]] + [t.message for t in outcome.transitions]
    shown.append(outcome.failure["message"])  # what the Slack alert says
    assert any("mlflow.example.com" in text for text in shown)
    for text in shown:
        assert "s3cr3t" not in text and "abc123" not in text, text


def test_a_run_url_with_credentials_is_redacted_in_status() -> None:
    term = status.Termination(0, "Completed", "", {"ok": True, "exitCode": 0, "mlflow": {
        "modelVersion": "3", "runUrl": f"{SECRET_URI}#/experiments/1/runs/2", "modelUri": "models:/m/3"}})
    desired = {"state": "Running", "jobName": "r-train"}
    outcome = status.succeeded({}, desired, term, 1, "2026-01-01T00:00:00Z")
    assert "s3cr3t" not in str(outcome.status) and "abc123" not in str(outcome.status)
    assert outcome.status["mlflow"]["runUrl"].startswith("https://***@mlflow.example.com:5000/")


def test_the_trainer_reports_registry_errors_and_run_urls_without_credentials(monkeypatch) -> None:
    from pitwall_trainer import registry
    from pitwall_trainer.cli.run import failure_payload

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(registry.RegistryError) as caught, registry.mlflow_call(SECRET_URI, "log"):
        raise ValueError(f"boom from {SECRET_URI}")
    payload = failure_payload(caught.value, 1)
    assert "s3cr3t" not in str(payload) and "abc123" not in str(payload)
    assert "mlflow.example.com" in payload["error"]["message"]
    assert "s3cr3t" not in registry.tracking._run_url(SECRET_URI, "1", "2")
