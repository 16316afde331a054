"""The trainer Job: a Kubernetes Job running the trainer, restricted, owned, labelled and retry-aware."""

from __future__ import annotations

from typing import Any

from pitwall_api.contract import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    EXIT_BAD_INPUT,
    OPTUNA_STORAGE_ENV,
    PROMOTION_LEASE_ENV,
    RUN_NAME_ENV,
    RUN_NAMESPACE_ENV,
    RUN_UID_ENV,
    TERMINATION_LOG,
)

from pitwall_operator.builders.configmap import SPEC_KEY
from pitwall_operator.builders.meta import (
    PROMOTION_LEASE,
    RunRef,
    job_name,
    kueue_labels,
    metadata,
    spec_configmap_name,
    trainer_service_account,
)
from pitwall_operator.config import Settings

CONTAINER = "trainer"
SPEC_DIR = "/etc/pitwall"
SPEC_PATH = f"{SPEC_DIR}/{SPEC_KEY}"
DATA_MOUNT = "/data"
CACHE_MOUNT = "/cache"
DEFAULT_BACKOFF_LIMIT = 3
RUN_UID = 10001  # the trainer image's numeric USER (Dockerfile.trainer; a test keeps them equal)


def pod_security_context() -> dict[str, Any]:
    """Pod Security Standard `restricted`."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_UID,
        "runAsGroup": RUN_UID,
        "fsGroup": RUN_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def data_source(spec: dict[str, Any], settings: Settings) -> tuple[str | None, str]:
    """(claim, path inside it) for the data volume; (None, "") means no volume (fetch or nothing)."""
    source = (spec.get("data") or {}).get("source") or {}
    pvc = source.get("pvc")
    if pvc:
        return pvc["claimName"], str(pvc.get("path") or "").strip("/")
    if source.get("fetch") is not None:
        return None, ""
    if settings.default_data_claim:
        return settings.default_data_claim, settings.default_data_path
    return None, ""


def cache_claim(spec: dict[str, Any]) -> str | None:
    """A fetch source may keep its cache on a claim between runs; otherwise the cache is an emptyDir."""
    fetch = ((spec.get("data") or {}).get("source") or {}).get("fetch") or {}
    return fetch.get("cacheClaimName") or None


def _env_list(spec_env: Any) -> list[dict[str, Any]]:
    """spec.env as EnvVar list (a list of EnvVars, or a name -> value map)."""
    if not spec_env:
        return []
    if isinstance(spec_env, dict):
        return [{"name": str(k), "value": str(v)} for k, v in spec_env.items()]
    return [dict(e) for e in spec_env]


def env_vars(values: dict[str, Any]) -> list[dict[str, Any]]:
    """name -> value (or name -> {"valueFrom": ...}) as a container's `env` list."""
    return [{"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in values.items()]


def trainer_env(run: RunRef, spec: dict[str, Any], settings: Settings, extra: dict[str, Any] | None = None) -> list:
    """Our variables (`extra`: name -> value, or name -> {"valueFrom": ...}), then the user's."""
    claim, path = data_source(spec, settings)
    env = [
        {"name": RUN_NAME_ENV, "value": run.name},
        {"name": RUN_NAMESPACE_ENV, "value": run.namespace},
        {"name": RUN_UID_ENV, "value": run.uid},  # a retried pod finds its run's version
        {"name": PROMOTION_LEASE_ENV, "value": PROMOTION_LEASE},
        {"name": CACHE_DIR_ENV, "value": CACHE_MOUNT},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
    ]
    if claim:
        env.append({"name": DATA_DIR_ENV, "value": f"{DATA_MOUNT}/{path}" if path else DATA_MOUNT})
    uri = (spec.get("mlflow") or {}).get("trackingUri") or settings.default_mlflow_uri
    if uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": uri})
    storage = ((spec.get("tuning") or {}).get("optuna") or {}).get("storageSecretRef")
    if storage:  # Optuna workers share one study through this URL (the trainer reads the variable)
        env.append({"name": OPTUNA_STORAGE_ENV,
                    "valueFrom": {"secretKeyRef": {"name": storage["name"], "key": storage["key"]}}})
    env += env_vars(extra or {})
    # the user's env replaces ours by name (no duplicate names: strict validation rejects them)
    user = _env_list(spec.get("env"))
    overridden = {u.get("name") for u in user}
    return [e for e in env if e["name"] not in overridden] + user


def volumes(run: RunRef, spec: dict[str, Any], settings: Settings) -> tuple[list, list]:
    """(volumes, volumeMounts): spec ConfigMap, data PVC read-only, cache emptyDir."""
    claim, _ = data_source(spec, settings)
    cache = cache_claim(spec)
    vols: list[dict[str, Any]] = [
        {"name": "spec", "configMap": {"name": spec_configmap_name(run.name)}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": cache}} if cache else {"name": "cache", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "cache", "mountPath": CACHE_MOUNT},
    ]
    if claim:
        pvc = ((spec.get("data") or {}).get("source") or {}).get("pvc") or {}
        read_only = bool(pvc.get("readOnly", True))
        vols.append({"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}})
        mounts.append({"name": "data", "mountPath": DATA_MOUNT, "readOnly": read_only})
    return vols, mounts


def trainer_command(settings: Settings) -> tuple[list[str], list[str]]:
    if settings.command_override:  # benchmark only
        return list(settings.command_override[:1]), list(settings.command_override[1:])
    return ["pitwall-train"], ["run", "--spec", SPEC_PATH]


def place_pod(run: RunRef, pod_spec: dict[str, Any], spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Account, pull secrets, node selection and priority from the run's spec (shared with the Ray pods).

    The account is the spec's, else the run's own (`builders/trainer_access.py`: rights on this
    run only), never one shared by every run of the namespace.
    """
    del settings  # the builders' one signature
    pod_spec["serviceAccountName"] = trainer_service_account(run, spec)
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "priorityClassName"):
        if spec.get(key):
            pod_spec[key] = spec[key]
    return pod_spec


def pod_failure_policy() -> dict[str, Any]:
    """Exit code 2 (bad config/data) fails the Job at once; node disruptions do not count."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_BAD_INPUT]},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def build_job(
    run: RunRef,
    spec: dict[str, Any],
    settings: Settings,
    *,
    extra_env: dict[str, Any] | None = None,
    component: str = "trainer",
) -> dict[str, Any]:
    """`<run>-train`: runs `pitwall-train run --spec /etc/pitwall/spec.yaml` once, to completion."""
    run_policy = spec.get("runPolicy") or {}
    kueue = kueue_labels(run, spec)
    vols, mounts = volumes(run, spec, settings)
    command, args = trainer_command(settings)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.get("image") or settings.trainer_image,
        "command": command,
        "args": args,
        "env": trainer_env(run, spec, settings, extra_env),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    if spec.get("imagePullPolicy"):
        container["imagePullPolicy"] = spec["imagePullPolicy"]
    if spec.get("resources"):
        container["resources"] = spec["resources"]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # required by podFailurePolicy; the Job retries with new pods
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": vols,
    }
    place_pod(run, pod_spec, spec, settings)
    meta = metadata(run, job_name(run.name), component, kueue)
    job_spec: dict[str, Any] = {
        "backoffLimit": int(run_policy.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)),
        "podFailurePolicy": pod_failure_policy(),
        "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": pod_spec},
    }
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        if run_policy.get(key) is not None:
            job_spec[key] = int(run_policy[key])
    if "activeDeadlineSeconds" not in job_spec and settings.default_deadline_seconds > 0:
        job_spec["activeDeadlineSeconds"] = settings.default_deadline_seconds  # no run hangs forever
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
