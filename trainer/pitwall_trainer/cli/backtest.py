"""`pitwall-train backtest`: each race of a season predicted by a model trained on all races before it."""

from __future__ import annotations

import argparse

from pitwall_trainer.cli.common import emit
from pitwall_trainer.cli.train import add_model_options, check_model_options, metrics_table, parse_params
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.monitoring.policy_backtest import add_retrain_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backtest", help="walk-forward backtest of one season against baselines")
    add_model_options(parser)
    parser.add_argument("--season", type=int, required=True, help="the season to backtest, e.g. 2024")
    add_retrain_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pitwall_trainer.evaluation.backtest import backtest

    check_model_options(args)
    if not 1950 <= args.season <= 2100:
        raise ConfigError(f"--season: {args.season} is outside 1950-2100")
    if args.retrain:
        return run_retrain_policy(args)
    _, summary = backtest(args.model, args.algorithm, args.season, args.data_dir, parse_params(args.params),
                          first_year=args.first_year, card_dir=args.card_dir)
    human = (f"backtest {args.model} ({args.algorithm}) {args.season}: {summary['races']} races, "
             f"retrained per race, {summary['seconds']}s\n" + metrics_table(summary["metrics"], summary["baselines"]))
    emit(args, summary, human)
    return 0


def run_retrain_policy(args: argparse.Namespace) -> int:
    """`--retrain POLICY`: replay a retraining policy over the season (issue: choose with numbers)."""
    from pitwall_trainer.monitoring.policy_backtest import format_comparison, run_policy_backtest

    summary = run_policy_backtest(args.model, args.season, args.retrain, args.data_dir, None,
                                  algorithm=args.algorithm, params=parse_params(args.params),
                                  first_year=args.first_year)
    emit(args, summary, format_comparison([summary]))
    return 0
