"""MLflow tracking: where the store is, bounded calls to it, and logging and registering one TrainResult."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pitwall_api.redact import redact_text, redact_uri
from pitwall_api.trainingrun import PROMOTION_POLICIES

from pitwall_trainer.data.paths import cache_root
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.progress import phase
from pitwall_trainer.promotion_guard import RUN_TAG, run_uid, version_of_this_run
from pitwall_trainer.registry.flavours import _pip_requirements, _signature, choose_flavour
from pitwall_trainer.result import RegistryRecord, TrainResult

log = logging.getLogger(__name__)

NAME_PREFIX = "pitwall-"
POLICIES = PROMOTION_POLICIES
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
    phase("Registering", message="logging the run and registering the model in MLflow")
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
        import pitwall_api

        import pitwall_trainer

        # the trainer package and the contract it imports (a serving process has neither installed)
        code = [str(Path(pkg.__file__).resolve().parent) for pkg in (pitwall_trainer, pitwall_api)]
        return mlflow.pyfunc.log_model(python_model=result.serving, code_paths=code, **common)
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


