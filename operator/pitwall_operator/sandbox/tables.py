"""Server-side table printing for custom resources (`kubectl get` shows printer columns).

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`; for a CRD the server
answers a Table with Name plus the CRD's additionalPrinterColumns (each jsonPath evaluated on
the object; dates shown as ages), or Name and Age when the CRD declares none. Built-in kinds answer plain JSON and
kubectl prints them itself (fewer columns than a real server).
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

from jsonpath_ng.ext import parse

from .kinds import Kind
from .store import Obj

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


@functools.lru_cache(maxsize=256)
def _compiled(path: str) -> Any:
    return parse("$" + path if path.startswith(".") else path)


def _cell(obj: Obj, path: str) -> Any:
    try:
        found = [m.value for m in _compiled(path).find(obj)]
    except Exception:  # noqa: BLE001 - a bad jsonPath prints <none>, as on a real server
        return None
    if not found:
        return None
    return found[0] if len(found) == 1 else ",".join(str(v) for v in found)


def human_duration(seconds: float) -> str:
    """kubectl's age format (apimachinery duration.HumanDuration): 45s, 3m20s, 5h, 2d3h, 1y20d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m, h = s // 60, s // 3600
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    y = d // 365
    if y < 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def _age(value: Any) -> Any:
    try:
        then = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return value
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def table(kind: Kind, objs: list[Obj], resource_version: str, include: str = "Metadata") -> dict[str, Any]:
    columns = list(kind.columns) or [_AGE]
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                    "description": "Name must be unique within a namespace."}]
    definitions += [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                     "description": c.get("description", ""), "priority": c.get("priority", 0)} for c in columns]
    rows = []
    for obj in objs:
        cells = [obj["metadata"]["name"]]
        for column in columns:
            value = _cell(obj, column["jsonPath"])
            cells.append(_age(value) if column.get("type") == "date" and value is not None else value)
        shown = obj if include == "Object" else {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                 "metadata": obj["metadata"]}
        rows.append({"cells": cells, "object": shown})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions, "rows": rows}
