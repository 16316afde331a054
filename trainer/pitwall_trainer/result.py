"""What one training produces: the contract between the models, the registry and the reports.

`models`/`evaluation` fill a TrainResult; `registry.log_and_register` logs it to MLflow and
registers a version; `registry.promote` decides on the alias; the CLI and the in-pod reporter
turn the three into JSON and TrainingRun status.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainResult:
    model: str  # race_winner | quali_order | pit_window
    algorithm: str  # xgboost | random_forest | logistic_regression
    estimator: Any  # the fitted model (an sklearn-compatible estimator or pipeline)
    feature_names: list[str]
    params: dict[str, Any]  # hyperparameters and run settings worth logging
    metrics: dict[str, float]  # the model's metrics on the evaluation races
    baselines: dict[str, float]  # baseline metrics on the same races, e.g. "pole_sitter.top1_accuracy"
    primary_metric: str  # the metric promotion compares by default, e.g. "top1_accuracy"
    primary_mode: str  # "max" or "min"
    data_hash: str
    seasons: list[int]
    train_end_date: str  # ISO date of the last race the final model saw
    input_example: Any = None  # a small DataFrame of feature rows (MLflow signature)
    card_dir: Path | None = None  # model card: card.md plus PNG plots
    extra_artifacts: list[Path] = field(default_factory=list)
    # What the registry logs when set: an mlflow PythonModel answering per race (serving.PitwallModel);
    # when None the bare estimator is logged in its own flavour.
    serving: Any = None

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly part (no estimator, no frames)."""
        out = {k: v for k, v in asdict(self).items() if k not in {"estimator", "input_example", "extra_artifacts", "serving"}}
        out["card_dir"] = str(self.card_dir) if self.card_dir else None
        return out


@dataclass
class RegistryRecord:
    run_id: str
    experiment_id: str
    model_name: str  # registered model name
    model_version: str  # always a string (REST returns strings, SQLite ints: normalise)
    model_uri: str  # models:/name/version
    run_url: str | None = None


@dataclass
class PromotionDecision:
    promoted: bool
    alias: str
    reason: str
    new_version: str
    previous_version: str | None = None
    metric: str | None = None
    new_value: float | None = None
    previous_value: float | None = None
    regression: bool = False  # new model worse than the champion (alert-worthy)
