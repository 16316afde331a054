"""`tune(...)`: one entry for the CLI, `train --tune` and the operator's tuning Job.

It resolves the settings (search space, scheduler, metric) once, prepares the walk-forward
folds, opens the MLflow parent run and the progress bar, runs the chosen engine and returns a
TuneResult. `tune_from_spec` takes a TrainingRun's `spec.tuning` block as it is.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitwall_api.contract import OPTUNA_STORAGE_ENV
from pitwall_api.trainingrun import TrainingRunSpec

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.progress import Progress, ProgressSink
from pitwall_trainer.tuning.objective import DEFAULT_FOLDS, prepare, sized_scheduler
from pitwall_trainer.tuning.results import Bookkeeper, TuneResult
from pitwall_trainer.tuning.space import (
    Scheduler,
    SearchSpace,
    TuningSpec,
    check_engine,
    load_space_file,
    parse_scheduler,
    parse_space,
    parse_tuning,
    space_spec,
    tuning_from_api,
)
from pitwall_trainer.tuning.tracking import MlflowSettings, open_logger

STORAGE_ENV = OPTUNA_STORAGE_ENV


def default_run_dir(model: str, algorithm: str, engine: str) -> Path:
    """<cache>/tuning/<model>-<algorithm>-<engine>-<UTC time>: results stay beside the other caches."""
    from pitwall_trainer.data.paths import cache_root

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return cache_root() / "tuning" / f"{model}-{algorithm}-{engine}-{stamp}-{os.getpid()}"


def default_study_name(model: str, algorithm: str) -> str:
    """In a pod: the TrainingRun's namespace/name (a retried pod resumes the same study)."""
    from pitwall_trainer.reporting import NAME_ENV, NAMESPACE_ENV

    name = os.environ.get(NAME_ENV)
    if name:
        return f"{os.environ.get(NAMESPACE_ENV, 'default')}/{name}"
    return f"pitwall-{model}-{algorithm}"


def _space(search_space: Any, model: str, algorithm: str) -> tuple[SearchSpace, dict[str, Any]]:
    if search_space is None:
        return parse_space(None, model, algorithm), {}
    if isinstance(search_space, str | Path):
        return load_space_file(search_space, model, algorithm)
    if isinstance(search_space, dict) and search_space and all(
        hasattr(v, "distribution") for v in search_space.values()
    ):
        return dict(search_space), {}
    return parse_space(search_space, model, algorithm), {}


def _check_sizes(num_samples: Any, max_concurrent: Any, cpus_per_trial: Any) -> None:
    for option, value, low in (("--num-samples", num_samples, 1), ("--max-concurrent", max_concurrent, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{option}: must be a whole number >= {low}, got {value!r}")
    if not cpus_per_trial or cpus_per_trial <= 0:
        raise ConfigError(f"--cpus-per-trial: must be above 0, got {cpus_per_trial!r}")


def tune(
    model: str,
    algorithm: str = "xgboost",
    seasons: Sequence[int] = (2022, 2023, 2024),
    data_dir: str | None = None,
    engine: str = "optuna",
    num_samples: int = 20,
    max_concurrent: int | None = None,
    search_space: SearchSpace | dict[str, Any] | str | Path | None = None,
    scheduler: Scheduler | dict[str, Any] | None = None,
    ray_address: str | None = None,
    storage: str | None = None,
    progress_sinks: Sequence[ProgressSink] = (),
    mlflow: MlflowSettings | None = None,
    *,
    metric: str | None = None,
    mode: str | None = None,
    study_name: str | None = None,
    n_folds: int = DEFAULT_FOLDS,
    holdout_season: int | None = None,
    holdout_races: int | None = None,
    first_year: int | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    num_cpus: int | None = None,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> TuneResult:
    """Search hyperparameters of (model, algorithm) on walk-forward folds; return the best."""
    check_engine(engine, "--engine")
    _check_sizes(num_samples, max_concurrent, cpus_per_trial)
    space, extra = _space(search_space, model, algorithm)
    if scheduler is None and "scheduler" in extra:
        scheduler = extra["scheduler"]
    metric = metric or extra.get("metric")
    mode = mode or extra.get("mode")
    sched = scheduler if isinstance(scheduler, Scheduler) else parse_scheduler(scheduler)
    data = prepare(model, algorithm, seasons, data_dir, metric, mode, n_folds, holdout_season, holdout_races,
                   first_year)
    sched = sized_scheduler(sched, data, space)
    folder = Path(run_dir) if run_dir else default_run_dir(model, algorithm, engine)
    folder.mkdir(parents=True, exist_ok=True)
    study = study_name or default_study_name(model, algorithm)
    tags = {"model": model, "algorithm": algorithm, "pitwall.engine": engine,
            "seasons": ",".join(map(str, data.seasons)), "data_hash": data.data_hash}
    logger = open_logger(mlflow or MlflowSettings(), model, f"tune-{model}-{algorithm}-{engine}", tags)
    if logger is not None:
        logger.log_params({"engine": engine, "num_samples": num_samples, "metric": data.metric,
                           "mode": data.mode, "search_space": space_spec(space), "scheduler": vars(sched),
                           "folds": [f.name for f in data.folds], "holdout_season": data.holdout_season})
    started = time.monotonic()
    status = "FAILED"
    with Progress(num_samples, f"tuning {model}/{algorithm} ({engine})", show=show_progress,
                  sinks=list(progress_sinks)) as progress:
        keeper = Bookkeeper(data.mode, data.metric, progress, logger)
        try:
            if engine == "ray":
                from pitwall_trainer.tuning.ray_engine import run_ray

                outcome: Any = run_ray(data, space, sched, num_samples, max_concurrent, folder, keeper,
                                       ray_address, cpus_per_trial, gpus_per_trial, num_cpus, seed)
                storage_used, counts, address = None, outcome.counts, outcome.address
            else:
                from pitwall_trainer.tuning.optuna_engine import run_optuna

                url = storage or os.environ.get(STORAGE_ENV) or f"sqlite:///{(folder / 'optuna.db').resolve()}"
                data.n_jobs = max(1, int(cpus_per_trial))
                outcome = run_optuna(data, space, sched, num_samples, max_concurrent or 1, url, study,
                                     keeper, seed)
                storage_used, counts, address = _redact(url), outcome.counts, None
            status = "FINISHED"
            if len(keeper.records) < num_samples:  # other pods ran the rest of a shared study
                best = outcome.best_value
                progress.advance(num_samples - len(keeper.records), message="study complete", best=best)
        finally:
            if logger is not None and status == "FAILED":
                logger.finish({}, data.metric, status)
    result = TuneResult(
        engine=engine, model=model, algorithm=algorithm, metric=data.metric, mode=data.mode,
        best_params=outcome.best_params, best_metric=outcome.best_value, **counts,
        seconds=round(time.monotonic() - started, 2), search_space=space_spec(space), scheduler=vars(sched),
        seasons=data.seasons, holdout_season=data.holdout_season, folds=[f.name for f in data.folds],
        run_dir=str(folder), data_hash=data.data_hash, study_name=study if engine == "optuna" else None,
        storage=storage_used, ray_address=address, mlflow_run_id=logger.parent_id if logger else None, records=keeper.records,
    )
    if logger is not None:
        logger.finish(result.summary(), data.metric)
    return result


def _redact(url: str) -> str:
    """Never print a database password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def tune_from_block(
    model: str, algorithm: str, seasons: Sequence[int], tuning: dict[str, Any], data_dir: str | None = None,
    **kwargs: Any,
) -> TuneResult:
    """Run a `spec.tuning` block (camelCase dict, CRD shape) as is; kwargs override (e.g. storage)."""
    return _tune_spec(model, algorithm, seasons, parse_tuning(tuning, model, algorithm), data_dir, **kwargs)


def _tune_spec(model: str, algorithm: str, seasons: Sequence[int], spec: TuningSpec, data_dir: str | None,
               **kwargs: Any) -> TuneResult:
    settings: dict[str, Any] = {
        "engine": spec.engine, "num_samples": spec.num_samples, "max_concurrent": spec.max_concurrent,
        "search_space": spec.space, "scheduler": spec.scheduler, "metric": spec.metric, "mode": spec.mode,
        "study_name": spec.study_name,
    }
    settings.update(kwargs)
    return tune(model, algorithm, seasons, data_dir, **settings)


def tune_from_spec(
    spec: TrainingRunSpec, data_dir: str | None = None, sinks: Sequence[ProgressSink] = (), **kwargs: Any
) -> TuneResult:
    """Tune as a validated TrainingRun spec says (the pod's `pitwall-train run`).

    In a pod the Ray address comes from $RAY_ADDRESS (the operator's RayCluster) and the Optuna
    storage from $PITWALL_OPTUNA_STORAGE (the operator maps `optuna.storageSecretRef` there).
    """
    if spec.tuning is None:
        raise ConfigError("tuning: the spec has no tuning block")
    mlflow = spec.mlflow
    kwargs.setdefault("mlflow", MlflowSettings(mlflow.tracking_uri if mlflow else None,
                                               mlflow.experiment if mlflow else None))
    kwargs.setdefault("progress_sinks", list(sinks))
    evaluation = spec.evaluation
    kwargs.setdefault("holdout_season", evaluation.holdout_season if evaluation else None)
    kwargs.setdefault("holdout_races", evaluation.holdout_races if evaluation else None)
    kwargs.setdefault("n_folds", (evaluation.walk_forward_folds if evaluation else None) or DEFAULT_FOLDS)
    tuning = tuning_from_api(spec.tuning, spec.model, spec.algorithm)
    return _tune_spec(spec.model, spec.algorithm, list(spec.data.seasons), tuning, data_dir, **kwargs)
