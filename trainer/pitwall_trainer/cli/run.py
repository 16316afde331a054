"""`pitwall-train run --spec FILE`: what a TrainingRun's pod runs.

Reads the spec the operator mounted, optionally fetches data and tunes, trains, registers and
promotes, reports progress and the result to the TrainingRun's status, and always leaves the
result in the termination message so the operator can recover it even if a status patch was
lost. Exit codes: 2 for a bad spec or bad data (the Job fails fast), 1 for
anything worth a retry (MLflow down, a crash).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pitwall_api.contract import DATA_DIR_ENV
from pitwall_api.redact import redact_text, redact_uri
from pitwall_api.result import Regression, TrainerError, TrainerResult
from pitwall_api.trainingrun import MlflowStatus, PromotionStatus

from pitwall_trainer.cli.common import add_json, emit
from pitwall_trainer.errors import EXIT_OK, EXIT_RETRYABLE, ConfigError, PitwallError
from pitwall_trainer.progress import Progress
from pitwall_trainer.reporting import StatusReporter, write_termination_message


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run one TrainingRun spec (what the training pod runs)",
        description="Train, register and promote as a TrainingRun spec says; report to its status.",
    )
    parser.add_argument("--spec", required=True, help="TrainingRun spec as YAML (the spec, or a whole manifest)")
    parser.add_argument("--data-dir", help="data folder (default: $PITWALL_DATA_DIR, then the fetch cache)")
    parser.add_argument("--termination-log", help="where to write the result (default $PITWALL_TERMINATION_LOG or /dev/termination-log)")
    add_json(parser)
    parser.set_defaults(handler=run_command)


def load_spec(path: str) -> Any:
    """Parse the mounted spec with the API models; every bad field is named (exit 2)."""
    from pitwall_api import SpecError, parse_training_run_spec

    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"--spec: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"--spec: {path} is not valid YAML: {error}") from None
    if isinstance(document, dict) and "spec" in document and "model" not in document:
        document = document["spec"]
    try:
        return parse_training_run_spec(document)
    except SpecError as error:
        raise ConfigError("--spec: the TrainingRun spec is not valid: " + "; ".join(error.messages)) from None


def _fetch_if_asked(spec: Any, data_dir: str | None) -> str | None:
    """With `data.source.fetch`, fill the cache folder first and train on it."""
    source = spec.data.source
    if source is None or source.fetch is None:
        return data_dir
    from pitwall_trainer.data.fetch import DEFAULT_BASE_URL, fetch_seasons
    from pitwall_trainer.data.paths import fetch_cache_dir

    target = Path(data_dir) if data_dir else fetch_cache_dir()
    history_start = min(spec.data.seasons) - 3  # form features look back a few seasons
    fetch_seasons(range(history_start, max(spec.data.seasons) + 1), target,
                  base_url=source.fetch.base_url or DEFAULT_BASE_URL)
    return str(target)


def execute(spec: Any, data_dir: str | None, reporter: StatusReporter | None) -> dict[str, Any]:
    """Tune (if asked), train, register, promote; return the result payload (camelCase)."""
    from pitwall_trainer import registry
    from pitwall_trainer.training import train

    sinks = [reporter.progress] if reporter else []
    registry.ensure_reachable(spec.mlflow.tracking_uri if spec.mlflow else None)
    data_dir = _fetch_if_asked(spec, data_dir)
    params = None
    if spec.tuning is not None:
        from pitwall_trainer.tuning.api import tune_from_spec

        tuned = tune_from_spec(spec, data_dir=data_dir, sinks=sinks)
        params = tuned.best_params
    evaluation = {}
    if spec.evaluation is not None:
        evaluation = {
            "holdout_races": spec.evaluation.holdout_races,
            "holdout_season": spec.evaluation.holdout_season,
            "walk_forward_folds": spec.evaluation.walk_forward_folds,
        }
    card_dir = Path(tempfile.mkdtemp(prefix="pitwall-card-"))  # logged to MLflow as artifacts
    with Progress(total=100, description=f"train {spec.model}", sinks=sinks) as progress:
        result = train(
            model=spec.model,
            algorithm=spec.algorithm,
            seasons=list(spec.data.seasons),
            data_dir=data_dir,
            params=params,
            card_dir=card_dir,
            progress=progress,
            **evaluation,
        )
    mlflow, promotion = spec.mlflow, spec.promotion
    partial: dict[str, Any] = {"metrics": _floats(result.metrics), "baselines": _floats(result.baselines)}
    try:
        record = registry.log_and_register(
            result,
            tracking_uri=mlflow.tracking_uri if mlflow else None,
            experiment=mlflow.experiment if mlflow else None,
            registered_model_name=mlflow.registered_model_name if mlflow else None,
        )
        partial["mlflow"] = _mlflow_block(record)
        decision = registry.promote(
            record,
            result,
            policy=promotion.policy if promotion else "IfBetter",
            metric=promotion.metric if promotion else None,
            mode=promotion.mode if promotion else None,
            min_improvement=promotion.min_improvement if promotion else 0.0,
            alias=promotion.alias if promotion else "champion",
            tracking_uri=mlflow.tracking_uri if mlflow else None,
        )
    except Exception as error:
        # MLflow failed after training: the figures still reach the status and termination message.
        error.partial = partial  # type: ignore[attr-defined]
        raise
    payload = result_payload(result, record, decision, params)
    final = result.metrics.get(result.primary_metric)
    if final is not None:  # the Best column shows the run's final primary metric
        payload["progress"] = {"percent": 100, "message": f"done: {result.primary_metric} {final:.3f}",
                               "currentMetric": float(final), "bestMetric": float(final)}
    return payload


def result_payload(result: Any, record: Any, decision: Any, best_params: dict | None) -> dict[str, Any]:
    """The status fields and termination message of a successful run (a TrainerResult, camelCase)."""
    regression = None
    if decision.regression and decision.new_value is not None and decision.previous_value is not None:
        regression = Regression(metric=decision.metric, previous=decision.previous_value, new=decision.new_value,
                                delta=decision.new_value - decision.previous_value)
    promotion = PromotionStatus(
        promoted=decision.promoted,
        alias=decision.alias,
        version=decision.new_version if decision.promoted else None,
        previous_version=decision.previous_version,
        reason=decision.reason[:1024],
        regression=decision.regression,
    )
    return TrainerResult(
        ok=True,
        exit_code=EXIT_OK,
        metrics=_floats(result.metrics),
        baselines=_floats(result.baselines),
        best_params=best_params or None,
        mlflow=MlflowStatus.model_validate(_mlflow_block(record)),
        promotion=promotion,
        regression=regression,
    ).to_json_dict()


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def _mlflow_block(record: Any) -> dict[str, Any]:
    return {
        "runId": record.run_id,
        "experimentId": record.experiment_id,
        "modelVersion": str(record.model_version),
        "modelUri": record.model_uri,
        "runUrl": redact_uri(record.run_url) if record.run_url else record.run_url,
    }


def failure_payload(error: BaseException, exit_code: int) -> dict[str, Any]:
    """The error, plus whatever the run had already produced (metrics when MLflow failed late)."""
    return {
        **getattr(error, "partial", {}),
        **TrainerResult(
            ok=False, exit_code=exit_code,
            error=TrainerError(type=type(error).__name__, message=redact_text(str(error))[:3000]),
        ).to_json_dict(),
    }


def run_command(args: argparse.Namespace) -> int:
    reporter = StatusReporter.from_env()
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    try:
        spec = load_spec(args.spec)
        payload = execute(spec, data_dir, reporter)
    except PitwallError as error:
        write_termination_message(failure_payload(error, error.exit_code), args.termination_log)
        raise
    except Exception as error:
        failed = failure_payload(error, EXIT_RETRYABLE)
        if reporter and getattr(error, "partial", None):
            reporter.patch({k: v for k, v in error.partial.items() if v})  # type: ignore[attr-defined]
        write_termination_message(failed, args.termination_log)
        raise
    if reporter:
        reporter.patch(TrainerResult.model_validate(payload).status_fields())
    write_termination_message(payload, args.termination_log)
    promotion = payload["promotion"]
    human = (
        f"model version {payload['mlflow']['modelVersion']} registered; "
        f"{'promoted' if promotion['promoted'] else 'not promoted'}: {promotion.get('reason', '')}"
    )
    emit(args, payload, human)
    return EXIT_OK
