"""Per-run least privilege: a trainer pod may read its own TrainingRun and write only its status.

RBAC has no "this pod's run" rule, so each run gets its own ServiceAccount `<run>-trainer`, a Role
whose rules name the run in `resourceNames`, and a RoleBinding; all three are owned by the run, so
garbage collection removes them with it. A namespace-wide trainer Role would let any trainer pod
(and any user code it runs) rewrite the results of every other run in its namespace.

A spec that names its own `serviceAccountName` keeps it: the run's Role is bound to that account
instead. Runs sharing an account therefore share their rights -- give each its own if that matters.
RetrainPolicy monitoring Jobs get the same shape for their one policy (`build_monitor_access`).

The rules come from `pitwall_operator.permissions` (TRAINER_RUN_RULES, MONITOR_RULES); the
operator holds them itself (RBAC refuses to let anyone grant what it does not hold).
"""

from __future__ import annotations

from typing import Any

from pitwall_operator import permissions
from pitwall_operator.builders.meta import (
    PROMOTION_LEASE,
    RunRef,
    access_name,
    metadata,
    trainer_service_account,
)
from pitwall_operator.builders.retrain import (
    monitor_access_name,
    monitor_service_account,
    owner_reference,
    policy_labels,
)
from pitwall_operator.config import Settings
from pitwall_operator.retrain_policy import PolicyRef

RBAC = "rbac.authorization.k8s.io"
COMPONENT = "trainer-access"


def scoped_rules(rules: tuple[permissions.Rule, ...], name: str) -> list[dict[str, Any]]:
    """The declared rules limited to one object by `resourceNames`."""
    return [{**rule, "resourceNames": [name]} for rule in permissions.as_policy_rules(rules)]


def _objects(meta: dict[str, Any], rules: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """The account (when it is the owner's own), its Role and the binding, sharing one metadata."""
    name, namespace = meta["name"], meta["namespace"]

    def own_meta() -> dict[str, Any]:  # each object its own copy: callers may mutate what they create
        return {**meta, "labels": dict(meta["labels"])}

    out: list[dict[str, Any]] = []
    if account == name:
        out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": own_meta()})
    out.append({"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": own_meta(), "rules": rules})
    out.append({"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": own_meta(),
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    return out


def build_trainer_access(run: RunRef, spec: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """[ServiceAccount,] Role, RoleBinding for one run, to create before its Job (and RayCluster).

    `settings` is unused today; it keeps the builders' one signature.
    """
    del settings
    meta = metadata(run, access_name(run.name), COMPONENT)
    account = trainer_service_account(run, spec)
    rules = scoped_rules(permissions.TRAINER_RUN_RULES, run.name) + scoped_rules(permissions.PROMOTION_RULES,
                                                                                   PROMOTION_LEASE)
    return _objects(meta, rules, account)


def build_promotion_lease(namespace: str) -> dict[str, Any]:
    """The namespace's promotion Lease: a trainer holds it while it reads, compares and moves the
    champion alias, so two runs finishing together decide one after the other. Owned by no run
    (every run of the namespace uses it); the trainer's `promotion_guard` takes it."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": PROMOTION_LEASE, "namespace": namespace,
                         "labels": {"app.kubernetes.io/name": "pitwall", "app.kubernetes.io/managed-by": "pitwall-operator",
                                    "app.kubernetes.io/component": "promotion"}},
            "spec": {}}


def build_monitor_access(policy: PolicyRef, run_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """[ServiceAccount,] Role, RoleBinding letting a policy's monitoring Job write that policy's status."""
    meta: dict[str, Any] = {"name": monitor_access_name(policy.name), "namespace": policy.namespace,
                            "labels": policy_labels(policy, COMPONENT)}
    if policy.uid:
        meta["ownerReferences"] = [owner_reference(policy)]
    account = monitor_service_account(policy, run_spec)
    rules = scoped_rules(permissions.MONITOR_RULES, policy.name)
    return _objects(meta, rules, account)
