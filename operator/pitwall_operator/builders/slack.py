"""Slack payloads (TrainingAlerts' format): failure and performance regression."""

from __future__ import annotations

from typing import Any

MAX_TEXT = 3000  # Slack truncates attachment text around here


def _pretty(metric: str, value: Any) -> str:
    """Accuracy-like metrics as percentages (`:.2%`), others with 4 decimals."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if any(word in metric.lower() for word in ("accuracy", "precision", "recall", "ndcg", "auc", "f1")):
        return f"{value:.2%}"
    return f"{value:.4f}"


def failure_payload(job_id: str, error_type: str, message: str, run: str | None = None) -> dict[str, Any]:
    """`:x: Training job `<job>` failed` with the error text, job id and error type."""
    fields = [{"title": "Job ID", "value": job_id}, {"title": "Error Type", "value": error_type}]
    if run:
        fields.append({"title": "TrainingRun", "value": run})
    return {
        "text": f":x: Training job `{job_id}` failed",
        "attachments": [{"color": "danger", "text": message[:MAX_TEXT], "fields": fields}],
    }


def regression_payload(model: str, metric: str, previous: float, new: float, run: str | None = None) -> dict:
    """`:warning: Performance regression detected for `<model>`` with previous, new and delta."""
    label = "Accuracy" if "accuracy" in metric.lower() else metric
    delta = new - previous
    fields = [
        {"title": f"Previous {label}", "value": _pretty(metric, previous)},
        {"title": f"New {label}", "value": _pretty(metric, new)},
        {"title": "Delta", "value": _pretty(metric, delta)},
        {"title": "Metric", "value": metric},
    ]
    if run:
        fields.append({"title": "TrainingRun", "value": run})
    return {
        "text": f":warning: Performance regression detected for `{model}`",
        "attachments": [{"color": "warning", "fields": fields}],
    }


def succeeded_payload(job_id: str, model: str, version: str | None, metrics: dict[str, float], run: str | None = None) -> dict:
    """`:white_check_mark:` for runs that asked to hear about success (notifications.events)."""
    fields = [{"title": "Job ID", "value": job_id}, {"title": "Model Version", "value": str(version or "-")}]
    fields += [{"title": name, "value": _pretty(name, value)} for name, value in list(metrics.items())[:6]]
    if run:
        fields.append({"title": "TrainingRun", "value": run})
    return {"text": f":white_check_mark: Training job `{job_id}` for `{model}` succeeded",
            "attachments": [{"color": "good", "fields": fields}]}


def promoted_payload(model: str, alias: str, version: str | None, previous: str | None, reason: str) -> dict:
    """`:rocket:` when the alias moved to the new version."""
    fields = [{"title": "Alias", "value": alias}, {"title": "New Version", "value": str(version or "-")},
              {"title": "Previous Version", "value": str(previous or "-")}]
    return {"text": f":rocket: `{model}@{alias}` is now version {version}",
            "attachments": [{"color": "good", "text": reason[:MAX_TEXT], "fields": fields}]}


def success_payloads(namespace: str, name: str, status: dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, dict]]:
    """The opt-in alerts of a run that succeeded (notifications.events Succeeded / Promoted)."""
    model = str(spec.get("model", name))
    mlflow = status.get("mlflow") or {}
    out: list[tuple[str, dict]] = [("Succeeded", succeeded_payload(
        status.get("jobName") or name, model, mlflow.get("modelVersion"), status.get("metrics") or {},
        f"{namespace}/{name}"))]
    promotion = status.get("promotion") or {}
    if promotion.get("promoted"):
        out.append(("Promoted", promoted_payload(
            model, promotion.get("alias", "champion"), promotion.get("version") or mlflow.get("modelVersion"),
            promotion.get("previousVersion"), promotion.get("reason") or "")))
    return out


def regression_from_record(namespace: str, name: str, record: dict[str, Any], spec: dict[str, Any]) -> dict | None:
    """The regression alert from the trainer's record; None when the record has no numbers."""
    try:
        return regression_payload(str(spec.get("model", name)), str(record.get("metric", "metric")),
                                  float(record["previous"]), float(record["new"]), f"{namespace}/{name}")
    except (KeyError, TypeError, ValueError):
        return None
