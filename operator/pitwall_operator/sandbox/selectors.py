"""Label and field selectors as the API server parses them (list and watch)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*$")


class SelectorError(ValueError):
    """A selector the API server would refuse (400)."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside `in (...)` sets."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def label_matcher(selector: str | None) -> Matcher:
    """Compile `a=b,c!=d,e in (x,y),!f` into a predicate on an object's labels."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in _split(selector or ""):
        if m := _SET_RE.match(part):
            key, op = m[2], m[3]
            values = {v.strip() for v in m[4].split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ_RE.match(part):
            key, op, value = m[1], m[2], m[3]
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _EXISTS_RE.match(part):
            key, negate = m[2], bool(m[1])
            checks.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string value of a dotted field path ('' when absent), as field selectors compare it."""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return str(node).lower()
    return str(node)


def field_matcher(selector: str | None) -> Matcher:
    """Compile `metadata.name=x,status.phase!=Running` (any dotted path) into a predicate."""
    checks: list[tuple[str, bool, str]] = []
    for part in _split(selector or ""):
        m = _EQ_RE.match(part)
        if not m:
            raise SelectorError(f"invalid field selector: {part!r}")
        checks.append((m[1], m[2] == "!=", m[3]))

    def match(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) != negate for path, negate, value in checks)

    return match
