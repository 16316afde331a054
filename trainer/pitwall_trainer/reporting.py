"""Progress and results back to the TrainingRun.

In a pod the trainer knows its TrainingRun from PITWALL_TRAININGRUN_NAME/NAMESPACE. It
merge-patches only the status subresource of that one resource (RBAC: get/patch
trainingruns/status) and never touches conditions or state, which belong to the operator.
Reporting is best effort: a failed patch is logged and training goes on, because the final
result also goes to the container's termination message, which the operator reads when the
status patch did not arrive.

Progress comes from `pitwall_trainer.progress.TRACKER` (the run's phases, one overall percent)
and goes out with the trainer's resource use (`status.resources`, from
`pitwall_trainer.resources`) at most once per `min_interval`; a daemon thread refreshes the
resources every few seconds while one long step reports nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitwall_api.contract import (
    GROUP,
    RUN_NAME_ENV,
    RUN_NAMESPACE_ENV,
    TERMINATION_LIMIT,
    TERMINATION_LOG,
    TERMINATION_LOG_ENV,
    TRAININGRUN_PLURAL,
    VERSION,
)
from pitwall_api.trainingrun import round_for_display

from pitwall_trainer.progress import TRACKER, ProgressUpdate
from pitwall_trainer.resources import ResourceSampler

log = logging.getLogger(__name__)

PLURAL, NAME_ENV, NAMESPACE_ENV = TRAININGRUN_PLURAL, RUN_NAME_ENV, RUN_NAMESPACE_ENV
TERMINATION_ENV, DEFAULT_TERMINATION_LOG = TERMINATION_LOG_ENV, TERMINATION_LOG


NON_FINITE_KEY = "nonFiniteMetrics"  # status field naming figures left out (JSON has no NaN)


def finite(status: dict[str, Any]) -> dict[str, Any]:
    """The status with every NaN or infinite number left out and named under `nonFiniteMetrics`.

    A real API server refuses a whole patch that holds one NaN, and a termination message with
    `NaN` is not JSON: one bad figure must not lose the model version and every other figure.
    """
    dropped: list[str] = []

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            dropped.append(path)
            return None
        if isinstance(value, dict):
            kept = {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
            return {k: v for k, v in kept.items() if v is not None or value[k] is None}
        if isinstance(value, list):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    out = clean(status, "")
    if dropped:
        out[NON_FINITE_KEY] = sorted(dropped)[:64]
        log.warning("left out non-finite figures: %s", ", ".join(dropped))
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_status(update: ProgressUpdate) -> dict[str, Any]:
    """The `status.progress` block for one update (camelCase, as in the CRD; metrics rounded for display)."""
    block: dict[str, Any] = {
        "percent": int(update.percent),
        "message": update.message[:1024],
        "updatedAt": _now(),
    }
    if update.phase is not None:  # a phase without steps removes the previous one's (a merge patch)
        block["phase"] = update.phase
        counted = update.total > 0
        block["step"] = max(0, int(update.done)) if counted else None
        block["totalSteps"] = int(update.total) if counted else None
    if update.metric_name:
        block["metricName"] = update.metric_name[:128]
    if update.current_metric is not None:
        block["currentMetric"] = round_for_display(update.current_metric)
    if update.best_metric is not None:
        block["bestMetric"] = round_for_display(update.best_metric)
    if update.eta_seconds is not None:
        block["etaSeconds"] = max(0, int(update.eta_seconds))
    return block


_FROM_ENV: dict[tuple[str, str], StatusReporter] = {}


class StatusReporter:
    """Patches one resource's status (a TrainingRun by default); progress is rate-limited."""

    RESOURCE_INTERVAL = 5.0  # seconds between resource samples on the background thread
    HEARTBEAT = 15.0  # with no progress update for this long, the thread reports the resources

    def __init__(self, name: str, namespace: str, min_interval: float = 2.0, api: Any = None,
                 plural: str = PLURAL):
        self.name, self.namespace, self.min_interval, self.plural = name, namespace, min_interval, plural
        self._api = api
        self._last_sent = 0.0
        self._last_phase: str | None = None
        self._lock = threading.RLock()
        self.sampler: ResourceSampler | None = None
        self.listening = False

    @classmethod
    def from_env(cls) -> StatusReporter | None:
        """The reporter of this pod's TrainingRun, else None (a laptop run). One per run: it follows
        the run's phases (`progress.TRACKER`) and samples the trainer's resources from the first call."""
        name = os.environ.get(NAME_ENV)
        if not name:
            return None
        key = (name, os.environ.get(NAMESPACE_ENV, "default"))
        if key not in _FROM_ENV:
            reporter = _FROM_ENV[key] = cls(*key)
            reporter.follow_run()
        return _FROM_ENV[key]

    def follow_run(self, sampler: ResourceSampler | None = None) -> None:
        """Report the run's phases from `progress.TRACKER` and the trainer's resource use."""
        TRACKER.reset()
        TRACKER.listen(self.progress)
        self.listening = True
        self.sampler = sampler or ResourceSampler()
        self.sampler.start(self.RESOURCE_INTERVAL, lambda _sample: self._heartbeat())

    def stop(self) -> None:
        """Stop following the run (the final report went out)."""
        TRACKER.unlisten(self.progress)
        if self.sampler is not None:
            self.sampler.stop()

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config()
            else:
                config.load_kube_config()
            self._api = client.CustomObjectsApi()
        return self._api

    def patch(self, status: dict[str, Any]) -> bool:
        """Merge-patch the status subresource; False (logged) when the API refused or was down.

        A final progress block (percent 100) is completed here: phase Done, the metric's name, no
        steps or time left, and the last resource figures; the resource thread stops.
        """
        progress = status.get("progress")
        if isinstance(progress, dict) and progress.get("percent") == 100 and self.listening:
            status = {**status, "progress": self._final(progress)}
            resources = self.sampler.status(fresh=True) if self.sampler is not None else {}
            if resources:
                status["resources"] = resources
            self.stop()
        try:
            with self._lock:
                self._client().patch_namespaced_custom_object_status(
                    GROUP, VERSION, self.namespace, self.plural, self.name, {"status": finite(status)}
                )
            return True
        except Exception as error:  # noqa: BLE001 - reporting must never stop training
            log.warning("could not report to %s %s/%s: %s", self.plural, self.namespace, self.name, error)
            return False

    @staticmethod
    def _final(progress: dict[str, Any]) -> dict[str, Any]:
        block = {**progress, "phase": "Done", "step": None, "totalSteps": None, "etaSeconds": 0}
        if TRACKER.metric_name and not block.get("metricName"):
            block["metricName"] = TRACKER.metric_name
        for key in ("currentMetric", "bestMetric"):
            if isinstance(block.get(key), int | float):
                block[key] = round_for_display(block[key])
        block.setdefault("updatedAt", _now())
        return block

    def progress(self, update: ProgressUpdate) -> None:
        """Progress sink: a phase change and the last step always go out, other updates at most once
        per `min_interval`; the resources go with them. While following the run, only the tracker's
        updates count (a bar's own update arrives again through the tracker, with its phase)."""
        if self.listening and update.overall is None:
            return
        now = time.monotonic()
        important = update.phase != self._last_phase or update.done >= update.total
        if not important and now - self._last_sent < self.min_interval:
            return
        self._last_sent, self._last_phase = now, update.phase
        status: dict[str, Any] = {"progress": progress_status(update)}
        resources = self.sampler.status(fresh=True) if self.sampler is not None else {}
        if resources:
            status["resources"] = resources
        self.patch(status)

    def _heartbeat(self) -> None:
        """From the resource thread: the figures, when no progress update carried them lately."""
        if self.sampler is None or time.monotonic() - self._last_sent < max(self.min_interval, self.HEARTBEAT):
            return
        resources = self.sampler.status()
        if resources:
            self._last_sent = time.monotonic()
            self.patch({"resources": resources})


# Dropped first when the message is over the kubelet's limit: the verdict, the model version and
# the metrics go last (the operator reports them when the status patch did not arrive).
_TRIM_ORDER = ("bestParams", "progress", "baselines", "regression")


def termination_message(payload: dict[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """Strict JSON within the kubelet's limit: drop the least needed parts first, never the verdict."""
    trimmed = finite(payload)

    def text() -> str:
        return json.dumps(trimmed, separators=(",", ":"), sort_keys=True, allow_nan=False)

    for key in _TRIM_ORDER:
        if len(text().encode()) <= limit:
            return text()
        trimmed.pop(key, None)
    for block, field, keep in (("error", "message", 1000), ("promotion", "reason", 200)):
        if len(text().encode()) > limit and isinstance(trimmed.get(block), dict) and field in trimmed[block]:
            trimmed[block] = {**trimmed[block], field: str(trimmed[block][field])[:keep]}
    while len(text().encode()) > limit and trimmed.get("metrics"):
        trimmed["metrics"] = dict(list(trimmed["metrics"].items())[:-1])  # the last metrics go first
    return text()


def write_termination_message(payload: dict[str, Any], path: str | None = None) -> Path | None:
    """Write the result where the kubelet reads it; skipped on a laptop (no such file or folder)."""
    target = Path(path or os.environ.get(TERMINATION_ENV) or DEFAULT_TERMINATION_LOG)
    if not target.parent.is_dir() or (target == Path(DEFAULT_TERMINATION_LOG) and not target.exists()):
        return None
    try:
        target.write_text(termination_message(payload))
        return target
    except OSError as error:
        log.warning("could not write the termination message to %s: %s", target, error)
        return None
