"""`pitwall-sandbox up`: a local cluster (API, Job and RayCluster runners, operator) in the foreground.

    pitwall-sandbox up --kubeconfig ./sandbox.kubeconfig [--data-dir DIR] [--no-operator]

Contracts:
- The PersistentVolumeClaim `pitwall-data` (namespace default) is bound to the data folder:
  `--data-dir`, else $PITWALL_DATA_DIR, else the trainer's fetch cache (filled first when empty,
  unless --no-fetch). A pod mounting that claim sees the folder.
- The operator runs with KUBECONFIG=<the sandbox kubeconfig> and
  PITWALL_DEFAULT_DATA_CLAIM=pitwall-data (its default data source), plus this process's env.
- Pods run as local processes with KUBECONFIG set to the sandbox kubeconfig and
  PITWALL_TERMINATION_LOG to their termination-message file (see pods.py, volumes.py).
Ctrl-C or SIGTERM stops everything this command started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .demo import EXAMPLE, demo
from .operator_hook import OperatorProcess, default_command
from .sandbox import DATA_CLAIM, Sandbox


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir).expanduser().resolve()
    if os.environ.get("PITWALL_DATA_DIR"):
        return Path(os.environ["PITWALL_DATA_DIR"]).expanduser().resolve()
    from pitwall_trainer.data.paths import fetch_cache_dir

    cache = fetch_cache_dir()
    if not (cache / "races.csv").is_file() and not args.no_fetch:
        print(f"fetching F1 data into the cache {cache} (pitwall-train data fetch --seasons {args.seasons}) ...")
        result = subprocess.run([sys.executable, "-m", "pitwall_trainer", "data", "fetch", "--seasons", args.seasons])
        if result.returncode != 0:
            print(f"warning: the fetch failed; the claim {DATA_CLAIM} is bound to the empty cache {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _usage(kubeconfig: Path, sandbox: Sandbox, operator: OperatorProcess | None, note: str) -> str:
    return f"""
PitWall sandbox is up: API {sandbox.url}
  data: claim {DATA_CLAIM} -> {sandbox.data_dir}
  operator: {f"running, log {operator.log_path}" if operator else note}
  state: {sandbox.state_dir}

In another terminal:
  export KUBECONFIG={kubeconfig}
  kubectl apply --validate=false -f examples/trainingrun.yaml
  kubectl get trainingruns -w
  kubectl logs job/<name>
Press Ctrl-C to stop everything.
"""


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kubeconfig = Path(args.kubeconfig).expanduser().resolve()
    data_dir = _data_dir(args)
    operator: OperatorProcess | None = None
    claims = dict(c.split("=", 1) for c in args.claim)
    with Sandbox(data_dir=data_dir, state_dir=args.state_dir, port=args.port, claims=claims) as sandbox:
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sandbox.kubeconfig, kubeconfig)
        note = "not started (--no-operator): run it yourself, e.g. KUBECONFIG=... python -m pitwall_operator"
        if not args.no_operator and default_command() is None:
            note = "not available yet (no pitwall_operator.handlers); running without it"
        elif not args.no_operator:
            operator = sandbox.start_operator()
        print(_usage(kubeconfig, sandbox, operator, note), flush=True)
        while not stop.wait(1):
            if operator is not None and not operator.running:
                print(f"the operator exited ({operator.proc.returncode}); see {operator.log_path}", flush=True)
                operator = None
    print("sandbox stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pitwall-sandbox", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="run the sandbox cluster in the foreground")
    p.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig for kubectl")
    p.add_argument("--data-dir", help="folder bound to the claim pitwall-data (default $PITWALL_DATA_DIR, "
                   "else the trainer's fetch cache)")
    p.add_argument("--claim", action="append", default=[], metavar="NAME=DIR",
                   help="bind another PersistentVolumeClaim name to a host folder (repeatable)")
    p.add_argument("--no-operator", action="store_true", help="do not start the operator")
    p.add_argument("--no-fetch", action="store_true", help="do not fill an empty fetch cache")
    p.add_argument("--seasons", default="2018-2024", help="seasons to fetch into an empty cache")
    p.add_argument("--state-dir", help="keep pods' logs and Ray temp files here (default: a temp dir)")
    p.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free port)")
    d = sub.add_parser("demo", help="start the sandbox and operator, apply the example TrainingRun, watch it train")
    d.add_argument("--example", default=str(EXAMPLE), help="the TrainingRun manifest to apply")
    d.add_argument("--data-dir", help="folder of Ergast CSVs (default $PITWALL_DATA_DIR, else the fetch cache)")
    d.add_argument("--no-fetch", action="store_true", help="do not fill an empty fetch cache")
    d.add_argument("--seasons", default="2014-2024", help="seasons to fetch into an empty cache")
    d.add_argument("--state-dir", help="logs, pods' files and the MLflow store (default ./.sandbox)")
    d.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    d.add_argument("--keep", action="store_true", help="stay up after the run until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args, _data_dir(args))
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
