"""What a RetrainPolicy creates, as pure builders: the TrainingRun from its template and the
monitoring Job. The decisions of when and whether are in retrain_policy.py."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pitwall_api.contract import (
    CACHE_DIR_ENV,
    GROUP,
    POLICY_LABEL,
    POLICY_NAME_ENV,
    POLICY_NAMESPACE_ENV,
    RETRAINPOLICY_KIND,
    RETRAINPOLICY_PLURAL,
    TRIGGER_LABEL,
    VERSION,
)
from pitwall_api.triggers import ordered

from pitwall_operator.builders.job import (
    CACHE_MOUNT,
    DATA_MOUNT,
    TERMINATION_LOG,
    container_security_context,
    data_source,
    pod_security_context,
)
from pitwall_operator.config import Settings
from pitwall_operator.retrain_policy import EVIDENCE_ANNOTATION, PolicyRef, evidence
from pitwall_operator.times import utc

POLICY_KIND, POLICY_PLURAL = RETRAINPOLICY_KIND, RETRAINPOLICY_PLURAL
REASONS_ANNOTATION = "pitwall.io/trigger-reasons"
BASE_URL_ANNOTATION = "pitwall.io/fetch-base-url"  # optional: where the monitor's data refresh fetches from
MONITOR_CONTAINER = "monitor"
MONITOR_COMPONENT = "retrain-monitor"
MAX_RUN_NAME = 50  # TrainingRun names (children add suffixes)
# Argo CD marks what it syncs with these; a copy on a created run makes Argo prune it as "extra".
ARGO_LABELS = ("app.kubernetes.io/instance",)
ARGO_ANNOTATIONS = ("argocd.argoproj.io/tracking-id", "kubectl.kubernetes.io/last-applied-configuration")
# Short words for run names: <policy(<=30)>-<yyyymmdd-hhmm>-<word(<=5)> fits 50 characters.
REASON_WORD = {"Schedule": "sched", "AfterNewRace": "race", "PerformanceDrift": "perf",
               "DataDrift": "drift", "NewData": "data", "Manual": "man"}


# --- the TrainingRun ------------------------------------------------------------------------------


def run_name(policy: str, when: datetime, reason: str) -> str:
    """`<policy>-<yyyymmdd-hhmm>-<why>`: says when and why, sorts by time, at most 50 characters.

    Deterministic per minute and reason, so a retried create gets 409 instead of a second run.
    """
    stamp = utc(when).strftime("%Y%m%d-%H%M")
    word = REASON_WORD.get(reason, reason.lower()[:5])
    head = policy[: MAX_RUN_NAME - len(stamp) - len(word) - 2].rstrip("-")
    return f"{head}-{stamp}-{word}"


def owner_reference(policy: PolicyRef) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": POLICY_KIND, "name": policy.name, "uid": policy.uid,
            "controller": True, "blockOwnerDeletion": True}


def policy_labels(policy: PolicyRef, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "pitwall", "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "pitwall-operator", POLICY_LABEL: policy.name}


def build_training_run(policy: PolicyRef, spec: dict[str, Any], when: datetime, reasons: list[str],
                       signals: dict[str, Any] | None = None) -> dict[str, Any]:
    """A TrainingRun from the template: owned by the policy, labelled with policy and trigger.

    The template's spec is copied as is, so promotion defaults to IfBetter (deploy only if better)
    and the template's notifications decide who hears about a regression.
    """
    reasons = ordered(reasons) or ["Manual"]
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    labels = {k: v for k, v in (tmeta.get("labels") or {}).items() if k not in ARGO_LABELS}
    labels.update(policy_labels(policy, "training-run"))
    labels[TRIGGER_LABEL] = reasons[0]
    annotations = {k: v for k, v in (tmeta.get("annotations") or {}).items() if k not in ARGO_ANNOTATIONS}
    annotations[REASONS_ANNOTATION] = ",".join(reasons)
    if signals is not None and set(reasons) - {"Schedule", "Manual"}:
        annotations[EVIDENCE_ANNOTATION] = evidence(signals)
    meta: dict[str, Any] = {"name": run_name(policy.name, when, reasons[0]), "namespace": policy.namespace,
                            "labels": labels, "annotations": annotations}
    if policy.uid:
        meta["ownerReferences"] = [owner_reference(policy)]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun", "metadata": meta,
            "spec": json.loads(json.dumps(template.get("spec") or {}))}


# --- the monitoring Job ---------------------------------------------------------------------------


def monitor_job_name(policy: str, when: datetime) -> str:
    return f"{policy}-mon-{utc(when).strftime('%Y%m%d%H%M%S')}"


def refresh_wanted(run_spec: dict[str, Any]) -> bool:
    """The data folder is refreshed only when the template mounts its claim writable (readOnly: false)."""
    pvc = ((run_spec.get("data") or {}).get("source") or {}).get("pvc") or {}
    return bool(pvc) and pvc.get("readOnly") is False


def monitor_args(policy: PolicyRef, spec: dict[str, Any], data_dir: str | None) -> list[str]:
    """`pitwall-train monitor ...` for this policy's model, champion alias and triggers."""
    run_spec = (spec.get("template") or {}).get("spec") or {}
    model = run_spec.get("model", "race_winner")
    args = ["monitor", "--model", model, "--policy", policy.name, "--namespace", policy.namespace, "--json",
            "--triggers", json.dumps(spec.get("triggers") or {}, sort_keys=True, separators=(",", ":"))]
    registered = (run_spec.get("mlflow") or {}).get("registeredModelName")
    if registered:
        args += ["--registered-model-name", registered]
    alias = (run_spec.get("promotion") or {}).get("alias")
    if alias:
        args += ["--alias", alias]
    if data_dir:
        args += ["--data-dir", data_dir]
    if data_dir and refresh_wanted(run_spec):
        seasons = sorted((run_spec.get("data") or {}).get("seasons") or [])
        args += ["--refresh", "--seasons", str(seasons[-1]) if seasons else ""]
        base_url = dict(policy.annotations).get(BASE_URL_ANNOTATION)
        if base_url:
            args += ["--base-url", base_url]
    return args


def monitor_access_name(policy: str) -> str:
    """A policy's monitoring account, Role and binding: its own suffix, so a run and a policy of
    the same name never share one (`builders/trainer_access.py`)."""
    return f"{policy}-monitor"


def monitor_service_account(policy: PolicyRef, run_spec: dict[str, Any]) -> str:
    """The account a policy's monitoring Job uses: its run template's own, else the policy's own."""
    return run_spec.get("serviceAccountName") or monitor_access_name(policy.name)


def build_monitor_job(policy: PolicyRef, spec: dict[str, Any], settings: Settings, when: datetime) -> dict[str, Any]:
    """A short Job of the trainer image computing the signals (and refreshing data, when allowed)."""
    run_spec = (spec.get("template") or {}).get("spec") or {}
    claim, path = data_source(run_spec, settings)
    data_dir = (f"{DATA_MOUNT}/{path}" if path else DATA_MOUNT) if claim else None
    env = [
        {"name": POLICY_NAME_ENV, "value": policy.name},
        {"name": POLICY_NAMESPACE_ENV, "value": policy.namespace},
        {"name": CACHE_DIR_ENV, "value": CACHE_MOUNT},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
    ]
    uri = (run_spec.get("mlflow") or {}).get("trackingUri") or settings.default_mlflow_uri
    if uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": uri})
    volumes: list[dict[str, Any]] = [{"name": "cache", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "cache", "mountPath": CACHE_MOUNT}]
    if claim:
        writable = refresh_wanted(run_spec)
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": not writable}})
        mounts.append({"name": "data", "mountPath": DATA_MOUNT, "readOnly": not writable})
    container: dict[str, Any] = {
        "name": MONITOR_CONTAINER,
        "image": run_spec.get("image") or settings.trainer_image,
        "command": ["pitwall-train"],
        "args": monitor_args(policy, spec, data_dir),
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
    }
    if run_spec.get("imagePullPolicy"):
        container["imagePullPolicy"] = run_spec["imagePullPolicy"]
    pod: dict[str, Any] = {"restartPolicy": "Never", "securityContext": pod_security_context(),
                           "containers": [container], "volumes": volumes}
    pod["serviceAccountName"] = monitor_service_account(policy, run_spec)
    labels = policy_labels(policy, MONITOR_COMPONENT)
    meta: dict[str, Any] = {"name": monitor_job_name(policy.name, when), "namespace": policy.namespace,
                            "labels": labels}
    if policy.uid:
        meta["ownerReferences"] = [owner_reference(policy)]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"backoffLimit": 1, "activeDeadlineSeconds": 900, "ttlSecondsAfterFinished": 3600,
                     "template": {"metadata": {"labels": dict(labels)}, "spec": pod}}}




