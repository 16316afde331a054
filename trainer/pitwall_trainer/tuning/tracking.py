"""MLflow for tuning: one parent run per tuning process, one nested run per trial.

A small logger of our own (Optuna's MLflowCallback is deprecated and lives in another package;
Ray's MLflow callback logs each trial as a top-level run). It uses the client API with explicit
run ids, so trials finishing on worker threads never race over MLflow's global "active run".
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class MlflowSettings:
    """Where tuning runs go; `enabled=False` turns tracking off (e.g. a quick local search)."""

    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, then the local SQLite store
    experiment: str | None = None  # None: pitwall-<model>, beside the training runs
    enabled: bool = True


def _param(value: Any) -> str:
    return str(value)[:6000]


class TrialLogger:
    """Parent run for the search; `log_trial` adds a nested run with params, steps and outcome."""

    def __init__(self, settings: MlflowSettings, model: str, run_name: str, tags: dict[str, str]):
        from pitwall_trainer import registry

        self.uri = registry.resolve_tracking_uri(settings.tracking_uri)
        self.client = registry.mlflow_client(self.uri)
        with registry.mlflow_call(self.uri, "reach the tracking server"):
            registry.check_reachable(self.client, self.uri)
        experiment = settings.experiment or f"{registry.NAME_PREFIX}{model}"
        with registry.mlflow_call(self.uri, f"create the experiment {experiment!r}"):
            self.experiment_id = registry.get_experiment_id(self.client, self.uri, experiment)
            run = self.client.create_run(self.experiment_id, run_name=run_name,
                                         tags={**tags, "pitwall.kind": "tuning"})
        self.parent_id = run.info.run_id
        self.tags = tags
        self._lock = threading.Lock()

    def log_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            self.client.log_param(self.parent_id, key, _param(value))

    def log_trial(
        self,
        number: int,
        params: dict[str, Any],
        value: float | None,
        state: str,
        history: list[tuple[int, float]],
        metric: str,
    ) -> str | None:
        """One nested run per trial; failures are logged, never fatal (tracking must not stop a search)."""
        try:
            with self._lock:
                run = self.client.create_run(
                    self.experiment_id,
                    run_name=f"trial-{number}",
                    tags={**self.tags, "mlflow.parentRunId": self.parent_id, "pitwall.kind": "tuning-trial",
                          "pitwall.trial": str(number), "pitwall.trial_state": state},
                )
                run_id = run.info.run_id
                for key, val in params.items():
                    self.client.log_param(run_id, key, _param(val))
                for step, val in history:
                    if val is not None and math.isfinite(val):
                        self.client.log_metric(run_id, metric, float(val), step=int(step))
                if value is not None and math.isfinite(value):
                    self.client.log_metric(run_id, f"final.{metric}", float(value))
                self.client.set_terminated(run_id, "FAILED" if state == "FAILED" else "FINISHED")
            return run_id
        except Exception as error:  # noqa: BLE001
            log.warning("could not log trial %s to MLflow at %s: %s", number, self.uri, error)
            return None

    def finish(self, summary: dict[str, Any], metric: str, status: str = "FINISHED") -> None:
        try:
            for key in ("trials", "completed", "pruned", "failed", "seconds"):
                if isinstance(summary.get(key), int | float):
                    self.client.log_metric(self.parent_id, key, float(summary[key]))
            if summary.get("best_metric") is not None and math.isfinite(summary["best_metric"]):
                self.client.log_metric(self.parent_id, f"best.{metric}", float(summary["best_metric"]))
            for key, value in (summary.get("best_params") or {}).items():
                self.client.log_param(self.parent_id, f"best.{key}", _param(value))
        finally:
            self.client.set_terminated(self.parent_id, status)


def open_logger(
    settings: MlflowSettings | None, model: str, run_name: str, tags: dict[str, str]
) -> TrialLogger | None:
    if settings is None or not settings.enabled:
        return None
    return TrialLogger(settings, model, run_name, tags)
