"""Operator settings, read once from the environment (the Helm chart sets these variables).

One frozen object instead of scattered `os.environ` reads, so handlers and builders get the
same values and tests can pass their own.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TRAINER_IMAGE = "ghcr.io/pitwall/trainer:0.1.0"
FINALIZER = "pitwall.io/finalizer"
from pitwall_api.contract import GROUP, TRAININGRUN_KIND, TRAININGRUN_PLURAL, VERSION  # noqa: F401,E402 - re-exported

PLURAL, KIND = TRAININGRUN_PLURAL, TRAININGRUN_KIND


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _hosts(env: dict[str, str], name: str, default: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """A comma list; unset: `default` (None meaning "no restriction")."""
    raw = env.get(name)
    return default if raw is None else tuple(h.strip().lower() for h in raw.split(",") if h.strip())


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    """What the operator needs to know that is not in a TrainingRun."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE
    default_data_claim: str | None = None  # PVC mounted when a run names no data source
    default_data_path: str = ""  # sub-path inside that claim
    default_mlflow_uri: str | None = None
    metrics_port: int = 8080  # Prometheus; 0 disables
    worker_limit: int = 256  # concurrent kopf per-object workers (bounds memory under bursts)
    namespaces: tuple[str, ...] = ()  # empty: what `kopf run` was told (--namespace / -A)
    timer_interval: float = 30.0  # safety-net observation of a non-terminal run (Job events do the rest)
    # Benchmark only: replaces the trainer's command (e.g. "true") so a run costs no training.
    command_override: tuple[str, ...] = field(default_factory=tuple)
    instance: str = "pitwall-operator"  # Event reportingInstance (the pod name in a cluster)
    peering: str | None = None  # KopfPeering name for HA replicas; None = standalone (one replica)
    # Slack webhooks (alerts.py): https hosts allowed (empty: any), hosts allowed over plain http,
    # and the Secret names a run may name (None: any; the chart always lists them, RBAC enforces).
    alert_webhook_hosts: tuple[str, ...] = ("hooks.slack.com",)
    alert_http_hosts: tuple[str, ...] = ()
    alert_secrets: tuple[str, ...] | None = None
    # Every run ends: a Job deadline when the run sets none (0: none), how long a pod may wait
    # (unschedulable, image pull, a missing Secret) and a RayCluster may take to be ready before
    # the run fails saying why. Meanwhile the waiting reason is in the run's Running condition.
    default_deadline_seconds: int = 86400
    pod_start_timeout: float = 600.0
    ray_ready_timeout: float = 900.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        namespaces = tuple(n.strip() for n in env.get("PITWALL_NAMESPACES", "").split(",") if n.strip())
        override = env.get("PITWALL_TRAINER_COMMAND_OVERRIDE", "").strip()
        return cls(
            trainer_image=env.get("PITWALL_TRAINER_IMAGE") or DEFAULT_TRAINER_IMAGE,
            default_data_claim=env.get("PITWALL_DEFAULT_DATA_CLAIM") or None,
            default_data_path=env.get("PITWALL_DEFAULT_DATA_PATH", "").strip("/"),
            default_mlflow_uri=env.get("PITWALL_DEFAULT_MLFLOW_URI") or None,
            metrics_port=_int(env, "PITWALL_METRICS_PORT", 8080),
            worker_limit=_int(env, "PITWALL_WORKER_LIMIT", 256),
            namespaces=namespaces,
            timer_interval=_float(env, "PITWALL_TIMER_INTERVAL", 30.0),
            command_override=tuple(shlex.split(override)) if override else (),
            instance=env.get("POD_NAME") or env.get("HOSTNAME") or "pitwall-operator",
            peering=env.get("PITWALL_PEERING", "").strip() or None,
            alert_webhook_hosts=_hosts(env, "PITWALL_ALERT_WEBHOOK_HOSTS", ("hooks.slack.com",)) or (),
            alert_http_hosts=_hosts(env, "PITWALL_ALERT_HTTP_HOSTS", ()) or (),
            alert_secrets=_hosts(env, "PITWALL_ALERT_SECRETS", None),
            default_deadline_seconds=_int(env, "PITWALL_DEFAULT_DEADLINE_SECONDS", 86400),
            pod_start_timeout=_float(env, "PITWALL_POD_START_TIMEOUT", 600.0),
            ray_ready_timeout=_float(env, "PITWALL_RAY_READY_TIMEOUT", 900.0),
        )


@functools.cache
def settings() -> Settings:
    """The operator's settings, read from the environment once per process."""
    return Settings.from_env()


def apply_framework_settings(settings: Any, config: Settings) -> None:
    """The kopf settings that are framework tuning, not product behaviour (the benchmark's floor
    operator applies the same ones, so the comparison measures our work, not our tuning).

    State in status (GitOps-safe: the operator writes no spec and no field a manifest sets; on a run
    only its status and the `pitwall.io/children` annotation), own finalizer (RetrainPolicies),
    Events only for warnings, bounded workers.
    """
    import kopf  # the trainer image imports this module and has no kopf

    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.last-handled-configuration")
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "pitwall-operator"  # what `kubectl describe` shows as From
    settings.posting.reporting_instance = config.instance[:128]
    # A worker serves one object and keeps its slot until idle for `idle_timeout` (kopf: 5 s):
    # with a small limit, a burst of new runs queues behind idle workers, so idle ones go sooner.
    settings.queueing.worker_limit = config.worker_limit
    settings.queueing.idle_timeout = 1.0
    # Handlers wait on the API, not the CPU: more threads than asyncio's default of 6.
    settings.execution.max_workers = min(config.worker_limit, 32)
