"""`pitwall-train train` and the options it shares with `backtest` (model, algorithm, params)."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pitwall_api.trainingrun import DEFAULT_ALIAS, DEFAULT_WALK_FORWARD_FOLDS, PROMOTION_POLICIES

from pitwall_trainer.cli.common import add_data_dir, add_json, emit, seasons_arg
from pitwall_trainer.cli.tune import add_tune_arguments, best_params_from_args
from pitwall_trainer.errors import ConfigError


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="race_winner, quali_order or pit_window")
    parser.add_argument("--algorithm", help="xgboost, random_forest or logistic_regression "
                        "(default: the model's, chosen on backtests before 2024)")
    parser.add_argument("--params", help="hyperparameters as a JSON object, or @file.json")
    parser.add_argument("--first-year", type=int, help="earliest season used for training rows (default per model)")
    parser.add_argument("--card-dir", help="write the model card (card.md + plots) into this folder")
    add_data_dir(parser)
    add_json(parser)


def parse_params(text: str | None) -> dict[str, Any]:
    """`--params '{"max_depth": 4}'` or `--params @tuned.json`; anything else is a ConfigError."""
    if not text:
        return {}
    try:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
        value = json.loads(raw)
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"--params: not a JSON object or readable @file ({error})") from None
    if not isinstance(value, dict):
        raise ConfigError("--params: must be a JSON object such as {\"max_depth\": 4}")
    return value


def check_model_options(args: argparse.Namespace) -> None:
    """Name the bad field before any data is read."""
    from pitwall_trainer.models.factory import ALGORITHMS, get_spec

    spec = get_spec(args.model)
    args.algorithm = args.algorithm or spec.default_algorithm
    if args.algorithm not in ALGORITHMS:
        raise ConfigError(f"--algorithm: unknown algorithm {args.algorithm!r} (choose from {', '.join(ALGORITHMS)})")


def metrics_table(metrics: dict[str, float], baselines: dict[str, dict[str, float]]) -> str:
    """A small text table: model beside each baseline, one metric a row."""
    names = [k for k in metrics if not k.startswith("n_")]
    cols = ["model", *baselines]
    lines = [f"{'metric':<16}" + "".join(f"{c:>22}" for c in cols)]
    for name in names:
        cells = [metrics[name]] + [baselines[b].get(name) for b in baselines]
        lines.append(f"{name:<16}" + "".join(f"{'-' if v is None else f'{v:.3f}':>22}" for v in cells))
    return "\n".join(lines)


def nest_baselines(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        name, metric = key.split(".", 1)
        out.setdefault(name, {})[metric] = value
    return out


def check_output(output: str | None) -> None:
    """Refuse an --output that cannot be written before training, not after (exit 2)."""
    if not output:
        return
    target = Path(output)
    parent = next((p for p in [target.parent, *target.parent.parents] if p.exists()), Path("."))
    if target.is_dir():
        raise ConfigError(f"--output: {output} is a folder; give a file name such as {output}/model.pkl")
    if not parent.is_dir():
        raise ConfigError(f"--output: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--output: cannot write under {parent}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train, evaluate walk-forward, save, log to MLflow and promote")
    add_model_options(parser)
    parser.add_argument("--seasons", type=seasons_arg, required=True, help="e.g. 2022,2023,2024 or 2018-2024")
    parser.add_argument("--output", help="write the fitted model (pickle) here")
    parser.add_argument("--folds", type=int, default=DEFAULT_WALK_FORWARD_FOLDS,
                        help="walk-forward folds over the evaluation races (0 = one temporal holdout)")
    parser.add_argument("--holdout-season", type=int, help="evaluate on this season (default: the last chosen)")
    parser.add_argument("--holdout-races", type=int, help="evaluate on the last N races instead")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging, registry and promotion")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else local SQLite)")
    parser.add_argument("--experiment", help="MLflow experiment (default: one per model)")
    parser.add_argument("--registered-model-name", help="registry name (default: pitwall-<model>)")
    parser.add_argument("--promotion-policy", default="IfBetter", help=", ".join(PROMOTION_POLICIES))
    parser.add_argument("--promotion-metric", help="metric to compare (default: the model's primary metric)")
    parser.add_argument("--promotion-mode", help="max or min (default: the metric's own)")
    parser.add_argument("--min-improvement", type=float, default=0.0, help="required gain over the champion")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help="registry alias that marks the served version")
    add_tune_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pitwall_trainer.training import train

    check_model_options(args)
    if args.promotion_policy not in PROMOTION_POLICIES:
        raise ConfigError(f"--promotion-policy: {args.promotion_policy!r} is not one of {', '.join(PROMOTION_POLICIES)}")
    if args.promotion_mode not in (None, "max", "min"):
        raise ConfigError(f"--promotion-mode: {args.promotion_mode!r} is not max or min")
    params = parse_params(args.params)
    check_output(args.output)
    if not args.no_mlflow:  # a down MLflow fails in seconds, before a long training
        from pitwall_trainer import registry

        registry.ensure_reachable(args.tracking_uri)
    started = time.monotonic()
    tuned = best_params_from_args(args, args.model, args.algorithm, args.seasons, args.data_dir, None)
    if tuned:  # --tune: train the final model on the best parameters found
        params = {**(params or {}), **tuned}
    result = train(args.model, args.algorithm, args.seasons, args.data_dir, params,
                   holdout_races=args.holdout_races, holdout_season=args.holdout_season,
                   walk_forward_folds=args.folds, first_year=args.first_year,
                   output=args.output, card_dir=args.card_dir)
    record = decision = None
    if not args.no_mlflow:
        from pitwall_trainer import registry  # lazy: MLflow is slow to import and optional here

        record = registry.log_and_register(result, tracking_uri=args.tracking_uri, experiment=args.experiment,
                                           registered_model_name=args.registered_model_name)
        decision = registry.promote(record, result, policy=args.promotion_policy, metric=args.promotion_metric,
                                    mode=args.promotion_mode, min_improvement=args.min_improvement,
                                    alias=args.alias, tracking_uri=args.tracking_uri)
    summary = result.summary()
    summary.update(
        baselines=nest_baselines(result.baselines),
        primary_value=result.metrics.get(result.primary_metric),
        output=str(Path(args.output).resolve()) if args.output else None,
        mlflow=asdict(record) if record else None,
        promotion=asdict(decision) if decision else None,
        seconds=round(time.monotonic() - started, 2),
    )
    human = [f"{result.model} ({result.algorithm}) trained on {result.seasons[0]}-{result.seasons[-1]}, "
             f"evaluated {result.params['evaluation']} on {result.params['eval_races']} races "
             f"from {result.params['eval_from']}:",
             metrics_table(result.metrics, summary["baselines"])]
    if args.output:
        human.append(f"model written to {args.output}")
    if result.card_dir:
        human.append(f"model card in {result.card_dir}")
    if record:
        human.append(f"MLflow run {record.run_id}, registered {record.model_name} v{record.model_version}")
    if decision:
        human.append(f"promotion: {'promoted' if decision.promoted else 'not promoted'} ({decision.reason})")
    emit(args, summary, "\n".join(human))
    return 0
