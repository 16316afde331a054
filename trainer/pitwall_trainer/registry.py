"""MLflow tracking, registry and promotion (aliases, never stages).

- Tracking URI: the argument, else ``$MLFLOW_TRACKING_URI``, else a local SQLite store at
  ``<cache_root()>/mlflow/mlflow.db`` (``$PITWALL_CACHE_DIR``, else ``~/.cache/pitwall``) with
  artifacts beside it in ``<cache_root()>/mlflow/artifacts``; never the plain file store. View it
  with ``mlflow ui --backend-store-uri sqlite:///$HOME/.cache/pitwall/mlflow/mlflow.db``. The
  model registry is always the tracking server itself.
- ``log_and_register`` logs one TrainResult as a run of the experiment ``pitwall-<model>`` and
  registers a version of ``pitwall-<model>``; ``promote`` moves the alias ``champion`` by policy
  and writes why as ``pitwall.promotion.*`` tags on the new version; ``champion_info`` reads the
  version under an alias (the retraining monitor uses it).
- An unreachable server raises ``RegistryUnavailable`` naming the URI after a few short retries
  (defaults below, each overridable by its ``MLFLOW_HTTP_REQUEST_*`` variable). A failure after
  the run was created marks the run FAILED and removes a half-made model version.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import requests  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from pitwall_api.redact import redact_text, redact_uri  # noqa: E402

from pitwall_trainer.data.paths import cache_root  # noqa: E402
from pitwall_trainer.errors import ConfigError  # noqa: E402
from pitwall_trainer.promotion_guard import RUN_TAG, promotion_lease, run_uid, version_of_this_run  # noqa: E402
from pitwall_trainer.result import PromotionDecision, RegistryRecord, TrainResult  # noqa: E402

log = logging.getLogger(__name__)

NAME_PREFIX = "pitwall-"
DEFAULT_ALIAS = "champion"
POLICIES = ("IfBetter", "Always", "Never")
TAG_PREFIX = "pitwall.promotion."

# Set around every MLflow call (values set by the user win). Bounded HTTP retries: a down server
# fails in seconds, not minutes (MLflow's defaults are 7 retries, backoff factor 2, 120 s timeout;
# a silent host now costs 3 x 30 s at most).
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # an int for MLflow: waits 0 s, then 2 s
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # The run URL is in the RegistryRecord; stdout belongs to the CLI (--json: last line).
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}

# Modules whose types skops may load: the rest goes through cloudpickle.
_SKOPS_SAFE_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


class RegistryError(RuntimeError):
    """MLflow refused or failed an operation (retryable: exit code 1)."""


class RegistryUnavailable(RegistryError):
    """The tracking server could not be reached."""


# ----------------------------------------------------------------------------- URIs and names


def default_tracking_uri() -> str:
    """The local SQLite store used when neither the argument nor $MLFLOW_TRACKING_URI is set."""
    folder = cache_root() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """Argument, else $MLFLOW_TRACKING_URI, else the local SQLite default."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        db = _sqlite_path(uri)
        db.parent.mkdir(parents=True, exist_ok=True)
    return uri


def registered_name(model: str) -> str:
    """Default registered model name for a model kind: ``pitwall-<model>``."""
    return model if model.startswith(NAME_PREFIX) else f"{NAME_PREFIX}{model}"


def _sqlite_path(uri: str) -> Path:
    return Path(uri[len("sqlite:///") :]).absolute()


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _artifact_location(uri: str, experiment: str) -> str | None:
    """For SQLite stores keep artifacts beside the database (MLflow would use ./mlruns)."""
    if uri.startswith("sqlite:///"):
        return (_sqlite_path(uri).parent / "artifacts" / experiment).as_uri()
    return None


def _run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    if not _is_http(uri):
        return None
    return f"{redact_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


# ----------------------------------------------------------------------------- error handling


def _is_connection_error(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(10):  # walk the cause chain a bounded distance
        if seen is None:
            break
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        text = str(seen)
        if "Max retries exceeded" in text or "Connection refused" in text or "timed out" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    """The fluent API (log_model) reads the global URI: set it for the block, then restore."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    old_global = tracking_utils._tracking_uri
    old_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_global)  # None unsets the env var: put it back
        if old_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


@contextmanager
def _http_env(values: dict[str, str], force: bool = False) -> Iterator[None]:
    """Set MLflow's HTTP retry variables for the block (user values win unless forced)."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if force:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def mlflow_call(uri: str, action: str) -> Iterator[None]:
    """Bounded HTTP retries for the block; failures become errors that name the URI.

    The global tracking URI is set too: MLflow's registry looks logged models up through it.
    """
    with _http_env(ENV_DEFAULTS), _global_tracking_uri(uri):
        try:
            yield
        except (ConfigError, RegistryError):
            raise
        except Exception as error:
            # the message reaches status, Events and Slack: never with the URI's credentials
            if _is_connection_error(error):
                raise RegistryUnavailable(redact_text(
                    f"MLflow tracking server at {uri} is unreachable while trying to {action} "
                    f"(after {os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES']} retries): {error}"
                )) from error
            raise RegistryError(redact_text(f"MLflow at {uri} failed to {action}: {error}")) from error


def mlflow_client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def check_reachable(client: MlflowClient, uri: str) -> None:
    """Fail fast with a clear message before anything is written to a remote server."""
    if _is_http(uri):
        client.search_experiments(max_results=1)


def ensure_reachable(tracking_uri: str | None = None) -> str:
    """Check the tracking server before a long training, so a down MLflow fails in seconds."""
    uri = resolve_tracking_uri(tracking_uri)
    with mlflow_call(uri, "reach the tracking server"):
        check_reachable(mlflow_client(uri), uri)
    return uri


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


# ----------------------------------------------------------------------------- values


_KEY_BAD = re.compile(r"[^\w\-. :/]")


def _key(name: str) -> str:
    return _KEY_BAD.sub("_", str(name))[:250]


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple | dict):
        text = json.dumps(value, default=str, sort_keys=isinstance(value, dict))
    else:
        text = str(value)
    return text[:6000]


def _numeric(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError):
                log.warning("metric %s=%r is not a number: not logged", name, value)
                continue
        out[_key(prefix + name)] = float(value)
    return out


# ----------------------------------------------------------------------------- log and register


def _identity_tags(result: TrainResult) -> dict[str, str]:
    """What a run and its model version are (the monitor reads them back from the version)."""
    return {
        "model": result.model,
        "algorithm": result.algorithm,
        "train_end_date": str(result.train_end_date),
        "data_hash": str(result.data_hash),
        "seasons": ",".join(str(s) for s in result.seasons),
        "pitwall.primary_metric": result.primary_metric,
        "pitwall.primary_mode": result.primary_mode,
    }


def get_experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
        except MlflowException as error:  # created meanwhile by another trainer
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise error from None
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def log_and_register(
    result: TrainResult,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    registered_model_name: str | None = None,
) -> RegistryRecord:
    """Log one training as an MLflow run and register the model as a new version."""
    uri = resolve_tracking_uri(tracking_uri)
    experiment = experiment or f"{NAME_PREFIX}{result.model}"
    name = registered_model_name or registered_name(result.model)
    # Everything that can fail on our side is checked before MLflow is touched.
    flavour, flavour_kwargs = ("pyfunc", {}) if result.serving is not None else choose_flavour(result.estimator)
    signature = _signature(result)
    missing = [
        p for p in [result.card_dir, *result.extra_artifacts] if p is not None and not Path(p).exists()
    ]
    if missing:
        raise ConfigError(f"artifacts to log do not exist: {', '.join(map(str, missing))}")
    pip_requirements = _pip_requirements(
        result.estimator, {"serialization_format": "pyfunc"} if flavour == "pyfunc" else flavour_kwargs)
    params = {_key(k): _param_value(v) for k, v in result.params.items()}
    params.setdefault("data_hash", str(result.data_hash))
    params.setdefault("seasons", ",".join(str(s) for s in result.seasons))
    params.setdefault("algorithm", str(result.algorithm))
    metrics = _numeric(result.metrics) | _numeric(result.baselines, prefix="baseline.")
    tags = {
        **_identity_tags(result),
        "pitwall.flavour": flavour
        if flavour in ("xgboost", "pyfunc")
        else f"sklearn/{flavour_kwargs['serialization_format']}",
    }
    parent = mlflow.active_run()  # e.g. a tuning study's run: ours becomes its child
    if parent is not None:
        tags["mlflow.parentRunId"] = parent.info.run_id
    client = mlflow_client(uri)
    with mlflow_call(uri, "reach the tracking server"):
        check_reachable(client, uri)
        earlier = version_of_this_run(client, name)
    if earlier is not None:  # a retried pod: this TrainingRun registered its version already
        log.info("version %s of %s was registered by an earlier attempt of this run: reused", earlier.version, name)
        with mlflow_call(uri, f"read run {earlier.run_id}"):
            experiment_id = client.get_run(earlier.run_id).info.experiment_id
        return RegistryRecord(run_id=earlier.run_id, experiment_id=str(experiment_id), model_name=name,
                              model_version=str(earlier.version), model_uri=f"models:/{name}/{earlier.version}",
                              run_url=_run_url(uri, str(experiment_id), earlier.run_id))
    with mlflow_call(uri, f"create the experiment {experiment!r}"):
        experiment_id = get_experiment_id(client, uri, experiment)
    with mlflow_call(uri, "create a run"):
        run = client.create_run(experiment_id, tags=tags, run_name=f"{result.model}-{result.algorithm}")
    run_id = run.info.run_id
    version: str | None = None
    try:
        with (
            mlflow_call(uri, f"log run {run_id}"),
            mlflow.start_run(run_id=run_id, nested=parent is not None),
        ):
            mlflow.log_params(params)
            if metrics:
                mlflow.log_metrics(metrics)
            _log_files(result)
            model_info = _log_model(result, flavour, flavour_kwargs, signature, pip_requirements)
        with mlflow_call(uri, f"register a version of {name!r}"):
            version = _register(client, name, model_info, run_id, result)
            client.set_tag(run_id, "pitwall.registered_model", name)
            client.set_tag(run_id, "pitwall.model_version", version)
            client.set_terminated(run_id, "FINISHED")
    except BaseException:
        _abandon(client, run_id, name, version)
        raise
    return RegistryRecord(
        run_id=run_id,
        experiment_id=str(experiment_id),
        model_name=name,
        model_version=version,
        model_uri=f"models:/{name}/{version}",
        run_url=_run_url(uri, str(experiment_id), run_id),
    )


def _log_files(result: TrainResult) -> None:
    with tempfile.TemporaryDirectory(prefix="pitwall-mlflow-") as tmp:
        features = Path(tmp) / "feature_names.json"
        features.write_text(json.dumps(list(result.feature_names), indent=1))
        mlflow.log_artifact(str(features))
        summary = Path(tmp) / "train_result.json"
        summary.write_text(json.dumps(result.summary(), indent=1, default=str))
        mlflow.log_artifact(str(summary))
    if result.card_dir is not None:
        mlflow.log_artifacts(str(result.card_dir), artifact_path="model_card")
    for extra in result.extra_artifacts:
        extra = Path(extra)
        if extra.is_dir():
            mlflow.log_artifacts(str(extra), artifact_path=f"extra/{extra.name}")
        else:
            mlflow.log_artifact(str(extra), artifact_path="extra")


def _log_model(
    result: TrainResult, flavour: str, kwargs: dict[str, Any], signature: Any, pip: list[str]
) -> Any:
    common = {
        "name": "model",
        "signature": signature,
        "input_example": result.input_example,
        "pip_requirements": pip,
    }
    if flavour == "pyfunc":  # bundle the trainer's code: a serving process needs only the pip packages
        import mlflow.pyfunc

        code = Path(__file__).resolve().parent
        return mlflow.pyfunc.log_model(python_model=result.serving, code_paths=[str(code)], **common)
    if flavour == "xgboost":
        import mlflow.xgboost

        return mlflow.xgboost.log_model(result.estimator, **common)
    import mlflow.sklearn

    return mlflow.sklearn.log_model(result.estimator, **common, **kwargs)


def _register(client: MlflowClient, name: str, model_info: Any, run_id: str, result: TrainResult) -> str:
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name, tags={"model": result.model})
        except MlflowException as again:  # created meanwhile
            if again.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    mv = client.create_model_version(
        name,
        source=model_info.model_uri,
        run_id=run_id,
        tags={**_identity_tags(result), **({RUN_TAG: run_uid()} if run_uid() else {})},
        model_id=model_info.model_id,  # a REST server insists on it for models:/m-... sources
        await_creation_for=60,
    )
    return str(mv.version)


def _abandon(client: MlflowClient, run_id: str, name: str, version: str | None) -> None:
    """Best effort after a failure: drop a half-made version, mark the run FAILED."""
    with _http_env({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}, force=True):
        if version is not None:
            try:
                client.delete_model_version(name, version)
            except Exception as error:
                log.warning("could not delete half-made version %s of %s: %s", version, name, error)
        try:
            client.set_terminated(run_id, "FAILED")
        except Exception as error:
            log.warning("could not mark run %s FAILED: %s", run_id, error)


# ----------------------------------------------------------------------------- promotion


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _alias_version(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _run_or_none(client: MlflowClient, run_id: str | None) -> Any | None:
    """The version's run, or None when it has none or the run was deleted for good."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _run_metric(client: MlflowClient, run_id: str | None, metric: str) -> float | None:
    run = _run_or_none(client, run_id)
    return _float(run.data.metrics.get(metric)) if run is not None else None


def promote(
    record: RegistryRecord,
    result: TrainResult,
    policy: str = "IfBetter",
    metric: str | None = None,
    mode: str | None = None,
    min_improvement: float = 0.0,
    alias: str = DEFAULT_ALIAS,
    tracking_uri: str | None = None,
) -> PromotionDecision:
    """Compare the new version with the one under ``alias``, move the alias by policy, tag why."""
    chosen = {p.lower(): p for p in POLICIES}.get(str(policy).lower())
    if chosen is None:
        raise ConfigError(f"promotion policy {policy!r} is not one of {', '.join(POLICIES)}")
    metric = metric or result.primary_metric
    mode = (mode or result.primary_mode or "max").lower()
    if mode not in ("max", "min"):
        raise ConfigError(f"promotion mode {mode!r} is not 'max' or 'min'")
    if min_improvement < 0 or math.isnan(min_improvement):
        raise ConfigError(f"minimum improvement {min_improvement} must be zero or more")
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    name, version = record.model_name, str(record.model_version)
    # one decision at a time per namespace (promotion_guard): read, compare and move the alias
    with promotion_lease(), mlflow_call(uri, f"promote {name} version {version}"):
        new_value = _float(result.metrics.get(metric))
        if new_value is None:
            new_value = _run_metric(client, record.run_id, metric)
        if new_value is None:
            raise ConfigError(
                f"metric {metric!r} is not among the new model's metrics {sorted(result.metrics)}"
            )
        current = _alias_version(client, name, alias)
        previous_version = str(current.version) if current is not None else None
        previous_value = _run_metric(client, current.run_id, metric) if current is not None else None
        decision = _decide(
            chosen, version, previous_version, new_value, previous_value, mode, min_improvement
        )
        decision.alias, decision.metric = alias, metric
        if decision.promoted:
            client.set_registered_model_alias(name, alias, version)
            if previous_version is not None and previous_version != version:
                client.set_model_version_tag(name, previous_version, f"{TAG_PREFIX}superseded_by", version)
        tags = {
            "decision": "promoted" if decision.promoted else "not_promoted",
            "reason": decision.reason,
            "policy": chosen,
            "alias": alias,
            "metric": metric,
            "mode": mode,
            "min_improvement": repr(float(min_improvement)),
            "new_value": repr(new_value),
            "previous_version": previous_version or "none",
            "previous_value": repr(previous_value) if previous_value is not None else "none",
            "regression": str(decision.regression).lower(),
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, version, TAG_PREFIX + key, value[:5000])
    return decision


def _decide(
    policy: str,
    version: str,
    previous_version: str | None,
    new_value: float,
    previous_value: float | None,
    mode: str,
    min_improvement: float,
) -> PromotionDecision:
    """The pure decision: promote or not, why, and whether the new model is a regression."""
    sign = 1.0 if mode == "max" else -1.0
    comparable = previous_value is not None and not math.isnan(previous_value) and not math.isnan(new_value)
    improvement = sign * (new_value - previous_value) if comparable else None
    regression = improvement is not None and improvement < 0
    out = PromotionDecision(
        promoted=False,
        alias="",
        reason="",
        new_version=version,
        previous_version=previous_version,
        new_value=new_value,
        previous_value=previous_value,
        regression=regression,
    )
    versus = (
        f"{new_value:.6g} vs {previous_value:.6g} of version {previous_version} ({mode})"
        if comparable
        else f"{new_value:.6g}"
    )
    if previous_version == version:  # an earlier attempt of this run promoted it: still true
        out.promoted, out.reason = True, f"version {version} already holds the alias"
    elif policy == "Never":
        out.reason = f"policy Never: alias not moved ({versus})"
    elif policy == "Always":
        out.promoted, out.reason = True, f"policy Always ({versus})"
    elif previous_version is None:
        out.promoted, out.reason = True, "no version holds the alias yet"
    elif math.isnan(new_value):
        out.reason = "the new model's metric is NaN"
    elif not comparable:
        out.promoted = True
        out.reason = f"version {previous_version} has no usable value of the metric to compare with"
    elif improvement > 0 and improvement >= min_improvement - 1e-12:
        out.promoted = True
        out.reason = f"better by {improvement:.6g} (minimum {min_improvement:g}): {versus}"
    elif improvement > 0:
        out.reason = f"better by only {improvement:.6g}, below the minimum {min_improvement:g}: {versus}"
    elif improvement == 0:
        out.reason = f"no better: {versus}"
    else:
        out.reason = f"worse by {-improvement:.6g}: {versus}"
    return out


# ----------------------------------------------------------------------------- champion


def champion_info(
    model_name_or_registered: str, alias: str = DEFAULT_ALIAS, tracking_uri: str | None = None
) -> dict[str, Any] | None:
    """The version under ``alias`` (registered name or model kind), or None when there is none."""
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    names = [model_name_or_registered]
    if not model_name_or_registered.startswith(NAME_PREFIX):
        names.append(registered_name(model_name_or_registered))
    with mlflow_call(uri, f"read the {alias} of {model_name_or_registered}"):
        for name in names:
            current = _alias_version(client, name, alias)
            if current is None:
                continue
            run = _run_or_none(client, current.run_id)
            tags = dict(current.tags or {})
            # Version tags first; the run's tags cover versions registered by other tools.
            found = {**(run.data.tags if run else {}), **tags}
            seasons = str(found.get("seasons") or "")
            return {
                "registered_model": name,
                "alias": alias,
                "version": str(current.version),
                "run_id": current.run_id,
                "model_uri": f"models:/{name}/{current.version}",
                "metrics": dict(run.data.metrics) if run else {},
                "train_end_date": found.get("train_end_date"),
                "data_hash": found.get("data_hash"),
                "model": found.get("model"),
                "algorithm": found.get("algorithm"),
                "seasons": [int(x) for x in seasons.split(",") if x.strip().isdigit()],
                "created_at": current.creation_timestamp,
                "tags": tags,
            }
    return None
