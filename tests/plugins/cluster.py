"""pytest plugin: the `cluster` fixture — the sandbox by default, a real cluster with --kubeconfig.

Enable with `pytest_plugins = ["tests.plugins.cluster"]` in tests/conftest.py (or `-p tests.plugins.cluster`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KUBECTL = os.environ.get("KUBECTL", "kubectl")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help="run cluster tests against this real cluster instead of the sandbox",
    )


@dataclass
class Cluster:
    """What tests get: a kubeconfig, and the sandbox handle when the cluster is the sandbox."""

    kubeconfig: Path
    sandbox: Any = None  # pitwall_sandbox.Sandbox, or None on a real cluster

    @property
    def node_ip(self) -> str | None:
        """Where a test serves what pods must reach (the sandbox node's address), None elsewhere."""
        return self.sandbox.node_ip if self.sandbox is not None else None

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox is not None

    def require_sandbox(self, what: str) -> Any:
        """Skip (with the reason) a check that only the sandbox can make; else return the sandbox."""
        if self.sandbox is None:
            pytest.skip(f"sandbox-only check ({what}): running against a real cluster")
        return self.sandbox

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60  # noqa: A002
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; raise with its stderr when `check` fails."""
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point in-process clients (Kopf's KopfRunner, `load_kube_config()`) at this cluster.

        The kubernetes client reads $KUBECONFIG once, at import: setting the env var is not enough.
        """
        monkeypatch.setenv("KUBECONFIG", str(self.kubeconfig))
        monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(self.kubeconfig))

    def claim_folder(self, namespace: str, claim: str, timeout: float = 60) -> Path:
        """The host folder behind a claim once it is bound (the sandbox's hostPath volumes)."""
        self.require_sandbox("reading a claim's host folder")

        def bound() -> str | None:
            pvc = self.kubectl_json("get", "pvc", claim, "-n", namespace)
            return pvc["spec"].get("volumeName") if (pvc.get("status") or {}).get("phase") == "Bound" else None

        volume = wait_for(bound, timeout=timeout, interval=0.3, what=f"claim {namespace}/{claim} bound")
        return Path(self.kubectl_json("get", "pv", volume)["spec"]["hostPath"]["path"])

    def api_client(self) -> Any:
        """A fresh kubernetes.client.ApiClient for this cluster."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


def wait_for(check: Callable[[], Any], timeout: float = 30, interval: float = 0.1, what: str = "") -> Any:
    """Poll until `check()` returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster under test: a session-wide sandbox, or the real one given by --kubeconfig."""
    given = request.config.getoption("--kubeconfig")
    if given:
        yield Cluster(kubeconfig=Path(given).expanduser().resolve())
        return
    from pitwall_sandbox.sandbox import Sandbox

    # A CI timeout or `kill` sends SIGTERM: stop like Ctrl-C, so the teardown stops the sandbox
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    state = tmp_path_factory.mktemp("sandbox")
    data_dir = os.environ.get("PITWALL_DATA_DIR") or state / "data"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[2]
    with Sandbox(data_dir=data_dir, state_dir=state, crds=[repo / "crds"]) as sandbox:
        yield Cluster(kubeconfig=sandbox.kubeconfig, sandbox=sandbox)


@pytest.fixture
def cluster_namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (works on both kinds of cluster)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=60, what=f"the default ServiceAccount of {name} (pods are refused before it exists)")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
