"""e2e fixtures: the chart installed into the `cluster` fixture (the operator is its Deployment's
pod), a real MLflow server, a local Slack webhook, and kubectl helpers.

Needs the plugins `tests.plugins.cluster` and `tests.plugins.mlflow_server` (tests/conftest.py).
On a real cluster (--kubeconfig) pods cannot reach 127.0.0.1: give PITWALL_E2E_MLFLOW_URI (an
MLflow the pods reach) and PITWALL_E2E_DATA_CLAIM (a PVC with the Ergast CSVs), or the tests skip.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.plugins.cluster import Cluster, wait_for
from tests.plugins.mlflow_server import running_mlflow_server

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "trainingrun.yaml"
NAMESPACE = "default"
OPERATOR_NAMESPACE = "pitwall-system"
OPERATOR_DEPLOYMENT = "pitwall-operator"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
DATA_CLAIM = "pitwall-data"  # the sandbox binds it to the data folder
RUN_TIMEOUT = float(os.environ.get("PITWALL_E2E_RUN_TIMEOUT", "600"))


class OperatorDeployment:
    """The operator as the chart installs it: the Deployment's pod, under the chart's RBAC.

    `start()` installs the chart (once) or scales the Deployment back to one replica and waits for
    a Ready pod; `stop(SIGKILL)` is a crash (the pod force-deleted), `stop()` a graceful shutdown.
    `logs()` holds every operator pod's log of the session, `metrics()` reads /metrics through the
    API server's pod proxy, so both work on any cluster.
    """

    def __init__(self, cluster: Cluster, env: dict[str, str]) -> None:
        self.cluster, self.env = cluster, env
        self.installed = False
        self.starts = 0
        self.pod: dict[str, Any] | None = None
        self.previous_logs: list[str] = []

    def values(self) -> dict[str, Any]:
        from pitwall_sandbox.chart import sandbox_values

        values = sandbox_values(data_claim=self.env.get("PITWALL_DEFAULT_DATA_CLAIM"),
                                mlflow_uri=self.env.get("PITWALL_DEFAULT_MLFLOW_URI"), trainer_namespaces=[NAMESPACE],
                                extra_env={"PITWALL_TIMER_INTERVAL": "1"})
        # a pod that cannot start fails its run after this long (test_faults), not the default 10 minutes
        values.setdefault("defaults", {})["podStartTimeoutSeconds"] = 45
        if self.cluster.node_ip:  # the `slack` fixture's webhook is plain http on the node's address
            values.setdefault("alerts", {})["httpHosts"] = [self.cluster.node_ip]
        for key, variable in (("image", "PITWALL_E2E_OPERATOR_IMAGE"), ("trainer", "PITWALL_E2E_TRAINER_IMAGE")):
            if os.environ.get(variable):  # repository:tag, e.g. loaded into kind
                repository, _, tag = os.environ[variable].rpartition(":")
                image = {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}
                values.setdefault(key, {}).update({"image": image} if key == "trainer" else image)
        return values

    def start(self) -> None:
        from pitwall_sandbox import chart

        self.starts += 1
        if not self.installed and self.cluster.kubectl("get", "deployment", OPERATOR_DEPLOYMENT, "-n",
                                                       OPERATOR_NAMESPACE, check=False).returncode == 0:
            self.installed = True  # deployed already (e.g. `make -f mk/kind.mk deploy`): use that release
        if not self.installed:
            chart.install(self.cluster.kubeconfig, REPO / "charts" / "pitwall", self.values(), namespace=OPERATOR_NAMESPACE)
            self.installed = True
        else:
            self.cluster.kubectl("scale", "deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE, "--replicas=1")
        self.pod = chart.wait_operator_ready(self.cluster.kubeconfig, namespace=OPERATOR_NAMESPACE, timeout=180)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Scale to zero: SIGKILL force-deletes the pod (a crash), SIGTERM lets it shut down."""
        if self.pod is None:
            return
        self.previous_logs.append(self._pod_logs())
        self.cluster.kubectl("scale", "deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE, "--replicas=0")
        if sig == signal.SIGKILL:
            self.cluster.kubectl("delete", "pod", self.pod["metadata"]["name"], "-n", OPERATOR_NAMESPACE,
                                 "--grace-period=0", "--force", check=False)
        wait_for(lambda: not self.cluster.kubectl_json("get", "pods", "-n", OPERATOR_NAMESPACE, "-l",
                                                       OPERATOR_SELECTOR)["items"],
                 timeout=60, what="the operator pod gone")
        self.pod = None

    def _pod_logs(self) -> str:
        if self.pod is None:
            return ""
        result = self.cluster.kubectl("logs", self.pod["metadata"]["name"], "-n", OPERATOR_NAMESPACE, check=False)
        return result.stdout

    def logs(self) -> str:
        return "\n".join([*self.previous_logs, self._pod_logs()])

    def metrics(self) -> str:
        assert self.pod is not None, "the operator is not running"
        name = self.pod["metadata"]["name"]
        return self.cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{name}:9090/proxy/metrics").stdout


class Webhook:
    """A local stand-in for Slack's incoming webhook: records every JSON body posted to it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.posts: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                hook.posts.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/services/T/B/x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, text: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if text in json.dumps(p)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def e2e_env(cluster: Cluster, request: pytest.FixtureRequest) -> dict[str, str]:
    """MLflow URI and data claim the trainer pods use (the sandbox's, or the real cluster's)."""
    if cluster.is_sandbox:
        if not (cluster.sandbox.data_dir and (Path(cluster.sandbox.data_dir) / "races.csv").is_file()):
            pytest.skip("no real F1 data for the sandbox's pitwall-data claim: set PITWALL_DATA_DIR")
        uri = request.getfixturevalue("node_mlflow_server")
        return {"PITWALL_DEFAULT_MLFLOW_URI": uri, "PITWALL_DEFAULT_DATA_CLAIM": DATA_CLAIM}
    uri, claim = os.environ.get("PITWALL_E2E_MLFLOW_URI"), os.environ.get("PITWALL_E2E_DATA_CLAIM")
    if not (uri and claim):
        pytest.skip("real cluster: set PITWALL_E2E_MLFLOW_URI and PITWALL_E2E_DATA_CLAIM (reachable from pods)")
    env = {"PITWALL_DEFAULT_MLFLOW_URI": uri, "PITWALL_DEFAULT_DATA_CLAIM": claim}
    if os.environ.get("PITWALL_E2E_TRAINER_IMAGE"):
        env["PITWALL_TRAINER_IMAGE"] = os.environ["PITWALL_E2E_TRAINER_IMAGE"]
    return env


@pytest.fixture(scope="session")
def node_mlflow_server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server on the sandbox node's address, which pods reach."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-node"), host=cluster.node_ip or "127.0.0.1") as uri:
        yield uri


@pytest.fixture(scope="session")
def operator(cluster: Cluster, e2e_env: dict[str, str]) -> Iterator[OperatorDeployment]:
    """The chart's operator Deployment, running for the whole session (tests may kill and restart it)."""
    deployment = OperatorDeployment(cluster, e2e_env)
    deployment.start()
    yield deployment


@pytest.fixture(scope="session")
def slack(cluster: Cluster) -> Iterator[Webhook]:
    """Local webhook plus the Secret `pitwall-slack` (key webhook-url) the example names."""
    if not cluster.is_sandbox:
        pytest.skip("the local webhook is not reachable from a real cluster's operator pods")
    hook = Webhook(cluster.node_ip or "127.0.0.1")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pitwall-slack", "namespace": NAMESPACE},
              "type": "Opaque", "stringData": {"webhook-url": hook.url}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
    try:
        yield hook
    finally:
        hook.close()


# --- helpers used by the tests ------------------------------------------------------------------


def example_run(name: str, **spec_overrides: Any) -> dict[str, Any]:
    """examples/trainingrun.yaml, renamed, with the operator's defaults for data and MLflow.

    The example names the cluster's own claim and MLflow service; here the operator's configured
    defaults (the sandbox's pitwall-data claim and the test MLflow server) stand in for them.
    """
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    doc["metadata"]["namespace"] = NAMESPACE
    spec = doc["spec"]
    spec["data"].pop("source", None)
    spec["mlflow"].pop("trackingUri", None)
    spec.pop("resources", None)  # 4 CPUs / 8Gi do not fit a test node
    spec.update(spec_overrides)
    return doc


def apply(cluster: Cluster, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def get_run(cluster: Cluster, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", "trainingrun", name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_state(cluster: Cluster, name: str, *states: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        run = get_run(cluster, name)
        return run if run and (run.get("status") or {}).get("state") in states else None

    try:
        return wait_for(check, timeout=timeout, interval=0.5, what=f"TrainingRun {name} in {states}")
    except AssertionError as exc:
        run = get_run(cluster, name)
        raise AssertionError(f"{exc}; status now: {json.dumps((run or {}).get('status'), indent=1)[:3000]}") from None


def condition(run: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in run["status"].get("conditions") or [] if c["type"] == type_), None)


def children(cluster: Cluster, kind: str, run: str) -> list[dict[str, Any]]:
    """Objects of `kind` labelled as children of `run`."""
    result = cluster.kubectl("get", kind, "-n", NAMESPACE, "-l", f"pitwall.io/training-run={run}", "-o", "json")
    return json.loads(result.stdout)["items"]


def events_for(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    items = cluster.kubectl_json("get", "events", "-n", NAMESPACE)["items"]
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


def delete_run(cluster: Cluster, name: str) -> None:
    cluster.kubectl("delete", "trainingrun", name, "-n", NAMESPACE, "--wait=false", check=False)
