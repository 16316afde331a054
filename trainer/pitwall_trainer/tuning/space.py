"""Search spaces and tuning settings: a validated `spec.tuning` turned into what the engines sample.

Validation is the API's (pitwall_api's Tuning, SearchParam and AshaScheduler models): a
`--search-space FILE` on a laptop and a TrainingRun's `tuning` in a pod pass the same checks and
fail with the same messages as the operator's ValidationFailed. What is left here: the default
spaces, the check that the estimator accepts each name, and the conversion to distributions.
Both engines sample through the same Optuna distributions: Ray Tune's OptunaSearch takes them
as they are, so `int` bounds are inclusive everywhere (Ray's own `randint` excludes `high`).
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import optuna
import yaml
from pitwall_api.errors import format_errors
from pitwall_api.trainingrun import AshaScheduler, SearchParam, Tuning
from pitwall_api.trainingrun import SearchSpace as ApiSearchSpace
from pydantic import Field, TypeAdapter, ValidationError

from pitwall_trainer.errors import ConfigError

ENGINES = typing.get_args(Tuning.model_fields["engine"].annotation)


@dataclass(frozen=True)
class Param:
    """One tunable hyperparameter: `int`/`float`/`logfloat` take low and high, `categorical` values."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] | None = None

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.type == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high))
        if self.type == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high)
        if self.type == "logfloat":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=True)
        return optuna.distributions.CategoricalDistribution(list(self.values))

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.values
        if self.type == "int" and (isinstance(value, bool) or int(value) != value):
            return False
        return self.low <= value <= self.high

    def example(self) -> Any:
        """A value inside the range (checks that the estimator accepts the name)."""
        if self.type == "categorical":
            return self.values[0]
        if self.type == "int":
            return int(self.low)
        if self.type == "logfloat":
            return math.sqrt(self.low * self.high)
        return (self.low + self.high) / 2

    def as_spec(self) -> dict[str, Any]:
        """Back to the CRD shape (for logging and JSON output)."""
        if self.type == "categorical":
            return {"type": self.type, "values": list(self.values)}
        num = (lambda x: int(x)) if self.type == "int" else float
        return {"type": self.type, "low": num(self.low), "high": num(self.high)}


SearchSpace = dict[str, Param]


def _p(name: str, type_: str, low: float | None = None, high: float | None = None) -> Param:
    return Param(name, type_, low, high)


# The original design's XGBoost ranges (docs: Distributed Training), with inclusive integer bounds.
XGBOOST_SPACE: SearchSpace = {p.name: p for p in (
    _p("n_estimators", "int", 100, 1000),
    _p("max_depth", "int", 3, 12),
    _p("learning_rate", "logfloat", 0.001, 0.3),
    _p("subsample", "float", 0.5, 1.0),
    _p("colsample_bytree", "float", 0.5, 1.0),
    _p("min_child_weight", "int", 1, 10),
    _p("reg_alpha", "logfloat", 0.001, 10),
    _p("reg_lambda", "logfloat", 0.001, 10),
)}
# Forests: size, depth and per-split feature share are what matter on a few thousand rows.
RANDOM_FOREST_SPACE: SearchSpace = {p.name: p for p in (
    _p("n_estimators", "int", 100, 600),
    _p("max_depth", "int", 3, 20),
    _p("min_samples_leaf", "int", 1, 20),
    _p("max_features", "float", 0.2, 1.0),
)}
# Linear models: only the regularisation strength (C for the classifier, alpha for Ridge).
LOGISTIC_SPACE: SearchSpace = {"C": _p("C", "logfloat", 0.001, 100)}
RIDGE_SPACE: SearchSpace = {"alpha": _p("alpha", "logfloat", 0.001, 100)}


def default_space(model: str, algorithm: str) -> SearchSpace:
    """The space used when none is given: the original design's for XGBoost, sensible ones otherwise."""
    if algorithm == "xgboost":
        return dict(XGBOOST_SPACE)
    if algorithm == "random_forest":
        return dict(RANDOM_FOREST_SPACE)
    if algorithm == "logistic_regression":
        return dict(LOGISTIC_SPACE if model == "race_winner" else RIDGE_SPACE)
    raise ConfigError(f"--algorithm: unknown algorithm {algorithm!r}")


def _validated(schema: Any, document: Any, where: str) -> Any:
    """`document` checked by an API model (or TypeAdapter); errors name the field under `where`."""
    try:
        if isinstance(schema, TypeAdapter):
            return schema.validate_python(document)
        return schema.model_validate(document)
    except ValidationError as error:
        raise ConfigError("; ".join(format_errors(error, prefix=where))) from None


_SPACE = TypeAdapter(Annotated[ApiSearchSpace, Field(min_length=1, max_length=32)])


def param_from_api(name: str, param: SearchParam) -> Param:
    if param.type == "categorical":
        return Param(name, param.type, values=tuple(param.values or ()))
    return Param(name, param.type, param.low, param.high)


def check_names(space: SearchSpace, model: str, algorithm: str, where: str = "searchSpace") -> None:
    """Every name must be a parameter of the estimator (a typo would otherwise tune nothing)."""
    from pitwall_trainer.models.factory import build_estimator

    for name, param in space.items():
        try:
            build_estimator(model, algorithm, {name: param.example()})
        except ConfigError as error:
            raise ConfigError(f"{where}.{name}: not accepted by {algorithm} for {model} ({error})") from None


def parse_space(
    spec: dict[str, Any] | None, model: str, algorithm: str, where: str = "searchSpace"
) -> SearchSpace:
    """A `searchSpace` mapping (CRD shape) checked against the estimator; None = the default space."""
    if spec is None:
        return default_space(model, algorithm)
    validated = _validated(_SPACE, spec, where)
    return space_from_api(validated, model, algorithm, where)


def space_from_api(validated: dict[str, SearchParam], model: str, algorithm: str,
                   where: str = "searchSpace") -> SearchSpace:
    space = {name: param_from_api(name, param) for name, param in validated.items()}
    check_names(space, model, algorithm, where)
    return space


def read_document(path: str | Path, option: str = "--search-space") -> Any:
    """A YAML or JSON file (JSON is YAML); errors name the option and the file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as error:
        raise ConfigError(f"{option}: cannot read {file}: {error.strerror or error}") from None
    try:
        return json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{option}: {file} is not valid YAML/JSON: {error}") from None


def tuning_block(document: Any) -> dict[str, Any]:
    """Find the tuning settings in a file: a TrainingRun, its spec, a `tuning` block or a bare space."""
    if not isinstance(document, dict):
        raise ConfigError("--search-space: expected a mapping (a searchSpace, a tuning block or a TrainingRun)")
    if isinstance(document.get("spec"), dict):
        document = document["spec"]
    if isinstance(document.get("tuning"), dict):
        document = document["tuning"]
    if "searchSpace" in document or "search_space" in document:
        return document
    return {"searchSpace": document}


@dataclass(frozen=True)
class Scheduler:
    """Early stopping: ASHA (Ray) / successive halving (Optuna) with the same rungs, or FIFO (none).

    `max_t` and `grace_period` count boosting rounds for XGBoost and folds for other algorithms.
    """

    type: str = "ASHA"
    max_t: int | None = None  # None: the largest round budget of the space
    grace_period: int = 10
    reduction_factor: int = 3

    @property
    def enabled(self) -> bool:
        return self.type == "ASHA"


def parse_scheduler(spec: dict[str, Any] | None, where: str = "scheduler") -> Scheduler:
    """`{type, maxT, gracePeriod, reductionFactor}`; None = ASHA sized to the search space."""
    return scheduler_from_api(None if spec is None else _validated(AshaScheduler, spec, where))


def scheduler_from_api(scheduler: AshaScheduler | None) -> Scheduler:
    if scheduler is None:
        return Scheduler()
    return Scheduler(scheduler.type, scheduler.max_t, scheduler.grace_period, scheduler.reduction_factor)


@dataclass
class TuningSpec:
    """Everything of a `tuning` block the trainer uses (rayCluster shapes pods: the operator's part)."""

    engine: str = "optuna"
    num_samples: int = 20
    max_concurrent: int | None = None
    metric: str | None = None
    mode: str | None = None
    space: SearchSpace = field(default_factory=dict)
    scheduler: Scheduler = field(default_factory=Scheduler)
    study_name: str | None = None


def check_engine(engine: Any, where: str = "engine") -> str:
    if engine not in ENGINES:
        raise ConfigError(f"{where}: unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return engine


def parse_tuning(block: dict[str, Any], model: str, algorithm: str, where: str = "tuning") -> TuningSpec:
    """A TrainingRun `spec.tuning` block (camelCase), validated as the operator does, as the trainer runs it."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping, got {block!r}")
    return tuning_from_api(_validated(Tuning, block, where), model, algorithm, where)


def tuning_from_api(tuning: Tuning, model: str, algorithm: str, where: str = "tuning") -> TuningSpec:
    """A validated `spec.tuning` as the trainer runs it (rayCluster shapes pods: the operator's part)."""
    return TuningSpec(
        engine=tuning.engine, num_samples=tuning.num_samples, max_concurrent=tuning.max_concurrent_trials,
        metric=tuning.metric, mode=tuning.mode,
        space=space_from_api(tuning.search_space, model, algorithm, f"{where}.searchSpace"),
        scheduler=scheduler_from_api(tuning.scheduler),
        study_name=tuning.optuna.study_name if tuning.optuna else None,
    )


def load_space_file(path: str | Path, model: str, algorithm: str) -> tuple[SearchSpace, dict[str, Any]]:
    """`--search-space FILE`: the space plus the rest of the tuning block found in the file."""
    block = tuning_block(read_document(path))
    space_spec = block.get("searchSpace", block.get("search_space"))
    space = parse_space(space_spec, model, algorithm, f"--search-space {path}: searchSpace")
    return space, {k: v for k, v in block.items() if k not in ("searchSpace", "search_space")}


def contains(space: SearchSpace, params: dict[str, Any]) -> bool:
    """True when every tuned parameter of `params` lies inside its range (tests, sanity checks)."""
    return all(name in params and param.contains(params[name]) for name, param in space.items())


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    return {name: param.distribution() for name, param in space.items()}


def space_spec(space: SearchSpace) -> dict[str, dict[str, Any]]:
    return {name: param.as_spec() for name, param in space.items()}


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample one configuration on an Optuna trial (define-by-run, same distributions as Ray)."""
    out: dict[str, Any] = {}
    for name, param in space.items():
        if param.type == "int":
            out[name] = trial.suggest_int(name, int(param.low), int(param.high))
        elif param.type == "categorical":
            out[name] = trial.suggest_categorical(name, list(param.values))
        else:
            out[name] = trial.suggest_float(name, param.low, param.high, log=param.type == "logfloat")
    return out
