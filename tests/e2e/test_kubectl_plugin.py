"""`kubectl pitwall` against the cluster: runs whose status the test writes through the status
subresource (as the operator and trainer would), the dashboard's frame, its watch (a live screen
in tmux that changes when a status does), logs of a real pod, describe, and the error messages.

The operator must not reconcile these runs: when its Deployment is there (an earlier e2e module
installed it) it is stopped for this module and started again afterwards.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO, example_run
from tests.plugins.cluster import Cluster, wait_for

pytestmark = [pytest.mark.e2e]

GROUP, VERSION = "pitwall.io", "v1alpha1"
WIDTH = 160
POD_OUTPUT = "hello from the trainer pod"


def plugin() -> list[str]:
    """The installed `kubectl-pitwall` next to this interpreter, else the module."""
    found = shutil.which("kubectl-pitwall", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "pitwall_kubectl"]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Setup:
    def __init__(self, cluster: Cluster, namespace: str) -> None:
        from kubernetes import client

        self.cluster, self.namespace = cluster, namespace
        self.api = cluster.api_client()
        self.custom, self.core, self.batch = client.CustomObjectsApi(self.api), client.CoreV1Api(self.api), client.BatchV1Api(self.api)
        self.stored: dict[str, dict[str, Any]] = {}  # each run as the API server kept its status

    def plugin(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": str(WIDTH), "KUBECONFIG": str(self.cluster.kubeconfig)}
        return subprocess.run([*plugin(), *args, "-n", self.namespace], capture_output=True, text=True,
                              timeout=timeout, env=env)

    def create_run(self, name: str, **spec: Any) -> dict[str, Any]:
        doc = example_run(name, **spec)
        doc["metadata"]["namespace"] = self.namespace
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "trainingruns", doc)

    def write_status(self, name: str, status: dict[str, Any], plural: str = "trainingruns") -> dict[str, Any]:
        """Merge-patch the status subresource; returns the object as stored (fields the CRD does not know are pruned)."""
        return self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, plural, name,
                                                                 {"status": status})


@pytest.fixture(scope="module")
def setup(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Setup]:
    """Runs whose status this module writes by hand: the session's operator is stopped meanwhile
    (it would write over them), through its fixture so later modules keep a true record of its pod."""
    operator = request.getfixturevalue("operator")
    operator.stop()
    namespace = f"kp-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0,
             timeout=60, what=f"the default ServiceAccount of {namespace}")
    s = Setup(cluster, namespace)
    try:
        _populate(s)
        yield s
    finally:
        for kind in ("trainingruns", "retrainpolicies", "jobs"):
            cluster.kubectl("delete", kind, "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        operator.start()


def _populate(s: Setup) -> None:
    """A tuning run at 40%, a training run, a finished run, a run not started, a policy, an Event and a Job's pod."""
    tuning = s.create_run("kp-tuning", algorithm="xgboost",
                          resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}})
    s.stored["kp-tuning"] = s.write_status("kp-tuning", {
        "state": "Running", "startTime": now_iso(), "jobName": "kp-tuning-job",
        "conditions": [{"type": "Running", "status": "True", "reason": "Tuning", "message": "tuning with optuna",
                        "lastTransitionTime": now_iso()}],
        "progress": {"phase": "Tuning", "percent": 40, "message": "trial 12/50, best 0.612", "currentMetric": 0.5987,
                     "bestMetric": 0.6121, "metricName": "top1_accuracy", "etaSeconds": 190, "updatedAt": now_iso()},
        "resources": {"cpuCores": 1.0, "memoryBytes": 2 * 2**30, "peakCpuCores": 1.5, "peakMemoryBytes": 3 * 2**30,
                      "sampledAt": now_iso()},
    })
    s.create_run("kp-training", model="quali_order")
    s.stored["kp-training"] = s.write_status("kp-training", {
        "state": "Running", "startTime": now_iso(),
        "progress": {"phase": "Training", "percent": 75, "message": "fold 3/4", "etaSeconds": 42},
    })
    s.create_run("kp-done")
    s.stored["kp-done"] = s.write_status("kp-done", {
        "state": "Succeeded", "startTime": now_iso(), "completionTime": now_iso(),
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Completed", "message": "trained and evaluated",
                        "lastTransitionTime": now_iso()}],
        "metrics": {"top1_accuracy": 0.6, "log_loss": 2.1},
        "baselines": {"pole_sitter.top1_accuracy": 0.55, "pole_sitter.log_loss": 1.9, "grid_order.top1_accuracy": 0.7},
        "promotion": {"promoted": True, "alias": "champion", "version": "4", "previousVersion": "3",
                      "reason": "top1_accuracy 0.600 > 0.580 + 0.000"},
        "mlflow": {"runUrl": "http://mlflow.example/#/experiments/1/runs/abc", "modelUri": "models:/pitwall-race_winner/4"},
    })
    s.create_run("kp-waiting")  # no status at all: queued

    policy = yaml.safe_load((REPO / "examples" / "retrainpolicy.yaml").read_text())
    policy["metadata"] = {"name": "kp-weekly", "namespace": s.namespace}
    policy["spec"]["template"]["spec"].pop("resources", None)
    s.custom.create_namespaced_custom_object(GROUP, VERSION, s.namespace, "retrainpolicies", policy)
    s.write_status("kp-weekly", {"lastCheckTime": now_iso(), "lastSuccessfulRun": "kp-done",
                                 "champion": {"version": "4", "metric": "top1_accuracy", "value": 0.6}},
                   plural="retrainpolicies")

    s.core.create_namespaced_event(s.namespace, {
        "metadata": {"generateName": "kp-tuning."},
        "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun", "name": "kp-tuning",
                           "namespace": s.namespace, "uid": tuning["metadata"]["uid"]},
        "reason": "TrialCompleted", "message": "trial 12 finished: 0.598", "type": "Normal",
        "firstTimestamp": now_iso(), "lastTimestamp": now_iso(), "count": 1,
        "source": {"component": "pitwall-test"},
    })

    # a real pod for `logs`: the Job named in the tuning run's status.jobName
    s.batch.create_namespaced_job(s.namespace, {
        "metadata": {"name": "kp-tuning-job"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "trainer", "image": "python:3.11-slim",
            "command": ["python", "-c", f"print({POD_OUTPUT!r}, flush=True); print('trial 12/50')"],
        }]}}},
    })


def panel(frame: str, name: str) -> str:
    """The lines of the dashboard panel titled with `name`: from its top border to its bottom one."""
    lines = frame.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"╭─ {name} "))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return "\n".join(lines[start:end + 1])


def stored_progress(s: Setup, name: str) -> dict[str, Any]:
    return s.stored[name]["status"].get("progress") or {}


# --- the dashboard ------------------------------------------------------------------------------------


def test_once_prints_counts_and_a_panel_per_active_run(setup: Setup) -> None:
    result = setup.plugin("dashboard", "--once")
    assert result.returncode == 0, result.stderr
    frame = result.stdout
    print(f"\n--- kubectl pitwall dashboard --once ---\n{frame}")
    header = next(line for line in frame.splitlines() if "Active" in line)
    for expected in ("Active 2", "Queued 1", "Suspended 0", "Succeeded today 1", "Failed today 0"):
        assert expected in header, header
    assert "Running" in panel(frame, "kp-tuning") and "Running" in panel(frame, "kp-training")
    assert "Pending" in panel(frame, "kp-waiting")
    assert "kp-done" not in frame.split("RetrainPolicies")[0], "a finished run gets no panel"
    tuning = panel(frame, "kp-tuning")
    assert "40%" in tuning and "trial 12/50, best 0.612" in tuning
    assert "current 0.599" in tuning and "best 0.612" in tuning and "3m 10s" in tuning
    assert "TrialCompleted: trial 12 finished: 0.598" in tuning
    if stored_progress(setup, "kp-tuning").get("phase"):  # fields of newer CRDs: shown when the API keeps them
        assert "Tuning" in tuning and "top1_accuracy" in tuning
    if setup.stored["kp-tuning"]["status"].get("resources"):
        assert "1 / 2 cores (limit)" in tuning and "2Gi / 4Gi (limit)" in tuning
    else:
        assert "CPU" in tuning and "—" in tuning
    training = panel(frame, "kp-training")
    assert "75%" in training and "fold 3/4" in training and "42s" in training
    policies = frame[frame.index("RetrainPolicies"):]
    row = next(line for line in policies.splitlines() if "kp-weekly" in line)
    assert "race_winner" in row and "v4" in row and "kp-done" in row and "check in" in row


def test_all_namespaces_names_each_runs_namespace(setup: Setup) -> None:
    result = setup.plugin("dashboard", "--once", "-A")
    assert result.returncode == 0, result.stderr
    assert "all namespaces" in result.stdout
    assert "40%" in panel(result.stdout, f"{setup.namespace}/kp-tuning")
    assert f"{setup.namespace}/kp-weekly" in result.stdout


def test_live_dashboard_follows_the_watch(setup: Setup, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    session = f"kp-{uuid.uuid4().hex[:6]}"
    command = " ".join(shlex.quote(a) for a in [*plugin(), "dashboard", "--kubeconfig", str(setup.cluster.kubeconfig),
                                                "-n", setup.namespace])
    errors = tmp_path / "stderr"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                    f"{command} 2>{shlex.quote(str(errors))}; sleep 30"], check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def tuning_line(text: str, needle: str) -> str | None:
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if "kp-tuning" in line), None)
        if start is None:
            return None
        return next((line for line in lines[start:start + 12] if needle in line), None)

    try:
        line = wait_for(lambda: tuning_line(screen(), "trial 12/50"), timeout=30, interval=0.2,
                        what="the dashboard showing kp-tuning at 40%")
        assert "40%" in line, line
        setup.write_status("kp-tuning", {"progress": {"percent": 60, "message": "trial 30/50, best 0.620",
                                                      "bestMetric": 0.62}})
        start = time.monotonic()
        line = wait_for(lambda: tuning_line(screen(), "trial 30/50"), timeout=5, interval=0.1,
                        what="the live screen changed to 60% after the status changed")
        assert "60%" in line, line
        print(f"\nscreen changed {time.monotonic() - start:.2f}s after the status patch")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nscreen:\n{screen()}\nstderr: {errors.read_text() if errors.exists() else ''}") from None
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# --- logs, describe, errors ------------------------------------------------------------------------


def test_logs_prints_the_pod_of_the_runs_job(setup: Setup) -> None:
    def finished() -> bool:
        pods = setup.core.list_namespaced_pod(setup.namespace, label_selector="job-name=kp-tuning-job").items
        return bool(pods) and pods[0].status.phase in ("Succeeded", "Failed")

    wait_for(finished, timeout=120, interval=0.5, what="the Job's pod finished")
    result = setup.plugin("logs", "kp-tuning")
    assert result.returncode == 0, result.stderr
    assert POD_OUTPUT in result.stdout and "trial 12/50" in result.stdout
    followed = setup.plugin("logs", "kp-tuning", "-f", "-c", "trainer", timeout=60)
    assert followed.returncode == 0 and POD_OUTPUT in followed.stdout, followed.stderr

    waiting = setup.plugin("logs", "kp-waiting")
    assert waiting.returncode == 1
    assert waiting.stderr.strip() == "error: TrainingRun kp-waiting has no pod yet: state Pending, no Job created yet"


def test_describe_prints_metrics_against_baselines(setup: Setup) -> None:
    result = setup.plugin("describe", "kp-done")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    accuracy = next(line for line in text.splitlines() if "top1_accuracy │" in line)
    assert "0.600" in accuracy and "0.550 ✓ beats" in accuracy and "0.700 ✗ loses" in accuracy
    log_loss = next(line for line in text.splitlines() if "log_loss" in line)
    assert "lower" in log_loss and "1.900 ✗ loses" in log_loss
    assert "Completed" in text and "trained and evaluated" in text
    assert "promoted" in text and "v4" in text and "v3" in text
    assert "http://mlflow.example/#/experiments/1/runs/abc" in text and "models:/pitwall-race_winner/4" in text


def test_unknown_run_and_unreachable_cluster_are_one_line_errors(setup: Setup, tmp_path: Path) -> None:
    missing = setup.plugin("describe", "kp-nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: TrainingRun kp-nope not found in namespace {setup.namespace}"
    assert setup.plugin("logs", "kp-nope").stderr.strip() == missing.stderr.strip()

    config = yaml.safe_load(Path(setup.cluster.kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    result = subprocess.run([*plugin(), "dashboard", "--once", "--kubeconfig", str(dead)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the cluster at https://127.0.0.1:1"), result.stderr
    assert "Traceback" not in result.stderr
