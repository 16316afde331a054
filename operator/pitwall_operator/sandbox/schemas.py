"""Schema checks: CRD openAPIV3Schema (prune, default, validate) and kubernetes-validate for built-ins."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

import jsonschema

#: The Kubernetes version whose schemas built-in objects are checked against (strict mode).
PINNED_K8S_VERSION = "1.32"

_K8S_KEYS = ("x-kubernetes-", "nullable", "default", "example", "externalDocs", "xml", "discriminator")


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate a structural OpenAPI v3 schema into JSON Schema (nullable, int-or-string)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith(_K8S_KEYS):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v) for v in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def prune_and_default(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Drop unknown fields and fill defaults in place, as the API server does; return pruned paths."""
    pruned: list[str] = []
    if not isinstance(schema, dict):
        return pruned
    if isinstance(obj, dict) and schema.get("type") == "object" or isinstance(obj, dict) and "properties" in schema:
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
        for key, sub in (props or {}).items():
            if key not in obj and isinstance(sub, dict) and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
        for key in list(obj):
            child = f"{path}.{key}" if path else key
            if props is not None and key in props:
                pruned += prune_and_default(obj[key], props[key], child)
            elif isinstance(extra, dict):
                pruned += prune_and_default(obj[key], extra, child)
            elif not keep_unknown and (props is not None or extra is False):
                del obj[key]
                pruned.append(child)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            pruned += prune_and_default(item, schema["items"], f"{path}[{index}]")
    return pruned


_VALIDATORS: dict[int, tuple[dict[str, Any], jsonschema.Draft7Validator]] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    """One compiled validator per schema object (RayCluster's schema alone is ~1 MB of YAML)."""
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _VALIDATORS[id(schema)] = (schema, jsonschema.Draft7Validator(to_json_schema(schema)))
    return cached[1]


def schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, message) for each violation of the CRD schema, ordered by path."""
    validator = _validator(schema)
    result = []
    for error in validator.iter_errors(obj):
        field = ""
        for part in error.absolute_path:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        result.append((field or "<root>", error.message))
    return sorted(result)


def builtin_violations(obj: dict[str, Any], version: str = PINNED_K8S_VERSION) -> list[str]:
    """kubernetes-validate (strict) messages for a built-in object; [] when valid or kind unknown."""
    validator = _builtin_validator(obj.get("apiVersion", ""), obj.get("kind", ""), version)
    if validator is None:
        return []
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]


@functools.lru_cache(maxsize=128)
def _builtin_validator(api_version: str, kind: str, version: str) -> jsonschema.protocols.Validator | None:
    """kubernetes-validate's strict schema for one kind, loaded once (it re-reads ~1 MB per call)."""
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    chosen = [v for v in utils.all_versions() if utils.major_minor(v) <= version][-1]
    folder = f"kubernetes-json-schema/v{chosen}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)
