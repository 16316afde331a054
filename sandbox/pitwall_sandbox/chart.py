"""Install the PitWall chart into a cluster with Helm's own library (helm-python-sdk), as
`helm install` would: its CRDs, RBAC, ServiceAccounts and the operator Deployment."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

RELEASE = "pitwall"
NAMESPACE = "pitwall-system"


def sandbox_values(*, data_claim: str | None, mlflow_uri: str | None, trainer_namespaces: list[str],
                   extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Values for the sandbox: the data claim and MLflow as defaults, trainers in `trainer_namespaces`."""
    values: dict[str, Any] = {"trainer": {"namespaces": trainer_namespaces},
                              "defaults": {"data": {"claimName": data_claim or ""}, "mlflowTrackingUri": mlflow_uri or ""},
                              "operator": {"extraEnv": [{"name": k, "value": v} for k, v in (extra_env or {}).items()],
                                           "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}}
    return values


def install(kubeconfig: Path, chart: Path, values: dict[str, Any], *, release: str = RELEASE,
            namespace: str = NAMESPACE, upgrade: bool = False) -> dict[str, Any]:
    """`helm install` (or upgrade) of `chart`; returns the release summary."""
    import helm_python as helm

    if not (chart / "Chart.yaml").is_file():
        raise FileNotFoundError(f"{chart}: not a Helm chart (no Chart.yaml); pass the path of charts/pitwall")
    config = helm.Config(namespace=namespace, kubeconfig_path=str(kubeconfig))
    try:
        if upgrade:
            release_info = config.upgrade(str(chart), release, values, namespace=namespace, timeout=120)
        else:
            release_info = config.install(str(chart), release, values, namespace=namespace, timeout=120,
                                          create_namespace=True)
    finally:
        config.close()
    return release_info


def uninstall(kubeconfig: Path, *, release: str = RELEASE, namespace: str = NAMESPACE) -> None:
    import helm_python as helm

    config = helm.Config(namespace=namespace, kubeconfig_path=str(kubeconfig))
    try:
        config.uninstall(release)
    finally:
        config.close()


def wait_operator_ready(kubeconfig: Path, *, namespace: str = NAMESPACE, timeout: float = 120) -> dict[str, Any]:
    """The Ready operator pod of the release (its readiness probe is Kopf's /healthz)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "pods", "-n", namespace, "-l",
                                 "app.kubernetes.io/component=operator", "-o", "json"],
                                capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            for pod in json.loads(result.stdout)["items"]:
                conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
                if not pod["metadata"].get("deletionTimestamp") and conditions.get("Ready") == "True":
                    return pod
                last = json.dumps((pod.get("status") or {}).get("containerStatuses"))[:1500]
        time.sleep(0.5)
    raise TimeoutError(f"the operator pod is not Ready after {timeout:.0f} s; last status: {last}")
