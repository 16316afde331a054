"""`Sandbox`: the API server, the workload runners and a kubeconfig, as one context manager."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .api import ApiServer, SandboxAPI
from .kinds import KUBERAY_CRD, Kind, builtin_kinds, crd_kinds, load_crd_files
from .store import Obj

REPO_CRDS = Path(__file__).resolve().parents[3] / "crds"
#: The claim that maps to the data folder, and the env var telling the operator to default to it.
DATA_CLAIM = "pitwall-data"
DATA_CLAIM_ENV = "PITWALL_DEFAULT_DATA_CLAIM"
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


class Sandbox:
    """A local cluster: `with Sandbox(data_dir=...) as sb: ... sb.kubeconfig ...`.

    - `kubeconfig`: a file the real kubectl, the kubernetes client and Kopf accept.
    - `data_dir`: bound to the PersistentVolumeClaim `pitwall-data` in namespace `default`.
    - `violations`: built-in objects that failed kubernetes-validate (strict); tests assert it empty.
    - `run_jobs` / `run_rayclusters`: start the workload runners (default on).
    - `pod_env`: extra environment for every pod process (on top of the manifest's env).
    - `claims`: more PersistentVolumeClaim name → host folder bindings (any namespace).
    """

    def __init__(self, *, data_dir: str | Path | None = None, state_dir: str | Path | None = None,
                 crd_paths: list[Path] | None = None, run_jobs: bool = True, run_rayclusters: bool = True,
                 port: int = 0, pod_env: dict[str, str] | None = None,
                 claims: dict[str, str | Path] | None = None) -> None:
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="pitwall-sandbox-")
        self.state_dir = Path(state_dir or self._tmp.name).resolve()  # type: ignore[union-attr]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.claims = {name: Path(folder).resolve() for name, folder in (claims or {}).items()}
        self.crd_paths = crd_paths if crd_paths is not None else sorted(REPO_CRDS.glob("*.yaml"))
        self.api = SandboxAPI()
        self.server = ApiServer(self.api, port=port)
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.run_jobs, self.run_rayclusters = run_jobs, run_rayclusters
        self.runners: list[Any] = []
        self.operators: list[Any] = []
        self.pod_env = dict(pod_env or {})  # extra env for every pod (e.g. MLFLOW_TRACKING_URI in tests)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        store = self.api.store
        for kind in builtin_kinds():
            self.api.register(kind)
        store.on_crd = self._crd_changed
        self.server.start()
        self.server.call(self._seed)
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig(self.server.url)))
        self._start_runners()

    def _start_runners(self) -> None:
        from .jobs import JobRunner
        from .raycluster import RayClusterRunner

        if self.run_jobs:
            self.runners.append(JobRunner(self))
        if self.run_rayclusters:
            self.runners.append(RayClusterRunner(self))
        for runner in self.runners:
            self.server.call(runner.start)

    def start_operator(self, command: list[str] | None = None, env: dict[str, str] | None = None) -> Any:
        """Run the operator (default: `python -m pitwall_operator --all-namespaces`) against this sandbox.

        It gets `operator_env()` plus `env`, logs to `state_dir/operator.log`, and is stopped
        (process group, SIGTERM then SIGKILL) by `stop()`. Returns the OperatorProcess.
        """
        from .operator_hook import OperatorProcess, default_command

        command = command or default_command()
        if command is None:
            raise RuntimeError("the operator cannot run yet: pitwall_operator.handlers or kopf is missing")
        process = OperatorProcess(command, {**self.operator_env(), **(env or {})}, self.state_dir / "operator.log")
        process.start()
        self.operators.append(process)
        return process

    def stop(self) -> None:
        for process in self.operators:
            process.stop()
        self.operators.clear()
        for runner in reversed(self.runners):
            with contextlib.suppress(Exception):  # keep stopping the rest
                self.server.run(runner.stop(), timeout=60)
        self.runners.clear()
        self.server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- seeding -----------------------------------------------------------------------------------

    def _seed(self) -> None:
        store = self.api.store
        namespaces = store.kinds["", "namespaces"]
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            store.create(namespaces, None, {"metadata": {"name": name}}, internal=True)
        crds = store.kinds[CRD_KEY]
        docs = load_crd_files(*self.crd_paths)
        ray_crd = Path(os.environ.get("PITWALL_KUBERAY_CRD", KUBERAY_CRD))
        if ray_crd.exists():
            docs += load_crd_files(ray_crd)
        for doc in docs:
            if store.find(crds, None, doc["metadata"]["name"]) is None:
                store.create(crds, None, doc, internal=True)
        for name in self.claim_dirs():
            store.create(store.kinds["", "persistentvolumeclaims"], "default", data_claim(name), internal=True)

    def _crd_changed(self, crd: Obj, stored: bool) -> None:
        for kind in crd_kinds(crd):
            if stored:
                self.api.register(kind)
            else:  # as a real server, deleting a CRD deletes its custom resources
                self.api.store.kinds.pop(kind.key, None)
                self.api.store.objects.pop(kind.key, None)

    # -- helpers for tests and runners -------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def violations(self) -> list[dict[str, Any]]:
        return self.api.store.violations

    def kind(self, group: str, plural: str) -> Kind:
        return self.api.store.kinds[group, plural]

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        """A thread-safe read of one stored object (None when absent)."""
        return self.server.call(lambda: self.api.store.find(self.kind(group, plural), namespace, name))

    def claim_dirs(self) -> dict[str, Path]:
        """PersistentVolumeClaim name → host folder (like kind's extraMounts)."""
        return {**self.claims, **({DATA_CLAIM: self.data_dir} if self.data_dir else {})}

    def operator_env(self) -> dict[str, str]:
        """The environment the operator runs with against this sandbox (see cli.py)."""
        env = {"KUBECONFIG": str(self.kubeconfig)}
        if self.data_dir is not None:
            env[DATA_CLAIM_ENV] = DATA_CLAIM
        return env


def data_claim(name: str = DATA_CLAIM) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"app.kubernetes.io/part-of": "pitwall"}},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}},
                     "volumeMode": "Filesystem"}}


def kubeconfig(server: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for plain HTTP on localhost (no credentials: the sandbox has no auth)."""
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "pitwall-sandbox", "cluster": {"server": server}}],
            "users": [{"name": "pitwall-sandbox", "user": {}}],
            "contexts": [{"name": "pitwall-sandbox", "context": {"cluster": "pitwall-sandbox",
                                                                 "user": "pitwall-sandbox", "namespace": namespace}}],
            "current-context": "pitwall-sandbox"}
