"""The generated CRDs: current, valid, structural, agreeing with the models, and a useful `kubectl get`.

No API server runs here, so the server's side is emulated in three parts: jsonschema for the
OpenAPI schema (with unknown fields rejected, as kubectl's strict field validation does), the
server's defaulting, and a small translation of our (deliberately simple) CEL rules to Python.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.ext import parse as jsonpath_ext_parse
from pitwall_api import SpecError, derive_state, parse_resource, set_condition
from pitwall_api.__main__ import main as api_main
from pitwall_api.crdgen import MAX_CRD_BYTES, build_crds, render, write_crds
from pitwall_api.docs import render_docs

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
BAD = sorted((ROOT / "examples" / "bad").glob("*.yaml"))
K8S_VERSION = "1.37.0"


@functools.cache
def crd_for(kind: str) -> dict[str, Any]:
    """Built once per kind (callers must not mutate it)."""
    return next(c for c in build_crds().values() if c["spec"]["names"]["kind"] == kind)


def schema_for(kind: str) -> dict[str, Any]:
    return crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


# --- the API server, emulated ------------------------------------------------------------------


def strict_jsonschema(node: Any) -> Any:
    """OpenAPI v3 CRD schema → draft-4 jsonschema rejecting unknown fields (kubectl --validate=strict)."""
    if isinstance(node, list):
        return [strict_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """The server's defaulting: fill defaults inside objects that exist, recursively."""
    if isinstance(obj, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                apply_defaults(sub, obj[name])
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for value in obj.values():
            apply_defaults(schema["additionalProperties"], value)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(schema["items"], item)
    return obj


def cel_to_python(rule: str) -> str:
    """Translate the CEL subset our rules use (has, size, contains, field access, && || !, ==, <, ternary)."""
    expr = re.sub(r"has\(self\.(\w+)\)", r"_has(self, '\1')", rule)
    expr = re.sub(r"(self(?:\.\w+)+)\.contains\(", r"_contains(\1, ", expr)
    expr = re.sub(r"self((?:\.\w+)+)", lambda m: "self" + "".join(f"['{p}']" for p in m.group(1)[1:].split(".")), expr)
    expr = expr.strip().replace("size(", "len(").replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    expr = expr.strip()
    ternary = re.fullmatch(r"(.*?) \? (.*) : (.*)", expr)
    if ternary:
        expr = f"(({ternary.group(2)}) if ({ternary.group(1)}) else ({ternary.group(3)}))"
    return expr


def cel_failures(schema: dict[str, Any], obj: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, message) of every CEL rule that is false, walking the object along its schema."""
    failures = []
    for rule in schema.get("x-kubernetes-validations", []):
        scope = {"_has": lambda o, k: k in o, "_contains": lambda s, sub: sub in s, "len": len, "self": obj}
        if not eval(cel_to_python(rule["rule"]), scope):  # noqa: S307 - our own rules, test only
            failures.append((path, rule["message"]))

    def join(key: str) -> str:
        return f"{path}.{key}" if path else key

    if isinstance(obj, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in obj:
                failures += cel_failures(sub, obj[name], join(name))
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in obj.items():
            failures += cel_failures(schema["additionalProperties"], value, join(key))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            failures += cel_failures(schema["items"], item, f"{path}[{i}]")
    return failures


def server_errors(body: dict[str, Any]) -> list[str]:
    """`path: message` lines the emulated API server gives for a manifest (empty = admitted)."""
    schema = schema_for(body["kind"])
    validator = jsonschema.Draft4Validator(strict_jsonschema(schema))
    lines = []
    for err in validator.iter_errors(body):
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path).replace(".[", "[")
        if err.validator == "additionalProperties":
            for name in re.findall(r"'([^']+)'", err.message.split("(")[-1]):
                lines.append(f"{path}.{name}: unknown field")
        else:
            lines.append(f"{path}: {err.message}")
    if lines:
        return lines
    defaulted = apply_defaults(schema, copy.deepcopy(body))
    return [f"{p}: {m}" for p, m in cel_failures(schema, defaulted)]


def model_errors(body: dict[str, Any]) -> list[str]:
    try:
        parse_resource(body)
    except SpecError as error:
        return error.messages
    return []


def paths(lines: list[str]) -> set[str]:
    return {line.split(": ", 1)[0] for line in lines}


# --- generated files ---------------------------------------------------------------------------


def test_generated_crds_equal_the_checked_in_ones(tmp_path):
    written = write_crds(tmp_path / "fresh")
    assert sorted(p.name for p in written) == ["retrainpolicies.pitwall.io.yaml", "trainingruns.pitwall.io.yaml"]
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(p.name for p in written)
    for path in written:
        assert path.read_bytes() == (CRD_DIR / path.name).read_bytes(), (
            f"crds/{path.name} is stale: run `python -m pitwall_api crds --out crds`"
        )


def test_cli_check_mode(tmp_path, capsys):
    assert api_main(["crds", "--out", str(CRD_DIR), "--check"]) == 0
    assert api_main(["crds", "--out", str(tmp_path), "--check"]) == 1
    assert api_main(["crds", "--out", str(tmp_path)]) == 0
    assert api_main(["crds", "--out", str(tmp_path), "--check"]) == 0
    assert api_main(["docs", "--out", str(ROOT / "docs" / "api.md"), "--check"]) == 0


def test_docs_are_current_and_cover_every_field():
    text = (ROOT / "docs" / "api.md").read_text()
    assert text == render_docs(), "docs/api.md is stale: run `python -m pitwall_api docs --out docs/api.md`"

    def fields(node: dict[str, Any]) -> set[str]:
        out = set()
        for name, sub in node.get("properties", {}).items():
            out.add(name)
            for child in (sub, sub.get("items", {}), sub.get("additionalProperties", {})):
                if isinstance(child, dict):
                    out |= fields(child)
        return out

    for kind in ("TrainingRun", "RetrainPolicy"):
        schema = schema_for(kind)
        for name in fields(schema["properties"]["spec"]) | fields(schema["properties"]["status"]):
            assert f"| `{name}` |" in text, f"{kind} field {name} is not documented"


@pytest.mark.parametrize("name", ["trainingruns.pitwall.io.yaml", "retrainpolicies.pitwall.io.yaml"])
def test_crd_passes_strict_validation_and_fits_client_side_apply(name):
    text = (CRD_DIR / name).read_text()
    assert len(text.encode()) < MAX_CRD_BYTES
    crd = yaml.safe_load(text)
    kubernetes_validate.validate(crd, K8S_VERSION, strict=True)  # raises on any problem
    assert render(crd) == text  # the YAML round-trips: nothing YAML-special (anchors, tags) crept in


def test_names_columns_and_subresources():
    tr, rp = crd_for("TrainingRun"), crd_for("RetrainPolicy")
    for crd, short in ((tr, "tr"), (rp, "rp")):
        assert crd["spec"]["group"] == "pitwall.io" and crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["shortNames"] == [short]
        assert crd["spec"]["names"]["categories"] == ["pitwall"]
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        assert status["kopf"] == {**status["kopf"], "type": "object", "x-kubernetes-preserve-unknown-fields": True}
        assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert [c["name"] for c in tr["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")] == [
        "Model", "Algorithm", "State", "Phase", "Progress", "Best", "Promoted", "Age"]
    assert [c["name"] for c in rp["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")] == [
        "Model", "Schedule", "Suspended", "Last Trigger", "Champion", "Age"]


# --- structural schema -------------------------------------------------------------------------


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += walk(node[key], f"{path}[]")
    return out


@pytest.mark.parametrize("kind", ["TrainingRun", "RetrainPolicy"])
def test_schema_is_structural_and_bounded(kind):
    schema = schema_for(kind)
    rules = 0
    for path, node in walk(schema):
        preserve = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        assert "type" in node or preserve, f"{path}: no type"
        assert not {"$ref", "$defs", "oneOf", "allOf", "not", "nullable", "title", "const"} & set(node), path
        if "anyOf" in node:  # only the int-or-string form the server itself uses for quantities
            assert node.get("x-kubernetes-int-or-string") and node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: unbounded list (CEL cost estimates and etcd size need a bound)"
            if node.get("x-kubernetes-list-type") == "map":
                for key in node["x-kubernetes-list-map-keys"]:
                    assert key in node["items"].get("required", []), f"{path}: map key {key} must be required"
        if node.get("type") == "object" and "additionalProperties" in node and not path.endswith(".kopf"):
            assert "maxProperties" in node, f"{path}: unbounded map"
        if "default" in node:
            jsonschema.Draft4Validator(strict_jsonschema(node)).validate(node["default"])
        for rule in node.get("x-kubernetes-validations", []):
            rules += 1
            assert len(rule["rule"]) < 200 and rule["message"], path
            compile(cel_to_python(rule["rule"]), path, "eval")  # the translation covers every rule
            for name in re.findall(r"self\.(\w+)", rule["rule"]):  # cheap rules: bounded strings only
                sub = node["properties"][name] if name != "metadata" else {}
                assert sub.get("type") != "string" or "maxLength" in sub, f"{path}.{name}: string in a rule needs maxLength"
    assert 0 < rules < 30
    assert schema["properties"]["metadata"] == {"type": "object"}


# --- examples against both validators ----------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_admitted_by_the_crd_and_the_models(path):
    body = yaml.safe_load(path.read_text())
    assert body["apiVersion"] == "pitwall.io/v1alpha1"
    assert server_errors(body) == []
    assert model_errors(body) == []


BAD_PATHS = {
    "wrong-enum.yaml": "spec.model",
    "low-above-high.yaml": "spec.tuning.searchSpace.max_depth",
    "unknown-field.yaml": "spec.data.seasonz",
    "negative-num-samples.yaml": "spec.tuning.numSamples",
}


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_example_is_rejected_by_both_naming_the_same_field(path):
    body = yaml.safe_load(path.read_text())
    expected = BAD_PATHS[path.name]
    assert expected in paths(server_errors(body)), server_errors(body)
    assert expected in paths(model_errors(body)), model_errors(body)


def _tr(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "t"},
            "spec": {"model": "race_winner", "data": {"seasons": [2024]}, **spec}}


SPACE = {"x": {"type": "float", "low": 0, "high": 1}}
# Every CEL rule (and several plain bounds) exercised once each way; the server and the models agree.
AGREEMENT = [
    _tr(),
    _tr(data={"seasons": [2024], "source": {}}),
    _tr(data={"seasons": [2024], "source": {"fetch": {}}}),
    _tr(data={"seasons": [2024], "source": {"pvc": {"claimName": "d", "path": "f1/../../etc"}}}),
    _tr(data={"seasons": [2024], "source": {"pvc": {"claimName": "d"}, "fetch": {}}}),
    _tr(evaluation={"holdoutRaces": 3}),
    _tr(evaluation={"holdoutRaces": 3, "holdoutSeason": 2024}),
    _tr(tuning={"searchSpace": SPACE}),
    _tr(tuning={"searchSpace": {"x": {"type": "float", "low": 1, "high": 0}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "float", "low": 0}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "categorical", "values": ["a", 1, True]}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "categorical", "values": ["a"], "low": 0}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "logfloat", "low": 0, "high": 1}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "logfloat", "low": 0.001, "high": 1}}}),
    _tr(tuning={"searchSpace": SPACE, "scheduler": {"maxT": 5}}),
    _tr(tuning={"searchSpace": SPACE, "scheduler": {"maxT": 50, "gracePeriod": 5}}),
    _tr(tuning={"searchSpace": SPACE, "engine": "ray", "rayCluster": {"workers": 0}}),
    _tr(tuning={"searchSpace": SPACE, "rayCluster": {"workers": 1}}),
    _tr(tuning={"searchSpace": SPACE, "engine": "ray", "optuna": {}}),
    _tr(tuning={"searchSpace": SPACE, "numSamples": 4, "maxConcurrentTrials": 8}),
    _tr(tuning={"searchSpace": SPACE, "numSamples": 0}),
    _tr(tuning={"searchSpace": {}}),
    _tr(env=[{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]),
    _tr(env=[{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
    _tr(env=[{"name": "A", "valueFrom": {}}]),
    _tr(tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]),
    _tr(tolerations=[{"key": "gpu", "operator": "Exists", "value": "x"}]),
    _tr(resources={"requests": {"cpu": 4, "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}}),
    _tr(resources={"limits": {"memory": "16GB"}}),
    _tr(resources={"limits": {"cpu": True}}),
    _tr(promotion={"minImprovement": -1}),
    _tr(promotion={"alias": "prod champion"}),
    _tr(runPolicy={"backoffLimit": -1}),
    _tr(suspend="yes"),
    _tr(notifications={"events": ["Failed", "Sometimes"]}),
    {**_tr(), "metadata": {"name": "x" * 51}},
    {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": "p"},
     "spec": {"template": {"spec": _tr()["spec"]}}},
    {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": "p"},
     "spec": {"schedule": "0 6 * * 2", "template": {"spec": _tr()["spec"]}}},
    {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": "p"},
     "spec": {"triggers": {"newData": {}}, "checkInterval": "", "template": {"spec": _tr()["spec"]}}},
    {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": "p"},
     "spec": {"schedule": "every tuesday", "template": {"spec": _tr()["spec"]}}},
]

# What only the models can check (an API server would admit these; the operator then reports
# ValidationFailed): quantities compared, parameter names, whole-number int bounds, time zones.
MODEL_ONLY = [
    _tr(resources={"requests": {"cpu": "8"}, "limits": {"cpu": "4"}}),
    _tr(tuning={"searchSpace": {"max-depth": {"type": "int", "low": 1, "high": 3}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "int", "low": 1.5, "high": 3}}}),
    # a list of untyped items is invisible to CEL, so only the models see `values` on an int
    _tr(tuning={"searchSpace": {"x": {"type": "int", "low": 0, "high": 3, "values": [1]}}}),
    _tr(tuning={"searchSpace": {"x": {"type": "categorical"}}}),
    _tr(data={"seasons": [2024, 2024]}),  # a `set` list: the server rejects duplicates too, jsonschema does not
    {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": "p"},
     "spec": {"schedule": "0 6 * * 2", "timeZone": "Mars/Olympus", "template": {"spec": _tr()["spec"]}}},
]


@pytest.mark.parametrize("body", AGREEMENT, ids=lambda b: str(b["spec"])[-60:])
def test_server_and_models_agree(body):
    server, models = server_errors(body), model_errors(body)
    assert bool(server) == bool(models), f"server: {server}\nmodels: {models}"
    if server:  # and they blame the same field (or its parent object for cross-field rules)
        assert paths(server) & paths(models) or any(
            m.startswith(s) or s.startswith(m) for s in paths(server) for m in paths(models)
        ), f"server: {server}\nmodels: {models}"


@pytest.mark.parametrize("body", MODEL_ONLY, ids=lambda b: str(b["spec"])[-60:])
def test_models_are_stricter_where_the_schema_cannot_say(body):
    assert server_errors(body) == [] and model_errors(body) != []


# --- printer columns ---------------------------------------------------------------------------

T0, T1 = "2026-05-26T06:00:00Z", "2026-05-26T07:10:00Z"


def cells(kind: str, obj: dict[str, Any], wide: bool = False) -> dict[str, Any]:
    """Evaluate each column's JSONPath the way kubectl does: `{.a.b}` with the dot stripped; empty if absent.

    The object is defaulted first, as the server stores it (so `suspend` reads false, not empty).
    """
    obj = apply_defaults(schema_for(kind), copy.deepcopy(obj))
    out = {}
    for col in crd_for(kind)["spec"]["versions"][0]["additionalPrinterColumns"]:
        if col.get("priority") and not wide:
            continue
        expr = col["jsonPath"].strip("{}").lstrip(".")
        found = [m.value for m in jsonpath_parse(expr).find(obj)]
        out[col["name"]] = found[0] if len(found) == 1 else (found or "")
    return out


def finished_run() -> dict[str, Any]:
    conds: list = []
    conds = set_condition(conds, "Running", True, "JobRunning", now=T0)
    conds = set_condition(conds, "ModelRegistered", True, "VersionCreated", now=T1)
    conds = set_condition(conds, "Promoted", True, "BetterThanChampion", now=T1)
    conds = set_condition(conds, "Running", False, "Completed", now=T1)
    conds = set_condition(conds, "Succeeded", True, "TrainerSucceeded", now=T1)
    body = yaml.safe_load((ROOT / "examples" / "trainingrun.yaml").read_text())
    body["metadata"]["creationTimestamp"] = T0
    body["status"] = {
        "state": derive_state(conds), "conditions": conds, "observedGeneration": 1, "jobName": "race-winner-xgb-train",
        "progress": {"phase": "Done", "percent": 100, "bestMetric": 0.583, "currentMetric": 0.583, "metricName": "top1_accuracy"},
        "mlflow": {"modelVersion": "7"}, "promotion": {"promoted": True, "alias": "champion", "version": "7", "previousVersion": "6"},
    }
    return body


def test_trainingrun_columns_on_a_promoted_run():
    body = finished_run()
    assert server_errors(body) == []  # the status the operator writes fits the schema
    assert cells("TrainingRun", body) == {
        "Model": "race_winner", "Algorithm": "logistic_regression", "State": "Succeeded", "Phase": "Done", "Progress": 100,
        "Best": 0.583, "Promoted": "7", "Age": T0,
    }
    assert cells("TrainingRun", body, wide=True)["Job"] == "race-winner-xgb-train"
    # Why a derived state: filtering the True conditions prints three words for this one run.
    true_types = [m.value for m in jsonpath_ext_parse('status.conditions[?(@.status=="True")].type').find(body)]
    assert sorted(true_types) == ["ModelRegistered", "Promoted", "Succeeded"]


def test_trainingrun_columns_while_running_and_before_status():
    body = yaml.safe_load((ROOT / "examples" / "trainingrun-tuned.yaml").read_text())
    assert cells("TrainingRun", body) == {"Model": "race_winner", "Algorithm": "xgboost", "State": "", "Phase": "", "Progress": "",
                                          "Best": "", "Promoted": "", "Age": ""}
    conds = set_condition([], "Running", True, "TrialsRunning", now=T0)
    body["status"] = {"state": derive_state(conds), "conditions": conds,
                      "progress": {"phase": "Tuning", "percent": 37, "message": "trial 37/100, best 0.55", "step": 37,
                                   "totalSteps": 100, "bestMetric": 0.55, "etaSeconds": 600},
                      "resources": {"cpuCores": 1.5, "memoryBytes": 2**30, "peakCpuCores": 2.0, "peakMemoryBytes": 2**31}}
    assert server_errors(body) == []
    row = cells("TrainingRun", body)
    assert (row["State"], row["Phase"], row["Progress"], row["Best"], row["Promoted"]) == ("Running", "Tuning", 37, 0.55, "")


def test_retrainpolicy_columns():
    body = yaml.safe_load((ROOT / "examples" / "retrainpolicy.yaml").read_text())
    body["metadata"]["creationTimestamp"] = T0
    body["status"] = {
        "lastCheckTime": T1, "lastTriggerTime": T1, "lastTriggerReasons": ["Schedule", "AfterNewRace"],
        "activeRuns": ["race-winner-weekly-202605260600"], "champion": {"version": "7", "metric": "top1_accuracy", "value": 0.58},
        "promotionHistory": [{"time": T1, "runName": "race-winner-weekly-202605190600", "version": "7", "promoted": True}],
        "kopf": {"progress": {"timer_fn": {"started": T0}}},
        "conditions": set_condition([], "Ready", True, "Evaluating", now=T0),
    }
    assert server_errors(body) == []
    assert cells("RetrainPolicy", body) == {"Model": "race_winner", "Schedule": "0 6 * * 2", "Suspended": False,
                                            "Last Trigger": T1, "Champion": "7", "Age": T0}
