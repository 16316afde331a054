"""The TrainingRun reconcile against a fake cluster: what it creates, what it writes, when it stops.

The fake keeps objects in a dict and answers like the API server does for the calls the
reconcile makes (409 on a name that exists, 404 as None); the real server is the e2e tests' job.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pitwall_operator import k8s
from pitwall_operator.config import Settings
from pitwall_operator.handlers.reconcile import reconcile

T0, T1 = "2026-06-01T10:00:00Z", "2026-06-01T10:00:05Z"
SPEC = {"model": "race_winner", "data": {"seasons": [2023, 2024]}}


class FakeCluster:
    """Objects by (kind, namespace, name); `refuse` makes a kind's create fail with that status."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[str] = []
        self.refuse: dict[str, int] = {}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(f"GET {kind}")
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, obj: dict[str, Any], *, read_back: bool = True) -> tuple[dict[str, Any], bool]:
        kind, meta = obj["kind"], obj["metadata"]
        self.calls.append(f"POST {kind}")
        if kind in self.refuse:
            raise k8s.ApiError(self.refuse[kind], f"{kind} is invalid")
        key = (kind, meta["namespace"], meta["name"])
        if key in self.objects:
            existing = self.objects[key]
            wanted = k8s.owner_uids(obj)
            if read_back and wanted and not k8s.owned_by(existing, wanted[0]):
                raise k8s.StaleChild(existing)
            return copy.deepcopy(existing), False
        stored = copy.deepcopy(obj)
        stored["metadata"].setdefault("creationTimestamp", T0)
        self.objects[key] = stored
        return copy.deepcopy(stored), True

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(f"DELETE {kind}")
        return self.objects.pop((kind, namespace, name), None) is not None

    def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        self.calls.append("LIST pods")
        return copy.deepcopy(self.pods.get(job_name, []))

    def kinds(self) -> list[str]:
        return sorted(kind for kind, _, _ in self.objects)


def run(spec: dict | None = None, status: dict | None = None, uid: str = "uid-1", generation: int = 1) -> dict:
    return {"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": "rw", "namespace": "f1", "uid": uid, "generation": generation,
                         "creationTimestamp": T0},
            "spec": copy.deepcopy(spec or SPEC), "status": copy.deepcopy(status or {})}


def applied(body: dict, patch: dict) -> dict:
    """The body after the status patch was written (what kopf hands the next reconcile)."""
    status = {**body.get("status", {}), **patch}
    return {**body, "status": {k: v for k, v in status.items() if v is not None}}


def job_state(cluster: FakeCluster, **status: Any) -> dict:
    job = cluster.objects[("Job", "f1", "rw-train")]
    job["status"] = status
    return copy.deepcopy(job)


def trainer_pod(exit_code: int, result: dict) -> dict:
    terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                  "message": json.dumps(result), "finishedAt": T1}
    return {"metadata": {"name": "rw-train-x", "creationTimestamp": T0},
            "status": {"phase": "Succeeded" if exit_code == 0 else "Failed",
                       "containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}]}}


def test_a_new_run_gets_its_access_spec_and_job_and_says_so_once() -> None:
    cluster = FakeCluster()
    first = reconcile(run(), Settings(), cluster, now=T0)
    assert first.job_created and first.patch["jobName"] == "rw-train"
    assert {"Job", "ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Lease"} <= set(cluster.kinds())
    assert [t.reason for t in first.outcome.transitions] == ["Created"]
    # the next pass (kopf hands it the body with the write) changes nothing and creates nothing
    cluster.calls.clear()
    again = reconcile(applied(run(), first.patch), Settings(), cluster,
                      job=cluster.get("batch/v1", "Job", "f1", "rw-train"), now=T0)
    assert again.patch == {} and not again.job_created
    assert not [c for c in cluster.calls if c.startswith("POST")]


def test_the_job_running_then_complete_gives_running_then_succeeded_with_the_trainers_result() -> None:
    cluster = FakeCluster()
    body = applied(run(), reconcile(run(), Settings(), cluster, now=T0).patch)
    running = reconcile(body, Settings(), cluster, job=job_state(cluster, active=1, ready=1), now=T1)
    assert running.state == "Running"
    body = applied(body, running.patch)
    result = {"ok": True, "exitCode": 0, "metrics": {"top1_accuracy": 0.58},
              "mlflow": {"modelVersion": "4", "modelUri": "models:/pitwall-race_winner/4"},
              "promotion": {"promoted": True, "alias": "champion", "version": "4", "reason": "first"}}
    cluster.pods["rw-train"] = [trainer_pod(0, result)]
    done = job_state(cluster, succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    finished = reconcile(body, Settings(), cluster, job=done, now=T1)
    assert finished.state == "Succeeded" and finished.outcome.promoted
    assert finished.patch["metrics"] == {"top1_accuracy": 0.58} and finished.patch["mlflow"]["modelVersion"] == "4"
    # a finished run is left alone: no API call at all
    cluster.calls.clear()
    assert reconcile(applied(body, finished.patch), Settings(), cluster, job=done, now=T1).patch == {}
    assert cluster.calls == []


def test_a_recreated_run_does_not_adopt_its_predecessors_job() -> None:
    cluster = FakeCluster()
    reconcile(run(uid="old"), Settings(), cluster, now=T0)
    removed = 0
    for _ in range(10):  # kopf retries: each pass removes one more of the predecessor's children
        try:
            result = reconcile(run(uid="new"), Settings(), cluster, now=T1)
            break
        except k8s.StaleChild:
            removed += 1
    assert removed >= 2 and result.job_created
    assert k8s.owned_by(cluster.objects[("Job", "f1", "rw-train")], "new")
    owned = [obj for obj in cluster.objects.values() if k8s.owner_uids(obj)]
    assert owned and all(k8s.owned_by(obj, "new") for obj in owned)


def test_a_job_of_the_same_name_not_made_by_the_operator_is_refused_not_touched() -> None:
    cluster = FakeCluster()
    cluster.objects[("Job", "f1", "rw-train")] = {"apiVersion": "batch/v1", "kind": "Job",
                                                  "metadata": {"name": "rw-train", "namespace": "f1"}}
    result = reconcile(run(), Settings(), cluster, now=T0)
    assert result.state == "Failed" and "not made by the operator" in json.dumps(result.patch["conditions"])
    assert ("Job", "f1", "rw-train") in cluster.objects


def test_an_invalid_spec_fails_naming_the_field_and_creates_nothing() -> None:
    cluster = FakeCluster()
    result = reconcile(run({"model": "race_winner", "data": {"seasons": []}}), Settings(), cluster, now=T0)
    assert result.state == "Failed" and "seasons" in json.dumps(result.patch["conditions"])
    assert cluster.objects == {}


def test_a_child_the_server_refuses_fails_the_run_once_and_removes_the_others() -> None:
    cluster = FakeCluster()
    cluster.refuse["Job"] = 422
    result = reconcile(run(), Settings(), cluster, now=T0)
    assert result.state == "Failed" and "ChildRefused" in json.dumps(result.patch["conditions"])
    assert ("ConfigMap", "f1", "rw-spec") not in cluster.objects


def test_a_job_that_vanished_keeps_the_result_the_trainer_already_reported() -> None:
    cluster = FakeCluster()
    body = applied(run(), reconcile(run(), Settings(), cluster, now=T0).patch)
    cluster.objects.pop(("Job", "f1", "rw-train"))
    reported = applied(body, {"mlflow": {"modelVersion": "9"}, "metrics": {"top1_accuracy": 0.5},
                              "promotion": {"promoted": False}})
    lost = reconcile(reported, Settings(), cluster, now=T1)
    assert lost.state == "Succeeded"
    nothing = reconcile(body, Settings(), cluster, now=T1)
    assert nothing.state == "Failed" and "JobDeleted" in json.dumps(nothing.patch["conditions"])


def test_suspend_removes_the_children_and_resume_creates_them_again() -> None:
    cluster = FakeCluster()
    body = applied(run(), reconcile(run(), Settings(), cluster, now=T0).patch)
    body["spec"]["suspend"] = True
    suspended = reconcile(body, Settings(), cluster, now=T1)
    assert suspended.state == "Suspended" and ("Job", "f1", "rw-train") not in cluster.objects
    body = applied(body, suspended.patch)
    body["spec"]["suspend"] = False
    resumed = reconcile(body, Settings(), cluster, now=T1)
    assert resumed.job_created and ("Job", "f1", "rw-train") in cluster.objects


def test_a_failed_trainer_says_its_own_error() -> None:
    cluster = FakeCluster()
    body = applied(run(), reconcile(run(), Settings(), cluster, now=T0).patch)
    cluster.pods["rw-train"] = [trainer_pod(2, {"ok": False, "exitCode": 2, "error": {
        "type": "DataError", "message": "races.csv: column raceId missing"}})]
    failed = job_state(cluster, failed=1, conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}])
    result = reconcile(body, Settings(), cluster, job=failed, now=T1)
    assert result.state == "Failed" and result.outcome.failure["type"] == "DataError"
    assert "races.csv: column raceId missing" in result.outcome.failure["message"]
