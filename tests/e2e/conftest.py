"""e2e fixtures: the real operator (`kopf run`) as a subprocess against the `cluster` fixture,
a real MLflow server, a local Slack webhook, and kubectl helpers.

Needs the plugins `tests.plugins.cluster` and `tests.plugins.mlflow_server` (tests/conftest.py).
On a real cluster (--kubeconfig) pods cannot reach 127.0.0.1: give PITWALL_E2E_MLFLOW_URI (an
MLflow the pods reach) and PITWALL_E2E_DATA_CLAIM (a PVC with the Ergast CSVs), or the tests skip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.plugins.cluster import Cluster, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "trainingrun.yaml"
NAMESPACE = "default"
RUN_TIMEOUT = float(os.environ.get("PITWALL_E2E_RUN_TIMEOUT", "600"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    """`python -m kopf run -m pitwall_operator --standalone ...` as its own process group."""

    def __init__(self, kubeconfig: Path, env: dict[str, str], log_dir: Path) -> None:
        self.kubeconfig, self.env, self.log_dir = kubeconfig, env, log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.liveness_port = free_port()
        self.metrics_port = free_port()

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, **extra_env: str) -> None:
        self.starts += 1
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig),
               "PITWALL_METRICS_PORT": str(self.metrics_port), "PITWALL_TIMER_INTERVAL": "1", **extra_env}
        command = [sys.executable, "-m", "kopf", "run", "-m", "pitwall_operator", "--standalone",
                   "--namespace", NAMESPACE, "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=REPO, start_new_session=True)
        wait_for(self.healthy, timeout=60, interval=0.2, what=f"operator liveness (log: {self.log_path})")

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"operator exited: {self.logs()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (graceful) or SIGKILL (a crash) the operator's whole process group."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()


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
        uri = request.getfixturevalue("mlflow_server")
        return {"PITWALL_DEFAULT_MLFLOW_URI": uri, **cluster.sandbox.operator_env()}
    uri, claim = os.environ.get("PITWALL_E2E_MLFLOW_URI"), os.environ.get("PITWALL_E2E_DATA_CLAIM")
    if not (uri and claim):
        pytest.skip("real cluster: set PITWALL_E2E_MLFLOW_URI and PITWALL_E2E_DATA_CLAIM (reachable from pods)")
    env = {"PITWALL_DEFAULT_MLFLOW_URI": uri, "PITWALL_DEFAULT_DATA_CLAIM": claim}
    if os.environ.get("PITWALL_E2E_TRAINER_IMAGE"):
        env["PITWALL_TRAINER_IMAGE"] = os.environ["PITWALL_E2E_TRAINER_IMAGE"]
    return env


@pytest.fixture(scope="session")
def operator(cluster: Cluster, e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The real operator, running for the whole session (tests may kill and restart it)."""
    proc = OperatorProcess(cluster.kubeconfig, e2e_env, tmp_path_factory.mktemp("operator"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def slack(cluster: Cluster) -> Iterator[Webhook]:
    """Local webhook plus the Secret `pitwall-slack` (key webhook-url) the example names."""
    if not cluster.is_sandbox:
        pytest.skip("the local webhook is not reachable from a real cluster's operator pods")
    hook = Webhook()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pitwall-slack", "namespace": NAMESPACE},
              "type": "Opaque", "stringData": {"webhook-url": hook.url}}
    cluster.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(secret))
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
    args = ["apply", "-f", "-"] + (["--validate=false"] if cluster.is_sandbox else [])
    cluster.kubectl(*args, input=yaml.safe_dump(doc))


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
