"""Which MLflow flavour logs an estimator, with its pinned requirements and signatures."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterator
from typing import Any

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.result import TrainResult

log = logging.getLogger(__name__)

# Modules whose types skops may load: the rest goes through cloudpickle.
_SKOPS_SAFE_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")

# ----------------------------------------------------------------------------- estimator flavours


def _components(obj: Any, depth: int = 0) -> Iterator[Any]:
    """The estimator and what it holds (pipeline steps, wrapped models), a few levels deep."""
    yield obj
    if depth >= 4:
        return
    if isinstance(obj, list | tuple):
        for item in obj:
            yield from _components(item, depth + 1)
        return
    if isinstance(obj, dict):
        for item in obj.values():
            yield from _components(item, depth + 1)
        return
    if hasattr(obj, "get_params") and hasattr(obj, "fit"):
        try:
            children = obj.get_params(deep=False).values()
        except Exception:  # a half-sklearn wrapper
            children = ()
    elif hasattr(obj, "__dict__") and type(obj).__module__ not in ("builtins",):
        children = vars(obj).values()
    else:
        return
    for child in children:
        if isinstance(child, list | tuple | dict) or hasattr(child, "predict") or hasattr(child, "fit"):
            yield from _components(child, depth + 1)


def _contains_xgboost(estimator: Any) -> bool:
    return any(type(c).__module__.startswith("xgboost") for c in _components(estimator))


def choose_flavour(estimator: Any) -> tuple[str, dict[str, Any]]:
    """Pick how to log the estimator: ("xgboost", {}) or ("sklearn", log_model kwargs).

    A bare XGBoost model uses mlflow.xgboost (skops cannot store it). An sklearn estimator made
    only of sklearn/numpy/scipy types uses skops (safe loading). Anything else with a
    ``predict`` (a pipeline holding XGBoost, a project wrapper) uses sklearn with cloudpickle,
    which needs the wrapper's module importable where the model is loaded.
    """
    import xgboost as xgb

    if isinstance(estimator, xgb.XGBModel | xgb.Booster):
        return "xgboost", {}
    if not callable(getattr(estimator, "predict", None)):
        raise ConfigError(f"cannot log a model of type {type(estimator).__name__}: it has no predict()")
    from sklearn.base import BaseEstimator

    if isinstance(estimator, BaseEstimator) and not _contains_xgboost(estimator):
        trusted = _skops_trusted_types(estimator)
        if trusted is not None:
            return "sklearn", {"serialization_format": "skops", "skops_trusted_types": trusted}
    return "sklearn", {"serialization_format": "cloudpickle"}


def _skops_trusted_types(estimator: Any) -> list[str] | None:
    """The extra types skops must trust, or None when skops cannot store it safely."""
    try:
        import skops.io

        data = skops.io.dumps(estimator)
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception:
        return None
    if all(t.startswith(_SKOPS_SAFE_MODULES) for t in untrusted):
        return list(untrusted)
    return None


def _pin(*dists: str) -> str | None:
    for dist in dists:
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _pip_requirements(estimator: Any, kwargs: dict[str, Any]) -> list[str]:
    """Pinned requirements (no slow inference; xgboost-cpu, not the 470 MB GPU wheel)."""
    names: list[tuple[str, ...]] = [("scikit-learn",), ("numpy",), ("pandas",), ("scipy",)]
    if _contains_xgboost(estimator):
        names.append(("xgboost-cpu", "xgboost"))
    fmt = kwargs.get("serialization_format")
    if fmt == "pyfunc":  # the trainer's own PythonModel: mlflow loads it, cloudpickle stores it
        names += [("mlflow",), ("cloudpickle",)]
    elif fmt == "skops":
        names.append(("skops",))
    elif fmt == "cloudpickle":
        names.append(("cloudpickle",))
    return [p for p in (_pin(*n) for n in names) if p]


def _signature(result: TrainResult) -> Any:
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    if result.serving is not None:
        return _serving_signature(result)
    if result.input_example is not None:
        import xgboost as xgb

        example = result.input_example
        try:
            if isinstance(result.estimator, xgb.Booster):  # the raw booster wants a DMatrix
                example = xgb.DMatrix(example)
            output = result.estimator.predict(example)
        except Exception as error:
            raise ConfigError(f"the model cannot predict its own input example: {error}") from error
        return infer_signature(result.input_example, output)
    log.warning("no input example: signature built from feature names as doubles")
    return ModelSignature(inputs=Schema([ColSpec("double", name) for name in result.feature_names]))


def _serving_signature(result: TrainResult) -> Any:
    """The pyfunc's signature from its answer to the input example; the id columns are optional."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    if result.input_example is None:
        raise ConfigError("a served model needs an input example (one race's entries)")
    try:
        output = result.serving.predict(None, result.input_example)
    except Exception as error:
        raise ConfigError(f"the model cannot predict its own input example: {error}") from error
    inferred = infer_signature(result.input_example, output)
    optional = {"raceId", "driverId", "driverRef"}
    inputs = Schema([ColSpec(c.type, c.name, required=c.name not in optional) for c in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


