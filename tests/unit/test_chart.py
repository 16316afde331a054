"""The Helm chart: renders, lints, validates, runs restricted pods, and grants exactly the declared RBAC.

Rendering and linting use helm-python-sdk (Helm's Go library, offline: no cluster, no helm binary);
every rendered manifest is checked with kubernetes-validate in strict mode for each supported
Kubernetes minor. RBAC is compared with `pitwall_operator.permissions`, rule for rule.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pitwall_operator import permissions

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (the dev extra) renders the chart")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pitwall"
RELEASE = "pitwall"
NAMESPACE = "pitwall-system"
KUBE_VERSIONS = ("1.30", "1.31", "1.32", "1.34")  # Chart.yaml kubeVersion; 1.34 is the sandbox

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "watch-namespaces": {"watchNamespaces": ["f1-models", "f1-research"]},
    "mlflow-sqlite": {"mlflow": {"enabled": True}},
    "mlflow-postgres-s3": {
        "mlflow": {
            "enabled": True,
            "backend": "postgresql",
            "postgresql": {"existingSecret": "mlflow-db"},
            "artifacts": {
                "destination": "s3://mlflow/artifacts",
                "s3": {"endpointUrl": "http://minio.storage:9000", "existingSecret": "mlflow-s3"},
            },
        },
    },
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "everything": {
        "watchNamespaces": ["f1-models"],
        "trainer": {"namespaces": ["f1-models", "f1-batch"]},
        "mlflow": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "defaults": {"data": {"claimName": "f1-data", "path": "ergast"}},
        "operator": {"extraArgs": ["--verbose"]},
        "alerts": {"webhookSecrets": ["team-slack"]},
        "admission": {"allowedImages": ["registry.example.com/f1/"], "allowedServiceAccounts": ["f1-trainer"]},
    },
}

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}

# Kinds from CRDs that kubernetes-validate does not ship schemas for, and why that is acceptable.
NOT_IN_KUBERNETES_VALIDATE = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        "a Prometheus Operator CRD; kubernetes-validate ships only built-in kinds "
        "(its shape is checked in test_service_monitor_targets_the_metrics_port)",
}


@cache
def _render(name: str) -> tuple[dict[str, Any], ...]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(VALUE_SETS[name])
        rendered = chart.render(VALUE_SETS[name], name=RELEASE, namespace=NAMESPACE, is_install=True)
    return tuple(doc for path, text in sorted(rendered.items()) if path.endswith(".yaml")
                 for doc in yaml.safe_load_all(text) if doc)


def render(name: str) -> list[dict[str, Any]]:
    return list(_render(name))


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in kinds(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every combination a list of PolicyRules grants."""
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def declared(rules: tuple[permissions.Rule, ...]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for group, resource, verbs in rules for verb in verbs}


def operator_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", f"{RELEASE}-operator")


# --- render, lint, validate -------------------------------------------------------------------------

@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict_is_clean(name: str) -> None:
    for version in KUBE_VERSIONS:
        report = helm.lint(str(CHART), VALUE_SETS[name], strict=True, namespace=NAMESPACE,
                           kube_version=f"v{version}.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, f"{name} on {version}: {problems}"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_validates_strictly(name: str, version: str) -> None:
    docs = render(name)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in NOT_IN_KUBERNETES_VALIDATE:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_is_labelled_and_namespaced_where_expected(name: str) -> None:
    for doc in render(name):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/part-of"] == "pitwall"
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace"), f"{doc['kind']} {doc['metadata']['name']} has no namespace"


def test_bad_values_are_rejected_by_the_schema() -> None:
    bad = [
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"operator": {"replicas": 2}},
        {"mlflow": {"backend": "mysql"}},
        {"mlflow": {"enabled": True, "backend": "postgresql"}},  # no Secret for the URI
        {"mlflow": {"allowedHosts": ["*"]}},
        {"image": {"pullPolicy": "Sometimes"}},
    ]
    with helm.Chart.load(str(CHART)) as chart:
        for values in bad:
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(values)


# --- pods run restricted ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", VALUE_SETS)
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    for deployment in kinds(render(name), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert all("hostPath" not in volume for volume in pod.get("volumes", []))
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert not context.get("privileged")
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


# --- the operator Deployment ------------------------------------------------------------------------

def test_operator_runs_one_standalone_replica_with_probes() -> None:
    deployment = operator_deployment(render("default"))
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert "--all-namespaces" in container["args"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_listed_namespaces_become_kopf_flags() -> None:
    container = operator_deployment(render("watch-namespaces"))["spec"]["template"]["spec"]["containers"][0]
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        "--namespace=f1-models", "--namespace=f1-research"]
    assert "--all-namespaces" not in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PITWALL_NAMESPACES"] == "f1-models,f1-research"


def test_operator_environment_is_what_the_operator_reads() -> None:
    """Every PITWALL_* variable the chart sets is read by pitwall_operator.config (no dead settings)."""
    config = ROOT / "operator" / "pitwall_operator" / "config.py"
    if not config.is_file():
        pytest.skip("operator/pitwall_operator/config.py is not written yet")
    source = config.read_text()
    container = operator_deployment(render("everything"))["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    unread = [name for name in env if name.startswith("PITWALL_") and f'"{name}"' not in source]
    assert not unread, f"set by the chart but not read by config.py: {unread}"
    assert env["PITWALL_DEFAULT_MLFLOW_URI"] == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc:5000"
    assert env["PITWALL_DEFAULT_DATA_CLAIM"] == "f1-data"
    assert env["PITWALL_METRICS_PORT"] == "9090"


def test_service_monitor_targets_the_metrics_port() -> None:
    docs = render("service-monitor")
    monitor = one(docs, "ServiceMonitor", f"{RELEASE}-operator")
    service = one(docs, "Service", f"{RELEASE}-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in port_names
    for endpoint in monitor["spec"]["endpoints"]:
        assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint["interval"])
    assert not kinds(render("default"), "ServiceMonitor")


# --- MLflow -----------------------------------------------------------------------------------------

def _mlflow_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"]["containers"][0]


def test_mlflow_sqlite_keeps_its_database_on_a_kept_volume() -> None:
    docs = render("mlflow-sqlite")
    container = _mlflow_container(docs)
    assert container["command"] == ["mlflow", "server"]
    assert "--workers=1" in container["args"]
    assert "--backend-store-uri=sqlite:////mlflow/mlflow.db" in container["args"]
    assert "--artifacts-destination=/mlflow/artifacts" in container["args"]
    hosts = next(a for a in container["args"] if a.startswith("--allowed-hosts="))
    assert f"{RELEASE}-mlflow.{NAMESPACE}.svc:*" in hosts.split("=", 1)[1].split(",")
    pvc = one(docs, "PersistentVolumeClaim", f"{RELEASE}-mlflow")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_mlflow_postgres_and_s3_take_credentials_from_secrets_and_need_no_volume() -> None:
    docs = render("mlflow-postgres-s3")
    container = _mlflow_container(docs)
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]
    assert "--artifacts-destination=s3://mlflow/artifacts" in container["args"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"MLFLOW_BACKEND_STORE_URI": "mlflow-db", "AWS_ACCESS_KEY_ID": "mlflow-s3",
                       "AWS_SECRET_ACCESS_KEY": "mlflow-s3"}
    assert not kinds(docs, "PersistentVolumeClaim")
    assert not kinds(render("default"), "PersistentVolumeClaim")


# --- RBAC ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_rule_uses_a_wildcard(name: str) -> None:
    for role in kinds(render(name), "ClusterRole") + kinds(render(name), "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {rule}"
                assert not any("*" in item for item in rule.get(field, [])), f"{role['metadata']['name']}: {rule}"


def _bound_rules(docs: list[dict[str, Any]], account: str, account_ns: str) -> dict[str | None, set]:
    """What a ServiceAccount may do, by namespace (None: cluster-wide), via the rendered bindings."""
    roles = {(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc["rules"]
             for doc in kinds(docs, "ClusterRole") + kinds(docs, "Role")}
    granted: dict[str | None, set] = {}
    for binding in kinds(docs, "ClusterRoleBinding") + kinds(docs, "RoleBinding"):
        if {"kind": "ServiceAccount", "name": account, "namespace": account_ns} not in binding["subjects"]:
            continue
        scope = binding["metadata"].get("namespace")  # None for a ClusterRoleBinding
        ref = binding["roleRef"]
        rules = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        granted.setdefault(scope, set()).update(triples(rules))
    return granted


def test_cluster_wide_operator_rbac_equals_permissions() -> None:
    docs = render("default")
    granted = _bound_rules(docs, f"{RELEASE}-operator", NAMESPACE)
    secrets = declared((permissions.SECRET_RULE,))  # by resourceNames: test_operator_reads_no_secret_...
    assert granted == {None: declared(permissions.operator_rules(cluster_wide=True)), NAMESPACE: secrets}
    role = one(docs, "ClusterRole", f"{RELEASE}-operator")
    assert role["rules"] == permissions.as_policy_rules(
        permissions.OPERATOR_RULES + permissions.OPERATOR_CLUSTER_RULES)
    assert not [r for r in kinds(docs, "Role") if r["metadata"]["name"] == f"{RELEASE}-operator"]


def test_namespaced_operator_rbac_equals_permissions() -> None:
    docs = render("watch-namespaces")
    granted = _bound_rules(docs, f"{RELEASE}-operator", NAMESPACE)
    workload = declared(permissions.OPERATOR_RULES + (permissions.SECRET_RULE,))
    assert granted == {
        None: declared(permissions.OPERATOR_CLUSTER_RULES + permissions.OPERATOR_NAMESPACE_RULES),
        "f1-models": workload,
        "f1-research": workload,
    }
    everything = set().union(*granted.values())
    assert everything == declared(permissions.operator_rules(cluster_wide=False, secrets=True))


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_trainer_account_gets_namespace_wide_rights(name: str) -> None:
    """Trainer pods get a per-run Role from the operator (builders/trainer_access.py), never the chart's."""
    docs = render(name)
    for sa in kinds(docs, "ServiceAccount"):
        if sa["metadata"]["name"] != f"{RELEASE}-operator":
            assert _bound_rules(docs, sa["metadata"]["name"], sa["metadata"]["namespace"]) == {}, sa["metadata"]


def test_operator_holds_every_rule_it_grants_per_run() -> None:
    """RBAC escalation check: a Role can be created only by someone holding all of its rules."""
    granted = declared(permissions.OPERATOR_RULES)
    assert declared(permissions.TRAINER_RUN_RULES + permissions.MONITOR_RULES + permissions.PROMOTION_RULES) <= granted
    for resource in ("serviceaccounts", "roles", "rolebindings"):
        assert any(r == resource and v == "create" for _, r, v in granted), resource


def test_trainer_rules_only_read_runs_and_write_status() -> None:
    for group, resource, verbs in permissions.TRAINER_RUN_RULES + permissions.MONITOR_RULES:
        assert group == permissions.GROUP
        assert (resource == "trainingruns" and set(verbs) == {"get"}) or resource.endswith("/status")
        assert set(verbs) <= {"get", "patch"}


def _reads_secrets(role: dict[str, Any]) -> bool:
    return any("secrets" in rule["resources"] and set(rule["verbs"]) & {"get", "list", "watch"} for rule in role["rules"])


def test_operator_reads_no_secret_unless_named_and_only_those_where_runs_are() -> None:
    """It may create a Secret (a run's Ray token) but read only the webhook Secrets the chart names."""
    secret_verbs = {v for _, r, v in declared(permissions.OPERATOR_RULES + permissions.OPERATOR_CLUSTER_RULES)
                    if r == "secrets"}
    assert secret_verbs == {"create"}
    none = _render_values({"alerts": {"webhookSecrets": []}})
    assert not [r for r in kinds(none, "Role") + kinds(none, "ClusterRole") if _reads_secrets(r)]
    docs = render("everything")
    roles = [r for r in kinds(docs, "Role") if _reads_secrets(r)]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["f1-batch", "f1-models"]
    for role in roles:
        assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                  "resourceNames": ["team-slack"]}]
    granted = _bound_rules(docs, f"{RELEASE}-operator", NAMESPACE)
    assert granted["f1-batch"] == {("", "secrets", "get")}
    env = {e["name"]: e.get("value") for e in operator_deployment(docs)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PITWALL_ALERT_SECRETS"] == "team-slack"


def test_declared_rules_are_sorted_unique_and_wildcard_free() -> None:
    every = (permissions.OPERATOR_RULES + permissions.OPERATOR_CLUSTER_RULES
             + permissions.OPERATOR_NAMESPACE_RULES + permissions.TRAINER_RUN_RULES + permissions.MONITOR_RULES)
    for group, resource, verbs in every:
        assert list(verbs) == sorted(set(verbs)), (group, resource)
        assert "*" not in (group, resource) and "*" not in verbs
    for rules in (permissions.OPERATOR_RULES, permissions.OPERATOR_CLUSTER_RULES, permissions.TRAINER_RUN_RULES):
        keys = [(group, resource) for group, resource, _ in rules]
        assert len(keys) == len(set(keys))


# --- generated chart files ------------------------------------------------------------------------

def _sync_module():
    spec = importlib.util.spec_from_file_location("sync_chart", ROOT / "scripts" / "sync-chart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_rbac_file_is_generated_from_permissions() -> None:
    sync = _sync_module()
    assert (CHART / "files" / "rbac-rules.yaml").read_text() == sync.rules_yaml(), \
        "run: python scripts/sync-chart.py"


def test_chart_crds_are_identical_to_crds_folder() -> None:
    sources = sorted((ROOT / "crds").glob("*.yaml"))
    if not sources:
        pytest.skip("crds/ holds no generated CRDs yet (python -m pitwall_api crds --out crds)")
    copies = sorted((CHART / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == [p.name for p in sources], "run: python scripts/sync-chart.py"
    for source, copy in zip(sources, copies, strict=True):
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name} differs; run: python scripts/sync-chart.py"
    assert _sync_module().main(["--check"]) == 0


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_chart_crds_validate_and_name_the_rbac_resources(version: str) -> None:
    crds = [doc for path in sorted((CHART / "crds").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]
    if not crds:
        pytest.skip("the chart holds no CRDs yet (python scripts/sync-chart.py after generating crds/)")
    plurals = set()
    for crd in crds:
        kubernetes_validate.validate(crd, version, strict=True)
        plurals.add((crd["spec"]["group"], crd["spec"]["names"]["plural"]))
    own = {(group, resource.split("/")[0]) for group, resource, _ in permissions.OPERATOR_RULES
           if group == permissions.GROUP}
    assert own == plurals


# --- admission and network policy ------------------------------------------------------------------

def test_admission_policy_allows_only_the_trainer_image_and_listed_prefixes_and_accounts() -> None:
    docs = render("everything")
    policy = one(docs, "ValidatingAdmissionPolicy", f"{RELEASE}-run-pods")
    binding = one(docs, "ValidatingAdmissionPolicyBinding", f"{RELEASE}-run-pods")
    assert binding["spec"] == {"policyName": f"{RELEASE}-run-pods", "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    rule = policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert rule["resources"] == ["trainingruns", "retrainpolicies"] and set(rule["operations"]) == {"CREATE", "UPDATE"}
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert yaml.safe_load(variables["allowedImages"]) == ["pitwall-trainer:", "pitwall-trainer@", "registry.example.com/f1/"]
    assert yaml.safe_load(variables["allowedAccounts"]) == ["f1-trainer"]
    assert not kinds(_render_values({"admission": {"enabled": False}}), "ValidatingAdmissionPolicy")


def _render_values(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [doc for path, text in sorted(rendered.items()) if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


RUN_PODS = {"matchExpressions": [{"key": "pitwall.io/training-run", "operator": "Exists"}]}


def test_run_pods_accept_no_ingress_and_reach_only_runs_mlflow_the_api_server_and_dns() -> None:
    docs = render("everything")
    policies = [p for p in kinds(docs, "NetworkPolicy") if p["metadata"]["name"] == f"{RELEASE}-run-pods"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["f1-batch", "f1-models"]
    for policy in policies:
        spec = policy["spec"]
        assert spec["podSelector"] == RUN_PODS
        assert spec["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in spec
        peers = [rule["to"] for rule in spec["egress"]]
        assert peers[0] == [{"podSelector": RUN_PODS}]
        assert peers[1][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "mlflow"
        assert spec["egress"][1]["ports"] == [{"protocol": "TCP", "port": 5000}]
        assert spec["egress"][2]["ports"] == [{"protocol": "TCP", "port": 6443}]
        assert {p["port"] for p in spec["egress"][3]["ports"]} == {53}
        assert len(spec["egress"]) == 4


def test_the_operator_reaches_only_the_api_server_dns_and_https_when_alerting() -> None:
    quiet = one(_render_values({"alerts": {"webhookSecrets": []}}), "NetworkPolicy", f"{RELEASE}-operator")["spec"]
    assert [r["ports"][0]["port"] for r in quiet["egress"]] == [6443, 53]
    alerting = one(render("everything"), "NetworkPolicy", f"{RELEASE}-operator")["spec"]
    assert [r["ports"][0]["port"] for r in alerting["egress"]] == [6443, 53, 443]
    mlflow = one(render("mlflow-sqlite"), "NetworkPolicy", f"{RELEASE}-mlflow")["spec"]
    assert mlflow["ingress"] == [{"from": [{"namespaceSelector": {}, "podSelector": RUN_PODS}],
                                  "ports": [{"protocol": "TCP", "port": 5000}]}]
