"""Benchmark the trainer: wall time and peak memory of `train` per model on 2022-2024, then, for
each model and season 2019-2024, a walk-forward backtest (every race predicted by a model retrained
on all races before it) beside each baseline, with its wall time. Prints tables (and --json FILE).

    PITWALL_DATA_DIR=/path/to/f1-ergast .venv/bin/python bench/train.py

Each command runs in its own child process (`--child`) so its peak RSS is its own
(getrusage RUSAGE_CHILDREN of a process that starts exactly one command). The feature cache is
warmed first unless --cold, so train times measure training, not the one-off feature build.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pitwall_trainer.evaluation.metrics import HEADLINE, worse

MODELS = ("race_winner", "quali_order", "pit_window")
SEASONS = (2019, 2020, 2021, 2022, 2023, 2024)


def child(argv: list[str]) -> int:
    """Run one command; print its wall time, peak RSS and last stdout line as JSON on our stdout."""
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB on Linux
    lines = proc.stdout.strip().splitlines()
    print(json.dumps({"code": proc.returncode, "wall_s": wall, "peak_mb": peak_kb / 1024,
                      "result": json.loads(lines[-1]) if proc.returncode == 0 and lines else None,
                      "stderr": proc.stderr[-2000:] if proc.returncode else ""}))
    return 0


def measure(cmd: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *cmd], capture_output=True, text=True, env=env,
                         check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    if record["code"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({record['code']}):\n{record['stderr']}")
    return record


def _pair(values: dict, metrics: tuple[str, ...]) -> str:
    return " / ".join(f"{values[m]:.3f}" if m in values else "-" for m in metrics)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", help="default: each model's own default algorithm")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seasons", default=",".join(map(str, SEASONS)), help="backtest seasons")
    parser.add_argument("--cold", action="store_true", help="start from an empty feature cache")
    parser.add_argument("--skip-backtest", action="store_true")
    parser.add_argument("--json", dest="json_out", help="also write all figures to this file")
    args = parser.parse_args()

    exe = [sys.executable, "-m", "pitwall_trainer"]
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="pitwall-bench-"))
    if args.cold:
        env["PITWALL_CACHE_DIR"] = str(work / "cache")
    else:  # warm the feature cache once, outside the measurements
        subprocess.run([sys.executable, "-c", "from pitwall_trainer.features import load_feature_matrix as f; f()"],
                       env=env, check=True)
    models = args.models.split(",")
    figures: dict = {"train": {}, "backtest": {}}

    algo = ["--algorithm", args.algorithm] if args.algorithm else []
    print(f"train --seasons 2022,2023,2024 --algorithm {args.algorithm or '(model default)'} --no-mlflow "
          f"({'cold' if args.cold else 'warm'} feature cache, {os.cpu_count()} cores)")
    print(f"{'model':<13}{'wall s':>9}{'peak MB':>10}  primary metric (walk-forward on 2024)")
    for model in models:
        rec = measure([*exe, "train", "--model", model, "--seasons", "2022,2023,2024", *algo,
                       "--output", str(work / f"{model}.pkl"), "--no-mlflow", "--json"], env)
        res = rec["result"]
        figures["train"][model] = {"wall_s": rec["wall_s"], "peak_mb": rec["peak_mb"],
                                   "primary": {res["primary_metric"]: res["primary_value"]}}
        print(f"{model:<13}{rec['wall_s']:>9.1f}{rec['peak_mb']:>10.0f}  {res['primary_metric']} = "
              f"{res['primary_value']:.3f} ({res['algorithm']})")

    if not args.skip_backtest:
        print("\nbacktest (each race predicted by a model retrained on every race before it); "
              "'worse than' names each baseline figure the model loses")
        for model in models:
            metrics = HEADLINE[model]
            print(f"\n{model}: {' / '.join(metrics)}")
            header = None
            for season in args.seasons.split(","):
                rec = measure([*exe, "backtest", "--model", model, "--season", season, *algo, "--json"], env)
                res = rec["result"]
                figures["backtest"][f"{model}/{season}"] = {"wall_s": rec["wall_s"], "peak_mb": rec["peak_mb"],
                                                           "algorithm": res["algorithm"], "races": res["races"],
                                                           "metrics": res["metrics"], "baselines": res["baselines"]}
                if header is None:
                    header = f"{'season':<7}{'races':>6}{'wall s':>8}{'s/race':>8}  {res['algorithm']:<22}" + "".join(
                        f"{name:<22}" for name in res["baselines"]) + "verdict"
                    print(header)
                cells = [f"{season:<7}{res['races']:>6}{rec['wall_s']:>8.1f}{rec['wall_s'] / res['races']:>8.2f}  "
                         + f"{_pair(res['metrics'], metrics):<22}"]
                cells += [f"{_pair(vals, metrics):<22}" for vals in res["baselines"].values()]
                losses = [f"{name} {m}" for name, vals in res["baselines"].items() for m in metrics
                          if m in vals and worse(m, res["metrics"][m], vals[m])]
                print("".join(cells) + ("worse than " + ", ".join(losses) if losses else "beats every baseline"))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        raise SystemExit(child(sys.argv[2:]))
    raise SystemExit(main())
