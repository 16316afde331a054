"""The resource kinds the sandbox serves: kmock's bundled built-ins, CRDs from files or the API."""

from __future__ import annotations

import copy
import functools
import gzip
import importlib.resources
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: KubeRay's RayCluster CRD, shared by the project (read from there, never copied).
KUBERAY_CRD = Path(__file__).resolve().parents[3] / ".." / "shared" / "schemas" / "kuberay" / "ray.io_rayclusters.yaml"


@dataclass(frozen=True)
class Kind:
    """One served resource (group, version, plural) and what the API server knows about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    status: bool = False  # has the status subresource
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # CRDs only
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    custom: bool = False
    columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)  # printer columns

    @property
    def key(self) -> tuple[str, str]:
        return self.group, self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource_name(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def builtin_kinds() -> list[Kind]:
    """Built-in resources from the discovery document bundled with kmock (a recent k3s)."""
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
    kinds = []
    for doc in json.loads(gzip.decompress(data)):
        group, _, version = doc["groupVersion"].rpartition("/")
        names = {r["name"] for r in doc["resources"]}
        for res in doc["resources"]:
            if "/" in res["name"]:
                continue
            kinds.append(Kind(group, version, res["name"], res["kind"], res["namespaced"],
                              singular=res.get("singularName", ""), status=f"{res['name']}/status" in names,
                              short_names=tuple(res.get("shortNames", ())),
                              categories=tuple(res.get("categories", ()))))
    return kinds


def crd_kinds(crd: dict[str, Any]) -> list[Kind]:
    """Kinds of every served version of a CustomResourceDefinition object."""
    spec, names = crd["spec"], crd["spec"]["names"]
    kinds = []
    versions = spec.get("versions", [])
    for version in versions:  # one version per kind: the storage version (no conversion emulated)
        if not version.get("served", True) or (len(versions) > 1 and not version.get("storage")):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object",
                                                                         "x-kubernetes-preserve-unknown-fields": True}
        kinds.append(Kind(spec["group"], version["name"], names["plural"], names["kind"],
                          spec.get("scope", "Namespaced") == "Namespaced",
                          singular=names.get("singular", names["kind"].lower()),
                          status="status" in (version.get("subresources") or {}), schema=schema,
                          short_names=tuple(names.get("shortNames", ())),
                          categories=tuple(names.get("categories", ())), custom=True,
                          columns=tuple(version.get("additionalPrinterColumns") or ())))
    return kinds


def load_crd_files(*paths: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in the given YAML files (others skipped)."""
    crds = []
    for path in paths:
        crds += copy.deepcopy(_load_crds(path.resolve(), path.stat().st_mtime))
    return crds


@functools.lru_cache(maxsize=32)
def _load_crds(path: Path, mtime: float) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(path.read_text(), Loader=loader)
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"]
