"""The Kubernetes permissions PitWall needs: the one list the Helm chart's RBAC is rendered from.

Plain data on purpose: the chart (`charts/pitwall/files/rbac-rules.yaml`, written by
`scripts/sync-chart.py`) and the tests read it, and a test checks the rendered ClusterRoles and
Roles hold exactly these rules -- nothing missing, nothing extra, no `*`. When the operator starts
calling something new, add it here first, re-run the sync script, and the chart follows.

A rule is `(apiGroup, resource, verbs)`; `""` is the core group. Verbs are sorted so that the
comparison with rendered RBAC is exact.

Scopes:

- `OPERATOR_RULES` name namespaced resources. Watching every namespace they go into a
  ClusterRole; watching listed namespaces, into one Role per namespace.
- `OPERATOR_CLUSTER_RULES` name cluster-scoped resources and always need a ClusterRole.
- `OPERATOR_NAMESPACE_RULES` are needed only when the operator watches listed namespaces: Kopf
  lists and watches Namespace objects only in that mode (kopf/_core/reactor/observation.py,
  `namespace_observer` skips it when cluster-wide).
- `TRAINER_RUN_RULES` and `MONITOR_RULES` are not in the chart: the operator grants them per run
  (per RetrainPolicy) with `resourceNames` = that one object, in a Role it creates next to the
  Job (`builders/trainer_access.py`), so a trainer pod can touch only its own run. RBAC lets the
  operator create such a Role only because it holds every rule in it itself (no `escalate` or
  `bind` needed); `test_chart` checks that it does.

Peering (kopf.dev `kopfpeerings`/`clusterkopfpeerings`) is absent: the operator runs with
`--standalone` (one replica, Recreate); HA with peering needs those added (docs/deploy.md).
"""

from __future__ import annotations

Rule = tuple[str, str, tuple[str, ...]]

GROUP = "pitwall.io"

OPERATOR_RULES: tuple[Rule, ...] = (
    # Own resources: watched by Kopf; patched for finalizers; RetrainPolicy creates and prunes runs.
    (GROUP, "trainingruns", ("create", "delete", "get", "list", "patch", "watch")),
    (GROUP, "retrainpolicies", ("get", "list", "patch", "watch")),
    # Status is a subresource: conditions, results and Kopf's own bookkeeping (status.kopf).
    (GROUP, "trainingruns/status", ("get", "patch")),
    (GROUP, "retrainpolicies/status", ("get", "patch")),
    # Children: the training Job (and monitoring Jobs of RetrainPolicies), the RayCluster for tuning.
    ("batch", "jobs", ("create", "delete", "get", "list", "patch", "watch")),
    ("ray.io", "rayclusters", ("create", "delete", "get", "list", "watch")),
    # The TrainingRun spec handed to the trainer as a mounted ConfigMap.
    ("", "configmaps", ("create", "delete", "get")),
    # The trainer's termination message, when the status report failed.
    ("", "pods", ("get", "list")),
    # Per-run (and per-policy) trainer access: its ServiceAccount, Role and RoleBinding; `get`
    # for an idempotent create (a 409 reads the existing one and checks its owner), `delete` for
    # a predecessor's (a run deleted and recreated under the same name). GC removes them with the run.
    ("", "serviceaccounts", ("create", "delete", "get")),
    ("rbac.authorization.k8s.io", "roles", ("create", "delete", "get")),
    ("rbac.authorization.k8s.io", "rolebindings", ("create", "delete", "get")),
    # With each RayCluster: the NetworkPolicy letting that run's pods (and no other's) reach each
    # other, and the Secret holding its Ray token (created, never read: its name carries the run's uid).
    ("networking.k8s.io", "networkpolicies", ("create", "delete", "get")),
    ("", "secrets", ("create",)),
    # The namespace's promotion Lease (made once, never owned): trainers take it to promote one
    # at a time; the operator holds what it grants them (get, update).
    ("coordination.k8s.io", "leases", ("create", "get", "update")),
    # Kopf and k8s.post_event both post core v1 Events (events.k8s.io is not called: not granted).
    ("", "events", ("create",)),
)

OPERATOR_CLUSTER_RULES: tuple[Rule, ...] = (
    # Kopf watches CRDs to notice its resources appear or change at run time.
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
)

OPERATOR_NAMESPACE_RULES: tuple[Rule, ...] = (
    # Only with --namespace: Kopf lists and watches Namespaces to know which of them exist.
    ("", "namespaces", ("list", "watch")),
)

# Secrets are not in OPERATOR_RULES: the chart grants `get` only on the Secrets named in its
# values (alerts.webhookSecrets), in the namespaces served, by `resourceNames`.
SECRET_RULE: Rule = ("", "secrets", ("get",))

TRAINER_RUN_RULES: tuple[Rule, ...] = (
    # The trainer reads its run and reports progress and results to its status (its run only).
    (GROUP, "trainingruns", ("get",)),
    (GROUP, "trainingruns/status", ("get", "patch")),
)

PROMOTION_RULES: tuple[Rule, ...] = (
    # A trainer takes and gives back the namespace's promotion Lease (that one Lease only).
    ("coordination.k8s.io", "leases", ("get", "update")),
)

MONITOR_RULES: tuple[Rule, ...] = (
    # The RetrainPolicy monitoring Job writes the signals it measured (its policy only).
    (GROUP, "retrainpolicies/status", ("get", "patch")),
)


def operator_rules(cluster_wide: bool, secrets: bool = False) -> tuple[Rule, ...]:
    """Every rule the operator needs in one mode (what the e2e request log must stay within);
    `secrets`: the chart names webhook Secrets (granted on those names only)."""
    extra = () if cluster_wide else OPERATOR_NAMESPACE_RULES
    return OPERATOR_RULES + OPERATOR_CLUSTER_RULES + extra + ((SECRET_RULE,) if secrets else ())


def as_policy_rules(rules: tuple[Rule, ...]) -> list[dict[str, list[str]]]:
    """Kubernetes PolicyRule dicts, one per resource, in the order declared above."""
    return [{"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
            for group, resource, verbs in rules]
