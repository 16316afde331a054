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
- `TRAINER_RULES` are bound in each namespace where trainer pods run (RoleBindings to a
  ClusterRole), so a trainer can reach only the TrainingRuns of its own namespace; RBAC cannot
  narrow further to "its own run" without a Role per run, which would need the operator to hold
  `bind`/`escalate`.

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
    # The Slack webhook URL named by spec.notifications.
    ("", "secrets", ("get",)),
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

TRAINER_RULES: tuple[Rule, ...] = (
    # The trainer reads its run and reports progress and results to its status.
    (GROUP, "trainingruns", ("get",)),
    (GROUP, "trainingruns/status", ("get", "patch")),
    # The RetrainPolicy monitoring Job writes the signals it measured.
    (GROUP, "retrainpolicies/status", ("get", "patch")),
)


def operator_rules(cluster_wide: bool) -> tuple[Rule, ...]:
    """Every rule the operator needs in one mode (what the e2e request log must stay within)."""
    extra = () if cluster_wide else OPERATOR_NAMESPACE_RULES
    return OPERATOR_RULES + OPERATOR_CLUSTER_RULES + extra


def as_policy_rules(rules: tuple[Rule, ...]) -> list[dict[str, list[str]]]:
    """Kubernetes PolicyRule dicts, one per resource, in the order declared above."""
    return [{"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
            for group, resource, verbs in rules]
