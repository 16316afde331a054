"""TrainerResult: what the trainer reports when it ends, and the operator reads back.

The trainer writes it twice: into its TrainingRun's status (the status fields) and, as JSON, into
the container's termination message, which the operator reads when the status patch did not
arrive. Both sides use this one model, so a renamed field breaks a test, not a run.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, ValidationError

from pitwall_api.common import StatusModel
from pitwall_api.trainingrun import MlflowStatus, Progress, PromotionStatus


class TrainerError(StatusModel):
    type: str = Field(description="Exception class, e.g. DataError.")
    message: str = Field(description="What went wrong, credentials masked.")


class Regression(StatusModel):
    """The new model is worse than the champion on the promotion metric."""

    metric: str
    previous: float
    new: float
    delta: float


class TrainerResult(StatusModel):
    """The end of one trainer run: success with figures, or an error (plus any figures made before it)."""

    ok: bool
    exit_code: int
    metrics: dict[str, float] | None = None
    baselines: dict[str, float] | None = None
    best_params: dict[str, Any] | None = None
    mlflow: MlflowStatus | None = None
    promotion: PromotionStatus | None = None
    progress: Progress | None = None
    regression: Regression | None = None
    error: TrainerError | None = None

    # What the trainer writes into the TrainingRun's status (the rest is for the operator's alerts).
    STATUS_FIELDS: ClassVar[tuple[str, ...]] = ("metrics", "baselines", "best_params", "mlflow", "promotion", "progress")

    def to_json_dict(self) -> dict[str, Any]:
        """camelCase, absent fields left out: the termination message's shape."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def status_fields(self) -> dict[str, Any]:
        """The status subresource patch of this result (camelCase)."""
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json", include=set(self.STATUS_FIELDS))
        return {k: v for k, v in data.items() if v not in ({}, [])}

    @classmethod
    def salvage(cls, document: Any) -> TrainerResult | None:
        """Parse a termination message's JSON, keeping every field that is valid on its own.

        A figure of the wrong type or a block out of bounds must not lose the rest (the model
        version above all); None when it is not a trainer result at all.
        """
        if not isinstance(document, dict) or "ok" not in document:
            return None
        try:
            return cls.model_validate(document)
        except ValidationError:
            pass
        kept: dict[str, Any] = {"ok": bool(document.get("ok")), "exitCode": 1}
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if key not in document or key in kept and key != "exitCode":
                continue
            value = document[key]
            if key in ("metrics", "baselines") and isinstance(value, dict):
                value = {k: v for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            try:
                cls.model_validate({**kept, key: value})
            except ValidationError:
                continue
            kept[key] = value
        return cls.model_validate(kept)
