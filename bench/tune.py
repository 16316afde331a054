"""Benchmark the tuning engines: wall time and best walk-forward metric on race_winner.

Three runs with the same trials, space (the default XGBoost ranges) and folds, two trials at a
time on two cores: Ray Tune + ASHA, Ray Tune without a scheduler (FIFO: every trial runs all
its rounds), Optuna + successive-halving pruner. Prints a table and ratios against Ray FIFO.

    .venv/bin/python bench/tune.py --trials 50          # the issue's benchmark (takes a while)
    .venv/bin/python bench/tune.py --trials 8 --seasons 2022-2024 --max-rounds 200   # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from pitwall_trainer.cli.common import seasons_arg
from pitwall_trainer.tuning import MlflowSettings, tune
from pitwall_trainer.tuning.space import XGBOOST_SPACE, space_spec

CONFIGS = [
    ("ray + ASHA", "ray", {"type": "ASHA"}),
    ("ray, no scheduler", "ray", {"type": "FIFO"}),
    ("optuna + pruner", "optuna", {"type": "ASHA"}),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=2, help="trials at once (one CPU each)")
    parser.add_argument("--seasons", type=seasons_arg, default=seasons_arg("2018-2024"),
                        help="the last is the holdout; the tuner's folds are the season before it")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--metric", help="objective (default: race_winner's primary, top1_accuracy)")
    parser.add_argument("--max-rounds", type=int, help="lower the n_estimators ceiling (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated config numbers to run, e.g. 1,3")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    space = space_spec(XGBOOST_SPACE)
    if args.max_rounds:
        space["n_estimators"]["high"] = args.max_rounds
        space["n_estimators"]["low"] = min(space["n_estimators"]["low"], args.max_rounds // 2)
    chosen = [int(x) for x in args.only.split(",")] if args.only else [1, 2, 3]
    rows = []
    for number, (label, engine, scheduler) in enumerate(CONFIGS, start=1):
        if number not in chosen:
            continue
        started = time.monotonic()
        result = tune(
            "race_winner", "xgboost", args.seasons, args.data_dir, engine=engine, num_samples=args.trials,
            max_concurrent=args.concurrent, search_space=space, scheduler=scheduler,
            mlflow=MlflowSettings(enabled=False), metric=args.metric, n_folds=args.folds, seed=args.seed,
            num_cpus=args.concurrent, show_progress=sys.stderr.isatty(),
        )
        wall = time.monotonic() - started
        rows.append({"config": label, "wall_s": round(wall, 1), "best": result.best_metric, "metric": result.metric,
                     "completed": result.completed, "pruned": result.pruned, "failed": result.failed,
                     "best_params": result.best_params})
        print(f"{label}: {wall:.0f}s, best {result.metric} {result.best_metric:.4f}, "
              f"{result.completed} completed / {result.pruned} stopped early", file=sys.stderr, flush=True)

    reference = next((r for r in rows if r["config"] == "ray, no scheduler"), rows[0])
    print(f"\nrace_winner, {args.trials} trials, {args.concurrent} at a time, {os.cpu_count()} CPUs, "
          f"seasons {args.seasons[0]}-{args.seasons[-1]} (holdout {args.seasons[-1]}), {args.folds} folds")
    header = f"| config | wall time (s) | best {rows[0]['metric']} | completed | stopped early | wall vs FIFO | metric vs FIFO |"
    print(header)
    print("|" + "---|" * 7)
    for r in rows:
        print(f"| {r['config']} | {r['wall_s']:.0f} | {r['best']:.4f} | {r['completed']} | {r['pruned']} | "
              f"{r['wall_s'] / reference['wall_s']:.2f} | {r['best'] / reference['best']:.3f} |")
    print(json.dumps({"trials": args.trials, "rows": rows}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
