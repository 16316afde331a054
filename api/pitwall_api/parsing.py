"""The entry points the operator and trainer call: parse a spec or status dict, or raise SpecError."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pitwall_api import retrainpolicy, trainingrun
from pitwall_api.crdgen import MAX_NAME
from pitwall_api.errors import SpecError, format_errors
from pitwall_api.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus
from pitwall_api.trainingrun import TrainingRunSpec, TrainingRunStatus

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: Any, prefix: str) -> M:
    if data is None:
        raise SpecError([f"{prefix}: required field is missing"])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SpecError(format_errors(error, prefix)) from None


def _check_name(kind: str, name: str | None) -> None:
    if name is not None and len(name) > MAX_NAME[kind]:
        raise SpecError([f"metadata.name: {name!r} is {len(name)} characters; at most {MAX_NAME[kind]}"])


def parse_training_run_spec(spec: dict[str, Any] | None, name: str | None = None) -> TrainingRunSpec:
    """A TrainingRun's spec as a model; SpecError lists every bad field (`spec.x.y: problem`)."""
    _check_name(trainingrun.KIND, name)
    return _parse(TrainingRunSpec, spec, "spec")


def parse_retrain_policy_spec(spec: dict[str, Any] | None, name: str | None = None) -> RetrainPolicySpec:
    """A RetrainPolicy's spec as a model; SpecError as above (template fields: `spec.template.spec...`)."""
    _check_name(retrainpolicy.KIND, name)
    return _parse(RetrainPolicySpec, spec, "spec")


def parse_training_run_status(status: dict[str, Any] | None) -> TrainingRunStatus:
    """Lenient: unknown keys ignored, everything optional (partial status and kopf's fields parse)."""
    return _parse(TrainingRunStatus, status or {}, "status")


def parse_retrain_policy_status(status: dict[str, Any] | None) -> RetrainPolicyStatus:
    return _parse(RetrainPolicyStatus, status or {}, "status")


def parse_resource(body: dict[str, Any]) -> TrainingRunSpec | RetrainPolicySpec:
    """A whole manifest (apiVersion, kind, metadata, spec): for examples, tests and a CLI check."""
    kind = body.get("kind")
    name = (body.get("metadata") or {}).get("name")
    if kind == trainingrun.KIND:
        return parse_training_run_spec(body.get("spec"), name)
    if kind == retrainpolicy.KIND:
        return parse_retrain_policy_spec(body.get("spec"), name)
    raise SpecError([f"kind: {kind!r} is not TrainingRun or RetrainPolicy"])
