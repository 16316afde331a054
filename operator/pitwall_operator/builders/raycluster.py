"""The RayCluster (KubeRay ray.io/v1) a tuned run with `engine: ray` and workers > 0 runs its trials on.

Head and workers run the trainer image (so trial code and Ray match the driver), with the same
restricted security context as the trainer Job. The driver Job reaches the head via RAY_ADDRESS.
Ray's token authentication is on: head, workers and driver read one random token from the run's
own Secret (KubeRay v1.5.0 has no auth option of its own), and the dashboard listens on loopback.
"""

from __future__ import annotations

from typing import Any

from pitwall_api.contract import POD_IP_ENV, RAY_JOIN_ENV

from pitwall_operator.builders.job import (
    container_security_context,
    env_vars,
    place_pod,
    pod_security_context,
)
from pitwall_operator.builders.meta import RUN_LABEL, RunRef, kueue_labels, metadata, ray_cluster_name
from pitwall_operator.config import Settings

RAY_VERSION = "2.60.0"  # the trainer image's ray[tune] pin (pyproject)
GCS_PORT = 6379
DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
TOKEN_KEY = "token"


def ray_token_secret_name(run: RunRef) -> str:
    """Unique to this run's uid: the operator may create Secrets but not read them, so a 409 must
    mean "ours already" and never a predecessor's token."""
    return f"{ray_cluster_name(run.name)}-token" + (f"-{run.uid[:8]}" if run.uid else "")


def build_ray_token_secret(run: RunRef, token: str) -> dict[str, Any]:
    """The run's Ray token (the caller draws it at random); deleted with the run."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": metadata(run, ray_token_secret_name(run), "ray-cluster"),
            "stringData": {TOKEN_KEY: token}}


def ray_auth_env(run: RunRef) -> dict[str, Any]:
    """Token authentication for every Ray process of the run (name -> value or valueFrom)."""
    return {"RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": {"valueFrom": {"secretKeyRef": {"name": ray_token_secret_name(run), "key": TOKEN_KEY}}}}


def ray_settings(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The rayCluster block when this run needs a RayCluster, else None (local Ray or Optuna)."""
    tuning = spec.get("tuning") or {}
    if tuning.get("engine") != "ray":
        return None
    cluster = tuning.get("rayCluster") or {"workers": 2}
    return cluster if int(cluster.get("workers", 2)) > 0 else None


def head_address(run: RunRef, ray_cluster: dict[str, Any] | None = None) -> str:
    """The head's GCS address `<head>:6379` the driver joins (as a node without CPUs, see RAY_JOIN_ENV).

    `ray.init("<head>:6379")` attaches only through a raylet on the same host, so the driver pod
    starts one first; Ray Client (ray://) would run the Tuner remotely, away from the driver's
    progress and MLflow callbacks. The head is the pod's IP from status when known (KubeRay's head
    Service is headless), else the Service name.
    """
    head = ((ray_cluster or {}).get("status") or {}).get("head") or {}
    known = [ip for ip in (head.get("serviceIP"), head.get("podIP")) if ip and ip != "None"]
    host = known[0] if known else f"{ray_cluster_name(run.name)}-head-svc.{run.namespace}.svc"
    return f"{host}:{GCS_PORT}"


def driver_env(run: RunRef, ray_cluster: dict[str, Any] | None) -> dict[str, Any]:
    """What the driver Job needs to reach its RayCluster; the pod's IP is its Ray node's address
    (as KubeRay passes `--node-ip-address` to its own pods)."""
    return {"RAY_ADDRESS": head_address(run, ray_cluster), RAY_JOIN_ENV: "1",
            POD_IP_ENV: {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            "PITWALL_RAY_CLUSTER": ray_cluster_name(run.name), **ray_auth_env(run)}


def is_ready(ray_cluster: dict[str, Any] | None) -> bool:
    """KubeRay sets status.state `ready` (and condition HeadPodReady) once the head is up."""
    status = (ray_cluster or {}).get("status") or {}
    if str(status.get("state", "")).lower() == "ready":
        return True
    return any(c.get("type") == "HeadPodReady" and c.get("status") == "True" for c in status.get("conditions") or [])


def _container(run: RunRef, name: str, image: str, spec: dict[str, Any], resources: dict | None, ports: list) -> dict:
    env = {**ray_auth_env(run), "MLFLOW_DISABLE_TELEMETRY": "true"}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "securityContext": container_security_context(),
        "env": env_vars(env),
    }
    if ports:
        container["ports"] = ports
    if spec.get("imagePullPolicy"):
        container["imagePullPolicy"] = spec["imagePullPolicy"]
    if resources:
        container["resources"] = resources
    return container


def _pod_spec(run: RunRef, spec: dict[str, Any], settings: Settings, container: dict) -> dict[str, Any]:
    return place_pod(run, {"securityContext": pod_security_context(), "containers": [container]}, spec, settings)


def build_ray_cluster(run: RunRef, spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """`<run>-ray`: one head (no trials on it) and `workers` identical workers, fixed size."""
    cluster = ray_settings(spec) or {"workers": 2}
    workers = int(cluster.get("workers", 2))
    image = spec.get("image") or settings.trainer_image
    meta = metadata(run, ray_cluster_name(run.name), "ray-cluster", kueue_labels(run, spec))
    pod_labels = dict(meta["labels"])
    head_ports = [
        {"name": "gcs-server", "containerPort": GCS_PORT},
        {"name": "dashboard", "containerPort": DASHBOARD_PORT},
        {"name": "client", "containerPort": CLIENT_PORT},
    ]
    head = _container(run, "ray-head", image, spec, cluster.get("headResources") or spec.get("resources"), head_ports)
    worker = _container(run, "ray-worker", image, spec, cluster.get("workerResources") or spec.get("resources"), [])
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": meta,
        "spec": {
            "rayVersion": cluster.get("rayVersion") or RAY_VERSION,
            "headGroupSpec": {
                # num-cpus 0: trials go to the workers; the head only coordinates. The dashboard
                # (jobs API, logs) is for the head's own probes only: nobody needs it from outside.
                "rayStartParams": {"dashboard-host": "127.0.0.1", "num-cpus": "0"},
                "template": {"metadata": {"labels": pod_labels}, "spec": _pod_spec(run, spec, settings, head)},
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": workers,
                    "maxReplicas": workers,
                    "rayStartParams": {},
                    "template": {"metadata": {"labels": pod_labels}, "spec": _pod_spec(run, spec, settings, worker)},
                }
            ],
        },
    }


def build_network_policy(run: RunRef) -> dict[str, Any]:
    """`<run>-ray`: the pods of this run (head, workers, the driver that joins as a Ray node) may
    reach each other on any port; the chart's policy denies every other ingress to run pods, so no
    other run's pods (nor anything else) reach this run's Ray. Create it with the RayCluster."""
    same_run = {"podSelector": {"matchLabels": {RUN_LABEL: run.name}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(run, ray_cluster_name(run.name), "ray-cluster"),
        "spec": {**same_run, "policyTypes": ["Ingress"], "ingress": [{"from": [same_run]}]},
    }
