"""Jobs and RayClusters in the sandbox run as real local processes with Job-controller status."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import psutil
import pytest
from kubernetes import client

from tests.plugins.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration
IMAGE = "python:3.11-slim"


def job_manifest(name: str, command: list[str], **spec: object) -> dict:
    container = {"name": "main", "image": IMAGE, "command": command}
    container.update(spec.pop("container", {}))  # type: ignore[arg-type]
    pod = {"restartPolicy": "Never", "containers": [container]}
    pod.update(spec.pop("pod", {}))  # type: ignore[arg-type]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": pod}, **spec}}


def apply(cluster: Cluster, namespace: str, *objs: dict) -> None:
    for obj in objs:
        cluster.kubectl("apply", "--validate=false", "-n", namespace, "-f", "-", input=json.dumps(obj))


def job_status(cluster: Cluster, namespace: str, name: str) -> dict:
    return cluster.kubectl_json("get", "job", name, "-n", namespace).get("status") or {}


def wait_condition(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict:
    """The Job's status once it has a true Complete or Failed condition."""
    def done() -> dict | None:
        status = job_status(cluster, namespace, name)
        types = {c["type"] for c in status.get("conditions", []) if c["status"] == "True"}
        return status if types & {"Complete", "Failed"} else None

    return wait_for(done, timeout=timeout, interval=0.3, what=f"job {name} to finish")


def conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c.get("reason", "") for c in status.get("conditions", []) if c["status"] == "True"}


def pods_of(cluster: Cluster, namespace: str, job: str) -> list[dict]:
    return cluster.kubectl_json("get", "pods", "-n", namespace, "-l", f"job-name={job}")["items"]


def marked(token: str) -> list[psutil.Process]:
    """Live local processes whose command line carries `token` (sandbox pods are local processes)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(token in part for part in proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_job_that_succeeds_completes_with_logs_and_termination_message(cluster, cluster_namespace):
    """print(1) → Complete; the pod's log and termination message reach the API like a kubelet's."""
    script = "print(1); open('/dev/termination-log', 'w').write('{\"ok\": true}')"
    apply(cluster, cluster_namespace, job_manifest("ok", ["python", "-c", script]))
    status = wait_condition(cluster, cluster_namespace, "ok")
    assert conditions(status) == {"SuccessCriteriaMet": "CompletionsReached", "Complete": "CompletionsReached"}
    assert status["succeeded"] == 1 and status["completionTime"] and status["startTime"]
    assert cluster.kubectl("logs", "job/ok", "-n", cluster_namespace).stdout.strip() == "1"
    (pod,) = pods_of(cluster, cluster_namespace, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and json.loads(terminated["message"]) == {"ok": True}


def test_job_that_fails_is_retried_until_backoff_limit(cluster, cluster_namespace):
    """exit 3 with backoffLimit 2 → three pods, then Failed/BackoffLimitExceeded."""
    apply(cluster, cluster_namespace, job_manifest("bad", ["sh", "-c", "echo oops; exit 3"], backoffLimit=2))
    status = wait_condition(cluster, cluster_namespace, "bad")
    assert conditions(status)["Failed"] == "BackoffLimitExceeded"
    assert status["failed"] == 3
    pods = pods_of(cluster, cluster_namespace, "bad")
    assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Failed"}
    codes = {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods}
    assert codes == {3}


def test_pod_failure_policy_fails_fast_on_exit_code_2(cluster, cluster_namespace):
    """The trainer's exit code 2 (bad input) must not be retried: FailJob rule, one pod only."""
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In",
                                                              "values": [2]}}]}
    apply(cluster, cluster_namespace, job_manifest("cfg", ["sh", "-c", "exit 2"], backoffLimit=5,
                                                   podFailurePolicy=policy))
    status = wait_condition(cluster, cluster_namespace, "cfg")
    assert conditions(status)["Failed"] == "PodFailurePolicy"
    assert len(pods_of(cluster, cluster_namespace, "cfg")) == 1


def test_job_exceeding_its_deadline_fails_and_its_process_is_killed(cluster, cluster_namespace):
    token = uuid.uuid4().hex
    apply(cluster, cluster_namespace, job_manifest("slow", ["python", "-c", "import time; time.sleep(60)", token],
                                                   activeDeadlineSeconds=2, backoffLimit=3))
    status = wait_condition(cluster, cluster_namespace, "slow", timeout=30)
    assert conditions(status)["Failed"] == "DeadlineExceeded"
    if cluster.is_sandbox:
        wait_for(lambda: not marked(token), timeout=10, what="the deadline-killed process to exit")


def test_deleting_a_job_kills_its_process(cluster, cluster_namespace):
    sandbox = cluster.require_sandbox("inspects local processes")
    token = uuid.uuid4().hex
    apply(cluster, cluster_namespace, job_manifest("long", ["python", "-c", "import time; time.sleep(60)", token]))
    wait_for(lambda: marked(token), timeout=20, what="the job's process to start")
    cluster.kubectl("delete", "job", "long", "-n", cluster_namespace)
    wait_for(lambda: not marked(token), timeout=15, what="the job's process to be killed")
    wait_for(lambda: not pods_of(cluster, cluster_namespace, "long"), timeout=15, what="pods to be collected")
    assert sandbox.violations == []


def test_suspended_job_starts_no_pod_until_resumed(cluster, cluster_namespace):
    apply(cluster, cluster_namespace, job_manifest("held", ["python", "-c", "print(2)"], suspend=True))
    wait_for(lambda: conditions(job_status(cluster, cluster_namespace, "held")).get("Suspended"),
             timeout=20, what="the Suspended condition")
    assert pods_of(cluster, cluster_namespace, "held") == []
    cluster.kubectl("patch", "job", "held", "-n", cluster_namespace, "--type", "merge", "-p",
                    '{"spec": {"suspend": false}}')
    assert "Complete" in conditions(wait_condition(cluster, cluster_namespace, "held"))


def test_env_and_volumes_reach_the_process(cluster, cluster_namespace, tmp_path: Path):
    """Secret/ConfigMap env, fieldRef, ConfigMap files and the pitwall-data claim as host folders."""
    sandbox = cluster.require_sandbox("reads the claim's host folder")
    claim_dir = sandbox.claim_dirs()["pitwall-data"]
    out_name = f"out-{uuid.uuid4().hex[:6]}.txt"
    script = ("import os, pathlib; "
              "text = pathlib.Path('/etc/cfg/greeting').read_text(); "
              f"pathlib.Path('/data/{out_name}').write_text("
              "'|'.join([text, os.environ['TOKEN'], os.environ['MODE'], os.environ['POD_NAME']]))")
    apply(cluster, cluster_namespace,
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
           "data": {"greeting": "hello", "mode": "fast"}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
           "data": {"token": base64.b64encode(b"s3cret").decode()}},
          {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pitwall-data"},
           "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
           {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    mounts = [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "data", "mountPath": "/data"}]
    volumes = [{"name": "cfg", "configMap": {"name": "cfg"}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "pitwall-data"}}]
    apply(cluster, cluster_namespace, job_manifest("io", ["python", "-c", script],
                                                   container={"env": env, "volumeMounts": mounts},
                                                   pod={"volumes": volumes}))
    status = wait_condition(cluster, cluster_namespace, "io")
    assert "Complete" in conditions(status), cluster.kubectl("logs", "job/io", "-n", cluster_namespace).stdout
    (pod,) = pods_of(cluster, cluster_namespace, "io")
    written = (claim_dir / out_name).read_text()
    (claim_dir / out_name).unlink()
    assert written == f"hello|s3cret|fast|{pod['metadata']['name']}"
    assert sandbox.violations == []


def test_stopping_the_sandbox_leaves_no_process(tmp_path: Path):
    """Every pod process dies with the sandbox (context-manager exit), none is left behind."""
    from pitwall_operator.sandbox import Sandbox

    token = uuid.uuid4().hex
    with Sandbox(state_dir=tmp_path, run_rayclusters=False) as sandbox:
        api = client.BatchV1Api(_client(sandbox.kubeconfig))
        api.create_namespaced_job("default", job_manifest("forever", ["python", "-c", "import time; time.sleep(120)",
                                                                      token]))
        wait_for(lambda: marked(token), timeout=20, what="the job's process to start")
    assert marked(token) == []


def _client(kubeconfig: Path) -> client.ApiClient:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.mark.slow
def test_raycluster_gets_ready_with_a_head_a_ray_client_can_attach_to(cluster, cluster_namespace):
    """A RayCluster with one worker → state ready, head address; `ray.init` there sees both nodes."""
    import os
    import subprocess
    import sys

    sandbox = cluster.require_sandbox("attaches a local Ray driver to the cluster's head")
    template = {"spec": {"containers": [{"name": "ray", "image": "rayproject/ray:2.60.0"}]}}
    apply(cluster, cluster_namespace, {
        "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "rc"},
        "spec": {"rayVersion": "2.60.0", "headGroupSpec": {"rayStartParams": {}, "template": template},
                 "workerGroupSpecs": [{"groupName": "w", "replicas": 1, "minReplicas": 0, "maxReplicas": 2,
                                       "rayStartParams": {}, "template": template}]}})

    def ready() -> dict | None:
        status = cluster.kubectl_json("get", "raycluster", "rc", "-n", cluster_namespace).get("status") or {}
        return status if status.get("state") == "ready" else None

    status = wait_for(ready, timeout=150, interval=1, what="the RayCluster to be ready")
    assert status["readyWorkerReplicas"] == 1 and status["head"]["serviceIP"]
    address = f"{status['head']['serviceIP']}:{status['endpoints']['gcs-server']}"
    probe = f"import ray; ray.init(address='{address}'); print(int(ray.cluster_resources()['CPU']))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert result.stdout.strip().splitlines()[-1:] == ["2"], result.stderr[-2000:]
    cluster.kubectl("delete", "raycluster", "rc", "-n", cluster_namespace)
    gcs_port = status["endpoints"]["gcs-server"]
    wait_for(lambda: not marked(gcs_port), timeout=60, what="the Ray processes to stop")
    assert sandbox.violations == []


def test_cli_up_serves_kubectl_and_sigterm_stops_everything(tmp_path: Path):
    """`pitwall-sandbox up` in the foreground: kubectl works, SIGTERM leaves no process behind."""
    import signal
    import subprocess
    import sys

    token = uuid.uuid4().hex
    kubeconfig, data = tmp_path / "kubeconfig", tmp_path / "data"
    data.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pitwall_operator.sandbox.cli", "up", "--kubeconfig",
                             str(kubeconfig), "--data-dir", str(data), "--no-operator"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(kubeconfig.exists, timeout=30, what="the kubeconfig to be written")
        cli = Cluster(kubeconfig=kubeconfig)
        assert cli.kubectl_json("get", "pvc", "pitwall-data")["status"]["phase"] == "Bound"
        apply(cli, "default", job_manifest("forever", ["python", "-c", "import time; time.sleep(120)", token]))
        wait_for(lambda: marked(token), timeout=20, what="the job's process to start")
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert "sandbox stopped" in output
    assert marked(token) == []
