"""`Sandbox`: the real control plane, the process kubelet and a kubeconfig, as one context manager."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from .build import Versions
from .controlplane import ControlPlane
from .kubelet import PROVISIONER, STORAGE_CLASS, Kubelet
from .network import PodNetwork

#: The claim bound to the data folder, and the operator setting that makes it the default source.
DATA_CLAIM = "pitwall-data"
DATA_CLAIM_ENV = "PITWALL_DEFAULT_DATA_CLAIM"


class Sandbox:
    """A local cluster: `with Sandbox(data_dir=...) as sb: ... sb.kubeconfig ...`.

    - `kubeconfig`: the admin kubeconfig; the real kubectl, the kubernetes client and Kopf use it.
    - `node_ip`: the node's address, which pods reach (serve test services to pods there).
    - `data_dir`: bound to the PersistentVolumeClaim `pitwall-data` in namespace `default` through
      a real PersistentVolume; `claims`: more claim name -> host folder bindings.
    - `pod_env`: extra environment for every container started from now on.
    - `crds`: CRD files (or folders) to apply at start; the chart brings its own otherwise.
    """

    def __init__(self, *, data_dir: str | Path | None = None, state_dir: str | Path | None = None,
                 port: int = 0, pod_env: dict[str, str] | None = None, claims: dict[str, str | Path] | None = None,
                 kuberay: bool = True, isolated: bool | None = None, crds: list[Path] | None = None) -> None:
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="pitwall-sandbox-")
        self.state_dir = Path(state_dir or self._tmp.name).resolve()  # type: ignore[union-attr]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.claims = {name: Path(folder).resolve() for name, folder in (claims or {}).items()}
        self.network = PodNetwork(isolated)
        self.node_ip = self.network.node_ip
        self.control_plane = ControlPlane(self.state_dir, address=self.node_ip, port=port, kuberay=kuberay)
        self.kubeconfig = self.control_plane.kubeconfig
        self.pod_env = dict(pod_env or {})
        self.crds = [Path(p) for p in crds or []]
        self.kubelet: Kubelet | None = None

    @property
    def url(self) -> str:
        return self.control_plane.url

    def __enter__(self) -> Sandbox:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.network.setup()
        self.control_plane.start()
        pki = self.control_plane.pki
        self.kubelet = Kubelet(api_server=self.url, ssl_context=self.control_plane.ssl_context(),
                               serving=(pki.kubelet_serving.cert, pki.kubelet_serving.key), state_dir=self.state_dir,
                               network=self.network, version=Versions.from_go_mod().kubernetes, extra_env=self.pod_env)
        self.kubelet.start()
        self._create_defaults()

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        self.control_plane.stop()
        self.network.teardown()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()

    # -- what a fresh cluster of ours holds ----------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None) -> str:  # noqa: A002
        return self.control_plane.kubectl(*args, input=input)

    def apply(self, *docs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input="\n".join(json.dumps(d) for d in docs))

    def _create_defaults(self) -> None:
        self.apply({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": STORAGE_CLASS,
                                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
        if self.crds:
            self.kubectl("apply", "--server-side", *[arg for path in self.crds for arg in ("-f", str(path))])
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        bindings = {**self.claims, **({DATA_CLAIM: self.data_dir} if self.data_dir else {})}
        for name, folder in bindings.items():
            self.apply(*host_claim(name, folder))
        self._wait(lambda: "default" in self.kubectl("get", "serviceaccount", "-n", "default", "-o", "name"),
                   "the default ServiceAccount (made by the controller manager)")

    def _wait(self, check: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.control_plane.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox: timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.3)

    def install_chart(self, chart: Path, *, mlflow_uri: str | None = None, trainer_namespaces: list[str] | None = None,
                      extra_env: dict[str, str] | None = None, wait: bool = True) -> dict[str, Any]:
        """Install the chart as `helm install` would; the operator runs as its Deployment's pod,
        under the chart's ServiceAccount and RBAC. Returns the Ready operator pod (or the release)."""
        from . import chart as charts

        values = charts.sandbox_values(data_claim=DATA_CLAIM if self.data_dir else None, mlflow_uri=mlflow_uri,
                                       trainer_namespaces=trainer_namespaces or ["default"], extra_env=extra_env)
        release = charts.install(self.kubeconfig, Path(chart), values)
        return charts.wait_operator_ready(self.kubeconfig) if wait else release

    def operator_env(self) -> dict[str, str]:
        """The environment an operator on the host runs with against this sandbox."""
        env = {"KUBECONFIG": str(self.kubeconfig)}
        if self.data_dir is not None:
            env[DATA_CLAIM_ENV] = DATA_CLAIM
        return env


def host_claim(name: str, folder: Path, namespace: str = "default") -> tuple[dict[str, Any], dict[str, Any]]:
    """A PersistentVolume on a host folder, pre-bound to the claim `name` (kind's extraMounts, done the API way)."""
    labels = {"app.kubernetes.io/part-of": "pitwall"}
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-{name}", "labels": labels},
          "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                   "hostPath": {"path": str(folder), "type": "Directory"},
                   "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": name}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "", "volumeName": f"{namespace}-{name}"}}
    return pv, pvc
