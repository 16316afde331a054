"""Building blocks shared by both resources: base classes, Kubernetes-shaped small types, conditions.

The models are the one source of truth: the CRD generator reads their JSON schema, the operator
parses specs with them, and the docs are printed from them. So every constraint that the API
server can check lives in a `Field(...)` (it becomes an OpenAPI bound), and every cross-field rule
lives twice: as a pydantic validator (the operator's check, with a readable message) and as a cheap
CEL rule in `cel_rules(...)` (the API server's check at `kubectl apply` time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pitwall_api.contract import API_VERSION, GROUP, RESERVED_ENV, VERSION  # noqa: F401 - re-exported

# metav1.Condition bounds, copied so a condition the operator writes always fits the schema.
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# The Kubernetes quantity grammar (the same regex controller-gen emits for resource.Quantity).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `fieldPath` makes the server name the child field."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules into the generated CRD (ignored by pydantic itself)."""
    return {"x-kubernetes-validations": list(rules)}


class _CamelModel(BaseModel):
    """camelCase aliases match the YAML; snake_case names work too so Python callers stay idiomatic."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON shape (camelCase, unset optionals left out) for manifests, ConfigMaps and patches."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(_CamelModel):
    """Strict: an unknown field is an error, like an API server whose schema has no preserve-unknown-fields.

    Strict types too, as the API server's: `suspend: "yes"` or `numSamples: "10"` are errors, not coerced.
    """

    model_config = ConfigDict(extra="forbid", strict=True, use_enum_values=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        """`field: null` means "not set", as on the API server (it prunes nulls, then applies defaults)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class StatusModel(_CamelModel):
    """Lenient: every field optional, unknown fields ignored, so partial status patches parse."""

    model_config = ConfigDict(extra="ignore")


def _quantity(value: Any) -> Any:
    """YAML reads `cpu: 4` as an int and `cpu: 0.5` as a float; Kubernetes accepts both as quantities."""
    if isinstance(value, bool):
        raise ValueError("must be a quantity such as 500m, 4 or 8Gi, not a boolean")
    if isinstance(value, int | float):
        value = format(value, "g") if isinstance(value, float) else str(value)
    if not isinstance(value, str) or not _QUANTITY_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: 500m, 4, 8Gi, 1.5)")
    return value


# int-or-string with the quantity pattern: the schema the API server itself uses for resources.
Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}


def quantity_value(text: str) -> Decimal:
    """A quantity as a number, to compare requests with limits (the API server only checks the syntax)."""
    match = re.match(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9.]+)?)([KMGTPE]i|[numkMGTPE])?$", text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2) or ""])
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None


class Resources(SpecModel):
    """Container resources, the shape of core/v1 ResourceRequirements (requests and limits only)."""

    requests: dict[str, Quantity] | None = Field(
        None, max_length=16, description="Minimum resources, e.g. `{cpu: \"4\", memory: 8Gi}`."
    )
    limits: dict[str, Quantity] | None = Field(
        None, max_length=16, description="Maximum resources, e.g. `{cpu: \"8\", memory: 16Gi}`."
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name, limit in (self.limits or {}).items():
            request = (self.requests or {}).get(name)
            if request is not None and quantity_value(request) > quantity_value(limit):
                raise ValueError(f"requests.{name} ({request}) must not exceed limits.{name} ({limit})")
        return self


class SecretKeyRef(SpecModel):
    """One key of a Secret in the resource's namespace (never the value itself: it stays out of git)."""

    name: str = Field(..., min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Secret name.")
    key: str = Field(..., min_length=1, max_length=253, description="Key inside the Secret.")


class KeyRef(SecretKeyRef):
    """A key of a Secret or ConfigMap, as in core/v1 EnvVarSource."""

    optional: bool | None = Field(None, description="Allow the Secret/ConfigMap or key to be missing.")




class EnvVarSource(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel("has(self.secretKeyRef) != has(self.configMapKeyRef)", "set exactly one of secretKeyRef or configMapKeyRef")
        )
    )
    secret_key_ref: KeyRef | None = Field(None, description="Read the value from a Secret key.")
    config_map_key_ref: KeyRef | None = Field(None, description="Read the value from a ConfigMap key.")

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("set exactly one of secretKeyRef or configMapKeyRef")
        return self


class EnvVar(SpecModel):
    """An environment variable of the trainer container, as in core/v1 EnvVar (no fieldRef)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(cel("!(has(self.value) && has(self.valueFrom))", "set value or valueFrom, not both"))
    )
    name: str = Field(..., min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Variable name.")
    value: str | None = Field(None, max_length=4096, description="Literal value.")
    value_from: EnvVarSource | None = Field(None, description="Value taken from a Secret or ConfigMap key.")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_ENV:
            raise ValueError(f"{name} is set by the operator (where the trainer reports, or how Ray authenticates)")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError("set value or valueFrom, not both")
        return self


class Toleration(SpecModel):
    """A pod toleration, as in core/v1 Toleration."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(cel("self.operator != 'Exists' || !has(self.value)", "operator Exists takes no value"))
    )
    key: str | None = Field(None, max_length=316, description="Taint key; empty with operator Exists matches all taints.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="How the key and value match.")
    value: str | None = Field(None, max_length=63, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="With NoExecute: how long the pod stays bound after the taint appears."
    )

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("operator Exists takes no value")
        return self


# ---------------------------------------------------------------------------------------------
# Conditions (metav1.Condition) and the derived state.

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """metav1.Condition: the shape `kubectl wait --for=condition=Succeeded` and every UI understand."""

    type: str = Field(..., max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$", description="Condition type, e.g. Running, Succeeded, Failed.")
    status: ConditionStatus = Field(..., description="True, False or Unknown.")
    reason: str = Field(..., min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN, description="CamelCase machine-readable reason, e.g. BackoffLimitExceeded.")
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(..., description="When status last changed (not when the message changed).")
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation this condition was computed for.")


def conditions_schema_extra() -> dict[str, Any]:
    """Conditions are a map keyed by type: server-side apply and merge patches treat them per type."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


def now_iso() -> str:
    """RFC 3339 UTC time with second precision, as Kubernetes writes metav1.Time."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_condition(
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """A metav1.Condition dict; `status` may be a bool. `now` is injectable for deterministic tests.

    A reason the API server would refuse (it must be CamelCase, no spaces) raises here, in unit
    tests, instead of failing the whole status patch in a cluster.
    """
    if not re.match(CONDITION_REASON_PATTERN, reason) or len(reason) > 1024:
        raise ValueError(f"condition reason {reason!r} must be CamelCase like BackoffLimitExceeded")
    if isinstance(status, bool):
        status = "True" if status else "False"
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": now or now_iso(),
    }
    if observed_generation is not None:
        cond["observedGeneration"] = observed_generation
    return cond


def get_condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """The condition of that type, or None."""
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]] | None, type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """A new list with that condition set (input untouched), like meta.SetStatusCondition.

    lastTransitionTime changes only when the status flips, so "since when is it Running?" stays
    answerable; reason, message and observedGeneration are updated in place. Order is kept.
    """
    new = make_condition(type_, status, reason, message, observed_generation, now)
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions or []:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        if cond.get("status") == new["status"] and cond.get("lastTransitionTime"):
            new["lastTransitionTime"] = cond["lastTransitionTime"]
        out.append(new)
    if not found:
        out.append(new)
    return out


def conditions_equal(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None) -> bool:
    """True when both lists say the same thing; lets handlers write status only when it changed."""
    return sorted((a or []), key=lambda c: c.get("type", "")) == sorted((b or []), key=lambda c: c.get("type", ""))


State = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"]
STATES: tuple[str, ...] = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
TERMINAL_STATES: frozenset[str] = frozenset({"Succeeded", "Failed"})
# Highest priority first: a terminal condition wins over Running even if the operator has not yet
# flipped Running to False, and Suspended wins over Running while children are being stopped.
_STATE_PRIORITY: tuple[str, ...] = ("Failed", "Succeeded", "Suspended", "Running")


def derive_state(conditions: list[dict[str, Any]] | None) -> str:
    """The one word for `status.state` (the State printer column) from the conditions that are True.

    A JSONPath filter `[?(@.status=="True")].type` would print several words (ModelRegistered and
    Promoted are True too) and `[-1:]` prints whatever came last, True or not (Kubeflow Trainer
    issue #3666), so the operator writes this derived value instead.
    """
    for state in _STATE_PRIORITY:
        if is_true(conditions, state):
            return state
    return "Pending"


def is_terminal(conditions: list[dict[str, Any]] | None) -> bool:
    """Succeeded or Failed is True: terminal states are sticky, children are never recreated."""
    return derive_state(conditions) in TERMINAL_STATES
