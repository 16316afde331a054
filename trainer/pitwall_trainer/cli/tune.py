"""`pitwall-train tune`: search hyperparameters with Ray Tune or Optuna on walk-forward folds.

`add_tune_arguments` and `best_params_from_args` let `train --tune` reuse the same options:
tune first, then train the final model on the best parameters.
"""

from __future__ import annotations

import argparse
from typing import Any

from pitwall_trainer.cli.common import add_data_dir, add_json, emit, seasons_arg
from pitwall_trainer.progress import Progress, ProgressSink

DEFAULT_SEASONS = "2022,2023,2024"


def add_tune_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> None:
    """The search options; `train` gets them behind `--tune` (the search only runs with it)."""
    group = parser.add_argument_group("tuning")
    if not standalone:
        group.add_argument("--tune", action="store_true", help="tune first, then train on the best parameters")
    group.add_argument("--engine", default="optuna", help="ray (Ray Tune, OptunaSearch + ASHA) or optuna (TPE + pruner)")
    group.add_argument("--num-samples", type=int, default=20, help="trials to run (default 20)")
    group.add_argument("--max-concurrent", type=int, help="trials at once (default: Ray as many as fit, Optuna 1)")
    group.add_argument(
        "--search-space",
        help="YAML/JSON file: a searchSpace mapping, a TrainingRun `tuning` block or a whole TrainingRun "
        "(default: the original design's XGBoost ranges, sensible ones for the other algorithms)",
    )
    group.add_argument("--ray-address", help="attach to a running Ray cluster, e.g. 10.0.0.5:6379 (default: local)")
    group.add_argument("--storage", help="Optuna storage URL (default: SQLite in the run folder; "
                       "postgresql://... lets several workers share one study)")
    group.add_argument("--study-name", help="Optuna study name (workers sharing a study use the same one)")
    group.add_argument("--tune-metric", help="objective (default: the model's primary metric)")
    group.add_argument("--tune-folds", type=int, default=3, help="walk-forward folds of the tuning window (default 3)")
    group.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs per trial (Ray resources, estimator threads)")
    group.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs per trial (Ray)")
    group.add_argument("--seed" if standalone else "--tune-seed", dest="seed", type=int,
                       help="sampler seed (reproducible single-process searches)")
    group.add_argument("--tune-dir", help="run folder for engine files (default: <cache>/tuning/<run>)")
    group.add_argument("--no-tune-tracking", action="store_true", help="do not log the search to MLflow")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="search hyperparameters (Ray Tune or Optuna) on walk-forward folds",
        description="Search hyperparameters on walk-forward folds by race date (the last season is "
        "held out and never seen); stop bad trials early; log trials to MLflow.",
    )
    parser.add_argument("--model", required=True, help="race_winner, quali_order or pit_window")
    parser.add_argument("--algorithm", help="xgboost, random_forest or logistic_regression (default: the model's)")
    parser.add_argument("--seasons", type=seasons_arg, default=seasons_arg(DEFAULT_SEASONS),
                        help=f"seasons; the last is held out (default {DEFAULT_SEASONS})")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, then local SQLite)")
    parser.add_argument("--experiment", help="MLflow experiment (default: pitwall-<model>)")
    add_data_dir(parser)
    add_tune_arguments(parser, standalone=True)
    add_json(parser)
    parser.set_defaults(handler=run_tune)


def _sinks(progress: Any) -> list[ProgressSink]:
    """The caller's sinks (a Progress or a list of sinks), else the TrainingRun reporter in a pod."""
    if isinstance(progress, Progress):
        return list(progress.sinks)
    if progress:
        return list(progress)
    from pitwall_trainer.reporting import StatusReporter

    reporter = StatusReporter.from_env()
    return [reporter.progress] if reporter else []


def tune_from_args(
    args: argparse.Namespace, model: str, algorithm: str, seasons: list[int], data_dir: str | None,
    progress: Any = None,
) -> Any:
    """Run the search the parsed options describe; returns a TuneResult."""
    from pitwall_trainer.tuning.api import tune
    from pitwall_trainer.tuning.tracking import MlflowSettings

    mlflow = MlflowSettings(
        tracking_uri=getattr(args, "tracking_uri", None),
        experiment=getattr(args, "experiment", None),
        enabled=not (getattr(args, "no_tune_tracking", False) or getattr(args, "no_mlflow", False)),
    )
    return tune(
        model, algorithm, seasons, data_dir,
        engine=args.engine, num_samples=args.num_samples, max_concurrent=args.max_concurrent,
        search_space=args.search_space, ray_address=args.ray_address, storage=args.storage,
        progress_sinks=_sinks(progress), mlflow=mlflow, metric=args.tune_metric, study_name=args.study_name,
        n_folds=args.tune_folds, holdout_season=getattr(args, "holdout_season", None),
        holdout_races=getattr(args, "holdout_races", None), first_year=getattr(args, "first_year", None),
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        seed=args.seed, run_dir=args.tune_dir,
    )


def best_params_from_args(
    args: argparse.Namespace, model: str, algorithm: str, seasons: list[int], data_dir: str | None,
    progress: Any = None,
) -> dict[str, Any] | None:
    """For `train --tune`: None without --tune, else the best parameters of the search."""
    if not getattr(args, "tune", False):
        return None
    return tune_from_args(args, model, algorithm, seasons, data_dir, progress).best_params


def run_tune(args: argparse.Namespace) -> int:
    from pitwall_trainer.models.factory import get_spec

    args.algorithm = args.algorithm or get_spec(args.model).default_algorithm
    result = tune_from_args(args, args.model, args.algorithm, args.seasons, args.data_dir)
    best = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    human = (
        f"{result.engine}: {result.trials} trials ({result.completed} completed, {result.pruned} stopped early, "
        f"{result.failed} failed) in {result.seconds:.0f}s; best {result.metric} {result.best_metric:.4f} "
        f"with {best}"
    )
    emit(args, result.summary(), human)
    return 0
