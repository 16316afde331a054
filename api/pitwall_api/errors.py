"""Human error lines for a bad spec: what the operator puts in the ValidationFailed condition.

Pydantic's own text ("1 validation error for TrainingRunSpec ... Input should be ...
[type=..., input_value=..., input_type=...]") is written for Python programmers. A person who
ran `kubectl apply` wants one line per problem, naming the field as it appears in their YAML:
`spec.tuning.searchSpace.max_depth: low (12) must be below high (3)`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

MAX_LINES = 20  # a condition message should stay readable in `kubectl describe`


class SpecError(ValueError):
    """A spec that can never work as written: not retryable, fix the YAML. `.messages` has one line each."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("; ".join(messages))

    @property
    def message(self) -> str:
        """The text for the condition message (and `kubectl describe`)."""
        return "; ".join(self.messages)


def field_path(loc: tuple[Any, ...] | list[Any], prefix: str = "spec") -> str:
    """('tuning', 'searchSpace', 'max_depth') → spec.tuning.searchSpace.max_depth; ints become [i]."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part.startswith(("function-", "json-or-python")) or part in {"str", "int", "float", "bool"}):
            continue  # pydantic's internal validator names, meaningless in YAML
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value: Any) -> str:
    """Echo a value as the user wrote it: strings quoted, 1.0 as 1, long text cut."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling and indentation; see docs/api.md)"
    if kind == "missing":
        return "required field is missing"
    if kind in ("literal_error", "enum"):
        return f"{_short(given)} is not allowed; use one of {ctx.get('expected', '')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        word = {"greater_than_equal": "at least", "greater_than": "above", "less_than_equal": "at most", "less_than": "below"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {word} {_short(bound)} (got {_short(given)})"
    if kind == "string_pattern_mismatch":
        return f"{_short(given)} does not match the pattern {ctx.get('pattern')}"
    if kind == "too_long":
        return f"too many items or characters (at most {ctx.get('max_length')})"
    if kind == "too_short":
        return f"too few items or characters (at least {ctx.get('min_length')})"
    if kind == "string_too_long":
        return f"too long (at most {ctx.get('max_length')} characters)"
    if kind == "string_too_short":
        return f"too short (at least {ctx.get('min_length')} characters)"
    if kind.endswith("_parsing") or kind.endswith("_type"):
        expected = kind.replace("_parsing", "").replace("_type", "").replace("_", " ")
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "a string",
                    "dict": "a mapping", "list": "a list", "model": "a mapping", "model attributes": "a mapping"}.get(expected, expected)
        return f"must be {expected} (got {_short(given)})"
    msg = str(err.get("msg", "invalid"))
    for noise in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(noise)
    return msg


def format_errors(error: ValidationError, prefix: str = "spec") -> list[str]:
    """One `path: problem` line per error, deduplicated, at most MAX_LINES (then `... and N more`)."""
    lines: list[str] = []
    for err in error.errors(include_url=False):
        line = f"{field_path(err['loc'], prefix)}: {_message(err)}"
        if line not in lines:
            lines.append(line)
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES] + [f"... and {len(lines) - MAX_LINES} more"]
    return lines
