"""Turn the pydantic models into apiextensions.k8s.io/v1 CRDs with structural schemas.

Pydantic emits JSON Schema 2020-12 (`$ref`, `anyOf: [X, null]` for optionals, numeric
`exclusiveMinimum`, `additionalProperties: false`); the API server wants a structural OpenAPI v3
subset: every node typed and inline, no `anyOf` carrying types, no `additionalProperties` next to
`properties`. This module does that translation and nothing else, so the models stay the source.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from pitwall_api import retrainpolicy, trainingrun
from pitwall_api.common import GROUP, VERSION, cel
from pitwall_api.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus
from pitwall_api.trainingrun import TrainingRunSpec, TrainingRunStatus

CATEGORY = "pitwall"
MAX_CRD_BYTES = 256 * 1024  # client-side `kubectl apply` keeps the whole object in an annotation
# Names leave room for suffixes: Job `<run>-train` (its pods' job-name label is capped at 63),
# RayCluster `<run>-ray` (KubeRay derives service and pod names from it); a policy's runs are
# named `<policy>-<timestamp>-<reason>`.
MAX_NAME = {trainingrun.KIND: 50, retrainpolicy.KIND: 30}

# Keys pydantic emits that a CRD schema must not carry (or that only add noise).
_DROP = {"title", "$defs", "examples"}


class SchemaError(ValueError):
    """The models produced something the API server would reject as non-structural."""


def _resolve(node: Any, defs: dict[str, Any], path: str) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs, path) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        target.update({k: v for k, v in node.items() if k != "$ref"})  # the field's description wins
        node = target
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise SchemaError(f"{path}: a union of {len(options)} types is not structural; use one type")
        option = _resolve(options[0], defs, path)
        merged = dict(option)
        merged.update(node)  # outer description/default win
        node = merged
    if node.get("default", 0) is None:
        del node["default"]  # optional = absent; the server prunes nulls of non-nullable fields
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[plain] = node[bound]
            node[bound] = True
    if node.get("type") == "string" and "enum" in node and "maxLength" not in node:
        # CEL's cost estimator ignores enums: an unbounded string compared in a rule is costed at
        # the request-size maximum, and rules inside lists multiply that (the CRD is then refused).
        node["maxLength"] = max(len(str(v)) for v in node["enum"])
    if node.get("additionalProperties") is False or node.get("additionalProperties") is True:
        del node["additionalProperties"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _resolve(value, defs, f"{path}[]")
        elif key == "description":
            out[key] = " ".join(str(value).split())
        else:
            out[key] = value
    _check_structural(out, path)
    return out


def _check_structural(node: dict[str, Any], path: str) -> None:
    """Every node has a type unless it preserves unknown fields or is int-or-string."""
    if "type" not in node and not (
        node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    ):
        raise SchemaError(f"{path}: no type")
    if node.get("type") == "object" and "properties" in node and "additionalProperties" in node:
        raise SchemaError(f"{path}: properties and additionalProperties together")


def _ordered(node: Any) -> Any:
    """Stable, readable key order: type and description first, then the rest alphabetically."""
    if isinstance(node, list):
        return [_ordered(x) for x in node]
    if not isinstance(node, dict):
        return node
    first = [k for k in ("type", "description") if k in node]
    rest = sorted(k for k in node if k not in first)
    out = {k: _ordered(node[k]) for k in first + rest}
    if "properties" in out:  # keep the models' field order, not alphabetical
        out["properties"] = {k: _ordered(v) for k, v in node["properties"].items()}
    return out


def model_schema(model: type) -> dict[str, Any]:
    """The structural OpenAPI schema of one pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = raw.get("$defs", {})
    return _resolve(raw, defs, model.__name__)


def _root_schema(kind: str, description: str, spec: type, status: type) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "pitwall.io/v1alpha1"},
            "kind": {"type": "string", "description": kind},
            "metadata": {"type": "object"},
            "spec": model_schema(spec),
            "status": model_schema(status),
        },
        "x-kubernetes-validations": [
            cel(
                f"size(self.metadata.name) <= {MAX_NAME[kind]}",
                f"metadata.name must be at most {MAX_NAME[kind]} characters (child resource names add a suffix)",
            )
        ],
    }


def _column(name: str, type_: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        col["priority"] = priority
    return col


AGE = _column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

TRAININGRUN_COLUMNS = [
    _column("Model", "string", ".spec.model", "Model trained."),
    _column("Algorithm", "string", ".spec.algorithm", "Estimator family."),
    _column("State", "string", ".status.state", "Pending, Running, Succeeded, Failed or Suspended (derived from the True conditions)."),
    _column("Phase", "string", ".status.progress.phase", "Loading, Features, Tuning, Evaluating, Training, Registering, Promoting or Done."),
    _column("Progress", "integer", ".status.progress.percent", "Percent done over all phases."),
    _column("Best", "number", ".status.progress.bestMetric", "Best objective value so far, rounded to 3 decimals (the final metric when done)."),
    _column("Promoted", "string", ".status.promotion.version", "Model version that received the alias."),
    AGE,
    _column("Job", "string", ".status.jobName", "Training Job.", priority=1),
    _column("Version", "string", ".status.mlflow.modelVersion", "Registered model version.", priority=1),
]

RETRAINPOLICY_COLUMNS = [
    _column("Model", "string", ".spec.template.spec.model", "Model retrained."),
    _column("Schedule", "string", ".spec.schedule", "Cron schedule."),
    _column("Suspended", "boolean", ".spec.suspend", "Whether creating runs is suspended."),
    _column("Last Trigger", "date", ".status.lastTriggerTime", "Time since a run was last created."),
    _column("Champion", "string", ".status.champion.version", "Model version holding the alias."),
    AGE,
    _column("Active", "string", ".status.activeRuns", "Active TrainingRuns.", priority=1),
]


def _crd(kind: str, plural: str, short: str, description: str, spec: type, status: type, columns: list) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "pitwall", "app.kubernetes.io/part-of": "pitwall"},
            "annotations": {"pitwall.io/generated-by": "python -m pitwall_api crds (do not edit)"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": _root_schema(kind, description, spec, status)},
                }
            ],
        },
    }


def build_crds() -> dict[str, dict[str, Any]]:
    """File name → CRD dict, for both resources."""
    crds = {
        f"{trainingrun.PLURAL}.{GROUP}.yaml": _crd(
            trainingrun.KIND, trainingrun.PLURAL, "tr",
            "One training (optionally tuned) of one F1 model, evaluated, tracked in MLflow and promoted when better.",
            TrainingRunSpec, TrainingRunStatus, TRAININGRUN_COLUMNS,
        ),
        f"{retrainpolicy.PLURAL}.{GROUP}.yaml": _crd(
            retrainpolicy.KIND, retrainpolicy.PLURAL, "rp",
            "Creates TrainingRuns from a template on a cron schedule and on data triggers (new race, drift, new data).",
            RetrainPolicySpec, RetrainPolicyStatus, RETRAINPOLICY_COLUMNS,
        ),
    }
    return {name: _ordered(crd) for name, crd in crds.items()}


HEADER = "# Generated from api/pitwall_api by `python -m pitwall_api crds`. Do not edit.\n"


def render(crd: dict[str, Any]) -> str:
    """The YAML text written to disk (deterministic: the drift test compares bytes)."""
    return HEADER + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)


def write_crds(out_dir: str | Path) -> list[Path]:
    """Write both CRDs into `out_dir`; refuse one over 256 KiB (client-side apply would fail)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, crd in build_crds().items():
        text = render(crd)
        if len(text.encode()) > MAX_CRD_BYTES:
            raise SchemaError(f"{name} is {len(text.encode())} bytes, over {MAX_CRD_BYTES}")
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def openapi_schema(kind: str) -> dict[str, Any]:
    """A CRD's openAPIV3Schema, for tests."""
    plural = {trainingrun.KIND: trainingrun.PLURAL, retrainpolicy.KIND: retrainpolicy.PLURAL}[kind]
    crd = build_crds()[f"{plural}.{GROUP}.yaml"]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
