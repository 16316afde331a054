"""The fault suite: TrainingRuns under injected faults on the real control plane.

While several runs train at once, the API server refuses a share of the operator's writes with
409 and 500 (an admission webhook, tests/plugins/faults.py), the operator is killed (SIGKILL) and
started again, a trainer pod is killed, the runs' MLflow server is stopped and started again, and
(on the sandbox) the API server itself restarts, dropping every watch.
Every run must end Succeeded, with one Job of its own, one model version in MLflow that its status
names, and its metrics: nothing lost. The counts are printed (`-s` shows them; `-rA` keeps them).

PITWALL_FAULT_SEED replays a schedule (the seed is printed); PITWALL_FAULT_RUNS sets the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    NAMESPACE,
    OPERATOR_NAMESPACE,
    RUN_TIMEOUT,
    apply,
    children,
    delete_run,
    example_run,
    get_run,
)
from tests.plugins.cluster import Cluster, wait_for
from tests.plugins.faults import FaultWebhook
from tests.plugins.mlflow_server import running_mlflow_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]

RUNS = int(os.environ.get("PITWALL_FAULT_RUNS", "4"))
SEED = int(os.environ.get("PITWALL_FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:pitwall-operator"
MLFLOW_OUTAGE = 15.0  # seconds: shorter than the Job's retries (10 s, 20 s, 40 s back-off)


class RestartableMlflow:
    """A real MLflow server that can be stopped and started again on the same port and store."""

    def __init__(self, root: Path, host: str) -> None:
        self.root, self.host, self.port = root, host, 0
        self._stack: contextlib.ExitStack | None = None
        self.uri = ""

    def start(self) -> None:
        self._stack = contextlib.ExitStack()
        self.uri = self._stack.enter_context(running_mlflow_server(self.root, host=self.host, port=self.port))
        self.port = int(self.uri.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def versions(self, model: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"filter": f"name='{model}'", "max_results": 1000})
        with urllib.request.urlopen(f"{self.uri}/api/2.0/mlflow/model-versions/search?{query}", timeout=10) as r:
            return json.loads(r.read()).get("model_versions") or []


@pytest.fixture
def mlflow(cluster: Cluster, tmp_path: Path) -> Iterator[RestartableMlflow]:
    server = RestartableMlflow(tmp_path / "mlflow", cluster.node_ip or "127.0.0.1")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_faults(cluster: Cluster, operator: Any) -> Iterator[FaultWebhook]:
    if not cluster.is_sandbox and not cluster.node_ip:
        pytest.skip("the fault webhook runs on this machine: the cluster's API server must reach it")
    hook = FaultWebhook(OPERATOR_USER, host=cluster.node_ip or "127.0.0.1", rate=0.25, seed=SEED)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(hook.configuration()))
    yield hook
    hook.active = False
    cluster.kubectl("delete", "validatingwebhookconfiguration", hook.configuration()["metadata"]["name"], check=False)
    hook.close()


def chaos_schedule(rng: random.Random, sandbox: bool) -> list[tuple[float, str]]:
    """(seconds after the runs were applied, fault): one of each, at random points of the runs.

    On the sandbox the API server itself is restarted too: every watch and connection drops.
    """
    faults = [(rng.uniform(3, 25), "kill-operator"), (rng.uniform(5, 35), "kill-trainer"),
              (rng.uniform(8, 30), "stop-mlflow"), (rng.uniform(20, 45), "kill-operator")]
    if sandbox:
        faults.append((rng.uniform(10, 40), "restart-apiserver"))
    return sorted(faults)


def trainer_pods(cluster: Cluster, runs: list[str]) -> list[dict[str, Any]]:
    pods = [p for run in runs for p in children(cluster, "pods", run)]
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def test_every_run_ends_right_under_faults_and_nothing_is_lost(cluster, operator, api_faults, mlflow):
    rng = random.Random(SEED)
    model = f"faults-{uuid.uuid4().hex[:6]}"
    names = [f"fault-{i}-{uuid.uuid4().hex[:4]}" for i in range(RUNS)]
    counts: Counter[str] = Counter()
    api_faults.active = True
    for name in names:
        doc = example_run(name)
        doc["spec"]["mlflow"] = {**doc["spec"].get("mlflow", {}), "trackingUri": mlflow.uri, "registeredModelName": model}
        apply(cluster, doc)
    started = time.monotonic()
    actions: dict[str, Callable[[], None]] = {
        "kill-operator": lambda: (operator.stop(signal.SIGKILL), operator.start()),
        "kill-trainer": lambda: kill_a_trainer(cluster, names, rng),
        "stop-mlflow": lambda: (mlflow.stop(), time.sleep(MLFLOW_OUTAGE), mlflow.start()),
        "restart-apiserver": lambda: cluster.sandbox.control_plane.restart("kube-apiserver"),
    }
    for at, fault in chaos_schedule(rng, cluster.is_sandbox):
        time.sleep(max(0.0, at - (time.monotonic() - started)))
        actions[fault]()
        counts[fault] += 1

    def ended() -> list[dict[str, Any]] | None:
        runs = [get_run(cluster, name) for name in names]
        return runs if all(((r or {}).get("status") or {}).get("state") in ("Succeeded", "Failed") for r in runs) else None

    try:
        runs = wait_for(ended, timeout=RUN_TIMEOUT, interval=2, what="every run to end")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout} (seed {SEED}, faults {dict(counts)}, API {dict(api_faults.injected)}):\n"
                             + "\n".join(describe(cluster, name) for name in names)
                             + "\noperator log tail:\n" + operator.logs()[-6000:]) from None
    finally:
        api_faults.active = False
    counts["api-faults"] = api_faults.total()
    versions = mlflow.versions(model)
    lost, problems = 0, []
    for run in runs:
        name, status = run["metadata"]["name"], run["status"]
        if status["state"] != "Succeeded":
            problems.append(f"{name}: {status['state']}: {json.dumps(status.get('conditions'))[:600]}")
            continue
        version = (status.get("mlflow") or {}).get("modelVersion")
        if not (status.get("metrics") and version and [v for v in versions if v["version"] == version]):
            lost += 1
            problems.append(f"{name}: result lost (metrics {status.get('metrics')}, version {version})")
        jobs = children(cluster, "jobs", name)
        if len(jobs) != 1 or [r["uid"] for r in jobs[0]["metadata"]["ownerReferences"]] != [run["metadata"]["uid"]]:
            problems.append(f"{name}: {len(jobs)} Jobs, owners {[j['metadata'].get('ownerReferences') for j in jobs]}")
    mine = sorted((run["status"].get("mlflow") or {}).get("modelVersion") or "" for run in runs)
    if sorted(v["version"] for v in versions) != mine:  # one version per run, none extra
        problems.append(f"model versions in MLflow {sorted(v['version'] for v in versions)} != the runs' {mine}")
    report = (f"fault suite (seed {SEED}): {len(runs)} runs, {sum(counts.values())} faults injected "
              f"({dict(sorted(counts.items()))}; API by request: {dict(api_faults.injected)}), "
              f"lost results: {lost}, succeeded: {sum(r['status']['state'] == 'Succeeded' for r in runs)}")
    print(report)
    assert not problems, report + "\n" + "\n".join(problems)
    assert api_faults.total() > 0 and counts["kill-trainer"] >= 1, report  # the faults really happened
    for name in names:
        delete_run(cluster, name)


def kill_a_trainer(cluster: Cluster, runs: list[str], rng: random.Random) -> None:
    """Delete one running trainer pod (its Job starts another); waits a little for one to run."""
    pods = wait_for(lambda: trainer_pods(cluster, runs), timeout=60, interval=1, what="a running trainer pod")
    pod = rng.choice(pods)
    cluster.kubectl("delete", "pod", pod["metadata"]["name"], "-n", NAMESPACE, "--wait=false")


def describe(cluster: Cluster, name: str) -> str:
    """A run's state, conditions and children: what a timeout report needs."""
    run = get_run(cluster, name) or {}
    status = run.get("status") or {}
    jobs = [(j["metadata"]["name"], j.get("status")) for j in children(cluster, "jobs", name)]
    pods = [(p["metadata"]["name"], (p.get("status") or {}).get("phase")) for p in children(cluster, "pods", name)]
    return (f"{name}: state {status.get('state')}, conditions {json.dumps(status.get('conditions'))[:800]}, "
            f"progress {status.get('progress')}, jobs {jobs}, pods {pods}")
