"""Tenancy builders: each run's pods get rights on that run only, and network access to that run only."""

from __future__ import annotations

import kubernetes_validate
import pytest
from pitwall_operator import permissions
from pitwall_operator.builders.job import build_job
from pitwall_operator.builders.meta import RUN_LABEL, RunRef, trainer_service_account
from pitwall_operator.builders.raycluster import build_network_policy, build_ray_cluster
from pitwall_operator.builders.retrain import monitor_service_account
from pitwall_operator.builders.trainer_access import (
    build_monitor_access,
    build_trainer_access,
)
from pitwall_operator.config import Settings
from pitwall_operator.retrain_policy import PolicyRef

RUN = RunRef("quali-2024", "f1", "uid-1")
SETTINGS = Settings()


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objs}


def test_a_run_gets_its_own_account_role_and_binding_owned_by_it() -> None:
    objs = by_kind(build_trainer_access(RUN, {}, SETTINGS))
    assert set(objs) == {"ServiceAccount", "Role", "RoleBinding"}
    for obj in objs.values():
        assert obj["metadata"]["name"] == "quali-2024-trainer" and obj["metadata"]["namespace"] == "f1"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert obj["metadata"]["labels"][RUN_LABEL] == "quali-2024"
        kubernetes_validate.validate(obj, "1.32", strict=True)
    assert objs["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "quali-2024-trainer", "namespace": "f1"}]
    assert objs["RoleBinding"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                             "name": "quali-2024-trainer"}
    assert trainer_service_account(RUN, {}) == "quali-2024-trainer"


def test_the_role_names_only_this_run_and_the_promotion_lease() -> None:
    rules = by_kind(build_trainer_access(RUN, {}, SETTINGS))["Role"]["rules"]
    runs = [rule for rule in rules if rule["apiGroups"] == ["pitwall.io"]]
    assert runs and all(rule["resourceNames"] == ["quali-2024"] for rule in runs)
    granted = {(g, r, v) for rule in runs for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {("pitwall.io", "trainingruns", "get"), ("pitwall.io", "trainingruns/status", "get"),
                       ("pitwall.io", "trainingruns/status", "patch")}
    (lease,) = [rule for rule in rules if rule["apiGroups"] != ["pitwall.io"]]
    assert lease == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"],
                     "resourceNames": ["pitwall-promotion"]}
    assert not any(r.startswith("retrainpolicies") for _, r, _ in granted)


def test_a_spec_account_is_bound_not_created() -> None:
    spec = {"serviceAccountName": "f1-trainer"}
    objs = by_kind(build_trainer_access(RUN, spec, SETTINGS))
    assert set(objs) == {"Role", "RoleBinding"}
    assert objs["RoleBinding"]["subjects"][0]["name"] == "f1-trainer"
    assert trainer_service_account(RUN, spec) == "f1-trainer"


def test_objects_do_not_share_mutable_metadata() -> None:
    objs = build_trainer_access(RUN, {}, SETTINGS)
    objs[0]["metadata"]["labels"]["x"] = "y"
    assert "x" not in objs[1]["metadata"]["labels"]


def test_a_policy_monitor_gets_rights_on_its_policy_only() -> None:
    policy = PolicyRef("weekly", "f1", "uid-p")
    objs = by_kind(build_monitor_access(policy, {}))
    assert objs["ServiceAccount"]["metadata"]["name"] == monitor_service_account(policy, {}) == "weekly-monitor"
    assert objs["Role"]["rules"] == [{"apiGroups": ["pitwall.io"], "resources": ["retrainpolicies/status"],
                                      "verbs": ["get", "patch"], "resourceNames": ["weekly"]}]
    assert objs["Role"]["metadata"]["ownerReferences"][0]["uid"] == "uid-p"


@pytest.mark.parametrize("rules", [permissions.TRAINER_RUN_RULES, permissions.MONITOR_RULES])
def test_the_operator_holds_what_it_grants(rules) -> None:
    """RBAC refuses a Role with rules its creator lacks (no escalate verb is granted)."""
    held = {(g, r, v) for g, r, verbs in permissions.OPERATOR_RULES for v in verbs}
    assert {(g, r, v) for g, r, verbs in rules for v in verbs} <= held


def test_ray_network_policy_admits_only_the_same_run() -> None:
    policy = build_network_policy(RUN)
    kubernetes_validate.validate(policy, "1.32", strict=True)
    assert policy["spec"]["podSelector"] == {"matchLabels": {RUN_LABEL: "quali-2024"}}
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": {RUN_LABEL: "quali-2024"}}}]}]
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    spec = {"tuning": {"engine": "ray", "rayCluster": {"workers": 1}}}
    cluster = build_ray_cluster(RUN, spec, SETTINGS)
    job = build_job(RUN, spec, SETTINGS)
    for template in (cluster["spec"]["headGroupSpec"]["template"], job["spec"]["template"]):
        assert template["metadata"]["labels"][RUN_LABEL] == "quali-2024"  # what the policy selects
