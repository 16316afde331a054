"""Faults on the real control plane: a name reused while the old run's children remain, a Job
deleted while nobody watched, a child the API server refuses. Each run ends in the right state,
with its own children and nothing lost."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    NAMESPACE,
    apply,
    children,
    condition,
    delete_run,
    events_for,
    example_run,
    get_run,
    wait_state,
)
from tests.plugins.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def unique(base: str) -> str:
    return f"{base}-{uuid.uuid4().hex[:5]}"


def predecessors_job(run: str) -> dict[str, Any]:
    """What a deleted run of the same name leaves behind (orphaned, or not yet collected): its
    Job, labelled as the operator labels a run's Job, that completes with a result not this run's."""
    forged = json.dumps({"ok": True, "exitCode": 0, "metrics": {"top1_accuracy": 0.99},
                         "mlflow": {"modelVersion": "999"}, "promotion": {"promoted": True}})
    labels = {"app.kubernetes.io/managed-by": "pitwall-operator", "pitwall.io/training-run": run,
              "app.kubernetes.io/component": "trainer"}
    script = f"print({forged!r})"
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{run}-train", "namespace": NAMESPACE,
                                                                  "labels": labels},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "trainer", "image": "pitwall-trainer:0.1.0", "command": ["python", "-c", script],
                                "terminationMessagePolicy": "FallbackToLogsOnError"}]}}}}


def test_a_recreated_run_never_reports_its_predecessors_job(cluster, operator):
    run_name = unique("recreated")
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(predecessors_job(run_name)))
    (old,) = wait_for(lambda: children(cluster, "jobs", run_name), timeout=60, what="the predecessor's Job")
    apply(cluster, example_run(run_name))
    run = wait_state(cluster, run_name, "Succeeded", "Failed")
    assert run["status"]["state"] == "Succeeded", run["status"]
    assert run["status"]["mlflow"]["modelVersion"] != "999" and run["status"]["metrics"].get("top1_accuracy") != 0.99
    (job,) = children(cluster, "jobs", run_name)
    assert job["metadata"]["uid"] != old["metadata"]["uid"]
    assert [ref["uid"] for ref in job["metadata"]["ownerReferences"]] == [run["metadata"]["uid"]]
    # its pod ran as the run's own account, which could write the run's status (progress came back)
    (pod,) = [p for p in children(cluster, "pods", run_name) if p["metadata"]["labels"].get("job-name") == f"{run_name}-train"]
    assert pod["spec"]["serviceAccountName"] == f"{run_name}-trainer"
    assert run["status"]["progress"]["percent"] == 100
    delete_run(cluster, run_name)


def test_a_finished_run_stays_succeeded_when_its_job_went_while_the_operator_was_down(cluster, operator):
    """TTL 0 deletes the Job the moment it finishes; the operator, stopped, never saw it end."""
    run_name = unique("ttl0")
    apply(cluster, example_run(run_name, runPolicy={"ttlSecondsAfterFinished": 0}))
    wait_for(lambda: children(cluster, "jobs", run_name), timeout=120, what="the Job")
    operator.stop()
    try:
        wait_for(lambda: ((get_run(cluster, run_name) or {}).get("status") or {}).get("promotion"), timeout=400,
                 what="the trainer's final report in the status")
        wait_for(lambda: children(cluster, "jobs", run_name) == [], timeout=120, what="the Job deleted by its TTL")
    finally:
        operator.start()
    run = wait_state(cluster, run_name, "Succeeded", "Failed", timeout=120)
    assert run["status"]["state"] == "Succeeded", run["status"]
    assert run["status"]["mlflow"]["modelVersion"] and condition(run, "ModelRegistered")["status"] == "True"
    delete_run(cluster, run_name)


def test_a_child_the_server_refuses_fails_the_run_once_with_its_message(cluster, operator):
    run_name = unique("refused")
    apply(cluster, example_run(run_name, nodeSelector={"pool": "not a valid label value!"}))
    run = wait_state(cluster, run_name, "Failed", timeout=120)
    failed = condition(run, "Failed")
    assert failed["reason"] == "ChildRefused" and "nodeSelector" in failed["message"], failed
    assert children(cluster, "jobs", run_name) == []
    wait_for(lambda: [e for e in events_for(cluster, run_name) if e["reason"] == "ChildRefused"], timeout=30,
             what="the ChildRefused Event")
    time.sleep(5)  # several timer intervals: nothing is retried
    refused = [e for e in events_for(cluster, run_name) if e["reason"] in ("ChildRefused", "ReconcileError")]
    assert len(refused) == 1 and refused[0].get("count", 1) == 1, refused
    delete_run(cluster, run_name)


def test_a_pod_that_cannot_start_is_said_then_fails_the_run_naming_the_field(cluster, operator):
    """A Secret the run names does not exist: the kubelet keeps the container waiting for ever."""
    run_name = unique("nosecret")
    env = [{"name": "EXTRA_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{run_name}-missing", "key": "token"}}}]
    apply(cluster, example_run(run_name, env=env))

    def waiting() -> dict[str, Any] | None:
        run = get_run(cluster, run_name) or {}
        said = condition(run, "Running") if (run.get("status") or {}).get("conditions") else None
        return run if said and said["reason"] == "PodWaiting" else None

    run = wait_for(waiting, timeout=120, what="the waiting reason in the run's status")
    assert "CreateContainerConfigError" in condition(run, "Running")["message"]
    run = wait_state(cluster, run_name, "Failed", timeout=180)
    failed = condition(run, "Failed")
    assert failed["reason"] == "PodNotStarting" and "spec.env" in failed["message"], failed
    assert f"{run_name}-missing" in failed["message"]
    wait_for(lambda: children(cluster, "jobs", run_name) == [], timeout=60, what="the stuck Job removed")
    delete_run(cluster, run_name)
