"""The chart's RBAC is what the API server enforces: the operator runs as the chart's pod under its
ServiceAccount, so removing one rule is a 403 the run reports, and restoring it lets the run go on."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import (
    NAMESPACE,
    OPERATOR_DEPLOYMENT,
    OPERATOR_NAMESPACE,
    apply,
    children,
    delete_run,
    events_for,
    example_run,
)
from tests.plugins.cluster import Cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def operator_service_account(cluster: Cluster) -> str:
    deployment = cluster.kubectl_json("get", "deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE)
    return f"system:serviceaccount:{OPERATOR_NAMESPACE}:{deployment['spec']['template']['spec']['serviceAccountName']}"


def role_granting_job_create(cluster: Cluster, subject: str) -> dict[str, Any]:
    """The chart's Role or ClusterRole bound to the operator that grants `create` on batch Jobs."""
    _, _, account = subject.rpartition(":")
    bindings = [*cluster.kubectl_json("get", "rolebindings", "-n", NAMESPACE)["items"],
                *cluster.kubectl_json("get", "clusterrolebindings")["items"]]
    for binding in bindings:
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                   and s.get("namespace") == OPERATOR_NAMESPACE for s in binding.get("subjects") or []):
            continue
        kind = binding["roleRef"]["kind"].lower()
        args = ["get", kind, binding["roleRef"]["name"]] + (["-n", NAMESPACE] if kind == "role" else [])
        role = cluster.kubectl_json(*args)
        if any("batch" in r.get("apiGroups", []) and "jobs" in r.get("resources", []) and "create" in r.get("verbs", [])
               for r in role.get("rules") or []):
            return role
    raise AssertionError(f"no Role or ClusterRole bound to {subject} grants create on jobs")


def can_i(cluster: Cluster, subject: str, verb: str, resource: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, "-n", NAMESPACE, "--as", subject, check=False)
    return result.stdout.strip() == "yes"


def replace(cluster: Cluster, obj: dict[str, Any]) -> None:
    body = copy.deepcopy(obj)
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        body["metadata"].pop(key, None)
    cluster.kubectl("replace", "-f", "-", input=json.dumps(body))


def test_a_missing_rule_is_a_403_the_run_reports(cluster, operator):
    subject = operator_service_account(cluster)
    assert can_i(cluster, subject, "create", "jobs.batch")
    assert not can_i(cluster, subject, "delete", "secrets"), "the chart grants more than the operator calls"
    role = role_granting_job_create(cluster, subject)
    narrowed = copy.deepcopy(role)
    for rule in narrowed["rules"]:
        if "batch" in rule.get("apiGroups", []) and "jobs" in rule.get("resources", []):
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    run_name = f"rbac-{uuid.uuid4().hex[:5]}"
    replace(cluster, narrowed)
    try:
        wait_for(lambda: not can_i(cluster, subject, "create", "jobs.batch"), timeout=30, what="the rule removed")
        apply(cluster, example_run(run_name))

        def forbidden_event() -> dict[str, Any] | None:
            return next((e for e in events_for(cluster, run_name) if e["reason"] == "ReconcileError"
                         and "403" in e["message"] and "jobs" in e["message"]), None)

        event = wait_for(forbidden_event, timeout=120, what="a ReconcileError Event naming the 403 on jobs")
        assert event["type"] == "Warning"
        assert "forbidden" in event["message"].lower(), event["message"]
        assert children(cluster, "jobs", run_name) == []
    finally:
        replace(cluster, role)
    try:
        wait_for(lambda: can_i(cluster, subject, "create", "jobs.batch"), timeout=30, what="the rule restored")
        # the operator retries a refused request every 30 s: with the rule back, the Job appears
        wait_for(lambda: children(cluster, "jobs", run_name), timeout=120, what=f"the Job of {run_name} after the fix")
    finally:
        delete_run(cluster, run_name)
