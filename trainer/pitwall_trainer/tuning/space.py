"""Search spaces and tuning settings, in the TrainingRun's `spec.tuning` shape (camelCase dicts).

One parser serves the CLI (`--search-space FILE`, YAML or JSON) and the operator (a spec's
`tuning` block passed straight in), so a space means the same thing on a laptop and in a pod.
Both engines sample through the same Optuna distributions: Ray Tune's OptunaSearch takes them
as they are, so `int` bounds are inclusive everywhere (Ray's own `randint` excludes `high`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from pitwall_trainer.errors import ConfigError

TYPES = ("int", "float", "logfloat", "categorical")
ENGINES = ("ray", "optuna")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: must be a finite number, got {value!r}")
    return float(value)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse_param(name: str, spec: Any, where: str = "searchSpace") -> Param:
    """One `{type, low, high}` or `{type, values}` entry; errors name the field (`searchSpace.x.low`)."""
    at = f"{where}.{name}"
    if not isinstance(name, str) or not PARAM_NAME.match(name) or len(name) > 64:
        raise ConfigError(f"{at}: parameter name must be a Python identifier such as max_depth")
    if not isinstance(spec, dict):
        raise ConfigError(f"{at}: expected a mapping with type and low/high or values, got {spec!r}")
    unknown = sorted(set(spec) - {"type", "low", "high", "values"})
    if unknown:
        raise ConfigError(f"{at}.{unknown[0]}: unknown field (allowed: type, low, high, values)")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{at}.type: must be one of {', '.join(TYPES)}, got {kind!r}")
    if kind == "categorical":
        values = spec.get("values")
        if "low" in spec or "high" in spec:
            raise ConfigError(f"{at}: categorical takes values, not low/high")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{at}.values: categorical needs a non-empty list of values")
        for value in values:
            if not (isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value))):
                raise ConfigError(f"{at}.values: values must be strings, numbers or booleans, not {value!r}")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{at}.values: duplicate values")
        return Param(name, kind, values=tuple(values))
    if "values" in spec:
        raise ConfigError(f"{at}.values: values are only for categorical; {kind} takes low and high")
    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{at}.{key}: {kind} needs both low and high")
    low, high = _number(at, "low", spec["low"]), _number(at, "high", spec["high"])
    if low >= high:
        raise ConfigError(f"{at}.low: low ({_num(low)}) must be below high ({_num(high)})")
    if kind == "logfloat" and low <= 0:
        raise ConfigError(f"{at}.low: logfloat needs low above 0 (got {_num(low)})")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"{at}: int bounds must be whole numbers")
    return Param(name, kind, low, high)


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
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{where}: expected a non-empty mapping of parameter name to range")
    space = {name: parse_param(name, value, where) for name, value in spec.items()}
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
    if spec is None:
        return Scheduler()
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping, got {spec!r}")
    aliases = {"type": "type", "maxT": "max_t", "max_t": "max_t", "gracePeriod": "grace_period",
               "grace_period": "grace_period", "reductionFactor": "reduction_factor",
               "reduction_factor": "reduction_factor"}
    unknown = sorted(set(spec) - set(aliases))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field (allowed: type, maxT, gracePeriod, reductionFactor)")
    values = {aliases[k]: v for k, v in spec.items()}
    kind = values.get("type", "ASHA")
    if kind not in ("ASHA", "FIFO"):
        raise ConfigError(f"{where}.type: must be ASHA or FIFO, got {kind!r}")
    lows = {"max_t": 1, "grace_period": 1, "reduction_factor": 2}
    names = {"max_t": "maxT", "grace_period": "gracePeriod", "reduction_factor": "reductionFactor"}
    for key, low in lows.items():
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{where}.{names[key]}: must be a whole number >= {low}, got {value!r}")
    out = Scheduler(kind, values.get("max_t"), values.get("grace_period", 10), values.get("reduction_factor", 3))
    if out.max_t is not None and out.grace_period > out.max_t:
        raise ConfigError(f"{where}.gracePeriod: {out.grace_period} must not exceed maxT ({out.max_t})")
    return out


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


def _positive(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a whole number >= 1, got {value!r}")
    return value


def check_engine(engine: Any, where: str = "engine") -> str:
    if engine not in ENGINES:
        raise ConfigError(f"{where}: unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return engine


def parse_tuning(block: dict[str, Any], model: str, algorithm: str, where: str = "tuning") -> TuningSpec:
    """A TrainingRun `spec.tuning` block (camelCase) as the trainer runs it."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping, got {block!r}")
    known = {"engine", "numSamples", "maxConcurrentTrials", "metric", "mode", "searchSpace",
             "scheduler", "rayCluster", "optuna"}
    unknown = sorted(set(block) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(known))})")
    spec = TuningSpec(engine=check_engine(block.get("engine", "optuna"), f"{where}.engine"))
    spec.num_samples = _positive(f"{where}.numSamples", block.get("numSamples", 20))
    if block.get("maxConcurrentTrials") is not None:
        spec.max_concurrent = _positive(f"{where}.maxConcurrentTrials", block["maxConcurrentTrials"])
    spec.metric = block.get("metric")
    spec.mode = block.get("mode")
    if spec.mode not in (None, "max", "min"):
        raise ConfigError(f"{where}.mode: must be max or min, got {spec.mode!r}")
    spec.space = parse_space(block.get("searchSpace"), model, algorithm, f"{where}.searchSpace")
    spec.scheduler = parse_scheduler(block.get("scheduler"), f"{where}.scheduler")
    optuna_block = block.get("optuna") or {}
    if not isinstance(optuna_block, dict):
        raise ConfigError(f"{where}.optuna: expected a mapping")
    spec.study_name = optuna_block.get("studyName")
    return spec


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
