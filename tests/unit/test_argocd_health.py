"""The Argo CD integration: health Lua run on sample objects, and the example Applications.

Argo CD runs health checks in gopher-lua, a Lua 5.1; lupa's bundled Lua 5.1 runs them here with
the same global `obj` and the returned `hs` table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (the dev extra) runs the Lua health checks")

ROOT = Path(__file__).resolve().parents[2]
ARGO = ROOT / "examples" / "argocd"
STATES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
KEY = "resource.customizations.health.pitwall.io_{kind}"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run health/pitwall.io_<kind>.lua on obj as Argo CD does; (status, message)."""
    runtime = lua51.LuaRuntime()

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return runtime.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return runtime.table_from([to_lua(v) for v in value])
        return value

    runtime.globals().obj = to_lua(obj)
    result = runtime.execute((ARGO / "health" / f"pitwall.io_{kind}.lua").read_text())
    assert result["status"] in STATES
    return result["status"], result["message"]


def cond(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2024-12-08T13:00:00Z"}


def run(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun",
        "metadata": {"name": "race-winner-2024", "namespace": "f1-models", "generation": generation},
        "spec": {"model": "race_winner", "data": {"seasons": [2024]}, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def policy(generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = run(generation, status)
    obj["kind"] = "RetrainPolicy"
    return obj


# --- TrainingRun -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("obj", "expected", "in_message"), [
    (run(), "Progressing", "pick up"),
    (run(status={}), "Progressing", "generation 1"),
    (run(generation=3, status={"observedGeneration": 2, "conditions": [cond("Succeeded")]}),
     "Progressing", "generation 3 (status is for 2)"),
    (run(status={"observedGeneration": 1, "conditions": [cond("Running", "False")]}), "Progressing", "Pending"),
    (run(status={"observedGeneration": 1, "conditions": [cond("Running", reason="JobRunning")],
                 "progress": {"percent": 40}}), "Progressing", "JobRunning (40%)"),
    (run(status={"observedGeneration": 1, "conditions": [
        cond("Running", "False"), cond("Succeeded", reason="TrainerSucceeded", message="top1 0.52"),
        cond("Promoted", reason="BetterThanChampion"), cond("ModelRegistered")]}),
     "Healthy", "TrainerSucceeded: top1 0.52; promoted"),
    (run(status={"observedGeneration": 1, "conditions": [cond("Succeeded"), cond("Promoted", "False")]}),
     "Healthy", "Succeeded"),
    (run(status={"observedGeneration": 1, "conditions": [
        cond("Failed", reason="ValidationFailed",
             message="spec.tuning.searchSpace.max_depth: low (12) must be below high (3)")]}),
     "Degraded", "ValidationFailed: spec.tuning.searchSpace.max_depth: low (12) must be below high (3)"),
    (run(status={"observedGeneration": 1, "conditions": [
        cond("Running", "False"), cond("Failed", reason="BackoffLimitExceeded")]}), "Degraded", "BackoffLimitExceeded"),
    (run(status={"observedGeneration": 1, "conditions": [cond("Suspended", reason="SuspendedByUser")]},
         suspend=True), "Suspended", "SuspendedByUser"),
], ids=["no-status", "no-observed-generation", "stale-generation", "pending", "running", "succeeded-promoted",
        "succeeded-not-promoted", "validation-failed", "backoff-failed", "suspended"])
def test_training_run_health(obj: dict[str, Any], expected: str, in_message: str) -> None:
    status, message = health("TrainingRun", obj)
    assert status == expected
    assert in_message in message


def test_training_run_health_reads_the_true_condition_not_the_last() -> None:
    obj = run(status={"observedGeneration": 1, "conditions": [cond("Succeeded"), cond("Running", "False")]})
    assert health("TrainingRun", obj)[0] == "Healthy"


def test_a_failed_run_shows_progressing_once_its_spec_is_fixed() -> None:
    obj = run(generation=2, status={"observedGeneration": 1, "conditions": [cond("Failed", reason="ValidationFailed")]})
    assert health("TrainingRun", obj)[0] == "Progressing"


# --- RetrainPolicy ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("obj", "expected", "in_message"), [
    (policy(), "Progressing", "pick up"),
    (policy(generation=2, status={"observedGeneration": 1, "conditions": [cond("Ready")]}),
     "Progressing", "generation 2"),
    (policy(status={"observedGeneration": 1}), "Progressing", "first evaluation"),
    (policy(status={"observedGeneration": 1, "conditions": [cond("Ready", reason="Evaluating")],
                    "lastTriggerTime": "2024-12-10T06:00:00Z"}),
     "Healthy", "Evaluating; last run created 2024-12-10T06:00:00Z"),
    (policy(status={"observedGeneration": 1, "conditions": [cond("Ready"), cond("Suspended", reason="Suspended")]}),
     "Suspended", "Suspended"),
    (policy(status={"observedGeneration": 1, "conditions": [cond("Failed", reason="ValidationFailed", message="bad cron")]}),
     "Degraded", "ValidationFailed: bad cron"),
    (policy(status={"observedGeneration": 1, "conditions": [
        cond("Ready"), cond("DataRefreshFailed", reason="MonitoringJobFailed", message="exit 2")]}),
     "Degraded", "MonitoringJobFailed: exit 2"),
    (policy(status={"observedGeneration": 1, "conditions": [cond("Ready", "False", reason="NoChampion")]}),
     "Degraded", "NoChampion"),
], ids=["no-status", "stale-generation", "not-evaluated", "ready", "suspended", "failed", "refresh-failed",
        "not-ready"])
def test_retrain_policy_health(obj: dict[str, Any], expected: str, in_message: str) -> None:
    status, message = health("RetrainPolicy", obj)
    assert status == expected
    assert in_message in message


# --- the Lua reads fields the CRDs define --------------------------------------------------------

def _status_schema(kind: str) -> dict[str, Any] | None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
            return version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return None


@pytest.mark.parametrize(("kind", "fields"), [
    ("TrainingRun", ["observedGeneration", "conditions", "progress.percent"]),
    ("RetrainPolicy", ["observedGeneration", "conditions", "lastTriggerTime"]),
])
def test_lua_reads_status_fields_the_crd_defines(kind: str, fields: list[str]) -> None:
    schema = _status_schema(kind)
    if schema is None:
        pytest.skip(f"crds/ holds no {kind} CRD yet")
    for dotted in fields:
        node = schema
        for part in dotted.split("."):
            assert part in node.get("properties", {}), f"{kind} status has no {dotted}"
            node = node["properties"][part]
    condition = schema["properties"]["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message"} <= set(condition)


# --- argocd-cm and the Applications ----------------------------------------------------------------

def test_argocd_cm_installs_exactly_the_lua_files() -> None:
    cm = yaml.safe_load((ARGO / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    expected = {KEY.format(kind=kind): (ARGO / "health" / f"pitwall.io_{kind}.lua").read_text()
                for kind in ("TrainingRun", "RetrainPolicy")}
    assert cm["data"] == expected


def _apps() -> dict[str, dict[str, Any]]:
    apps = {}
    for path in sorted((ARGO / "apps").glob("*.yaml")) + [ARGO / "root-application.yaml"]:
        app = yaml.safe_load(path.read_text())
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        assert (ROOT / app["spec"]["source"]["path"]).is_dir(), app["spec"]["source"]["path"]
        apps[app["metadata"]["name"]] = app
    return apps


def test_crds_are_applied_server_side_and_never_pruned() -> None:
    spec = _apps()["pitwall-crds"]["spec"]
    assert spec["source"]["path"] == "crds"
    assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
    assert "Prune=false" in spec["syncPolicy"]["syncOptions"]
    assert spec["syncPolicy"]["automated"]["prune"] is False


def test_operator_app_skips_chart_crds_and_its_values_pass_the_chart_schema() -> None:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk validates chart values")
    source = _apps()["pitwall-operator"]["spec"]["source"]
    assert source["path"] == "charts/pitwall"
    assert source["helm"]["skipCrds"] is True
    with helm.Chart.load(str(ROOT / source["path"])) as chart:
        chart.validate_schema(source["helm"]["valuesObject"])
    training = _apps()["pitwall-training"]["spec"]
    assert training["destination"]["namespace"] in source["helm"]["valuesObject"]["trainer"]["namespaces"]


def test_sync_waves_put_crds_first() -> None:
    waves = {name: int(app["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))
             for name, app in _apps().items() if name != "pitwall"}
    assert waves["pitwall-crds"] < waves["pitwall-training"] < waves["pitwall-operator"]


def test_training_folder_holds_valid_resources() -> None:
    api = pytest.importorskip("pitwall_api", reason="the API models parse the examples")
    parsers = {"TrainingRun": api.parse_training_run_spec, "RetrainPolicy": api.parse_retrain_policy_spec}
    seen = set()
    for path in sorted((ARGO / "training").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] == "pitwall.io/v1alpha1"
            parsers[doc["kind"]](doc["spec"], doc["metadata"]["name"])
            assert "status" not in doc, "git holds specs only: the operator owns status"
            seen.add(doc["kind"])
    assert seen == set(parsers)
