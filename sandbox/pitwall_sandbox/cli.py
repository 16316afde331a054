"""`pitwall-sandbox up`: a local cluster (the real control plane, the process kubelet, KubeRay and
the PitWall chart) in the foreground; `pitwall-sandbox demo`: that, plus the example TrainingRun.

    pitwall-sandbox up --kubeconfig ./sandbox.kubeconfig [--data-dir DIR] [--no-operator]

- The claim `pitwall-data` (namespace default) is bound to the data folder through a real
  PersistentVolume: `--data-dir`, else $PITWALL_DATA_DIR, else the trainer's fetch cache (filled
  first when empty, unless --no-fetch).
- The chart (`--chart`, default ./charts/pitwall) is installed with Helm's library into
  pitwall-system; the operator is its Deployment's pod, under the chart's RBAC.
Ctrl-C or SIGTERM stops everything this command started; a second `up` on the same state
folder says that one is already running.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .build import BuildError
from .sandbox import DATA_CLAIM, Sandbox

DEFAULT_STATE = Path(os.environ.get("PITWALL_CACHE_DIR") or Path.home() / ".cache" / "pitwall") / "sandbox"


def data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir).expanduser().resolve()
    if os.environ.get("PITWALL_DATA_DIR"):
        return Path(os.environ["PITWALL_DATA_DIR"]).expanduser().resolve()
    cache = Path(os.environ.get("PITWALL_CACHE_DIR") or Path.home() / ".cache" / "pitwall") / "f1-ergast"
    if not (cache / "races.csv").is_file() and not args.no_fetch:
        print(f"fetching F1 data into {cache} (pitwall-train data fetch --seasons {args.seasons}) ...", flush=True)
        result = subprocess.run([sys.executable, "-m", "pitwall_trainer", "data", "fetch", "--seasons", args.seasons])
        if result.returncode != 0:
            print(f"warning: the fetch failed; the claim {DATA_CLAIM} is bound to the empty folder {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    return cache


class StateLock:
    """One sandbox per state folder: a second `up` is told which process holds it."""

    def __init__(self, state: Path) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.path = state / "sandbox.lock"
        self.handle = self.path.open("a+")

    def acquire(self) -> str | None:
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            return self.handle.read().strip() or "another process"
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def up(args: argparse.Namespace) -> int:
    state = Path(args.state_dir).expanduser().resolve() if args.state_dir else DEFAULT_STATE
    holder = (lock := StateLock(state)).acquire()
    if holder:
        print(f"error: a sandbox is already running on {state} ({holder}); stop it (Ctrl-C in its terminal) "
              "or give --state-dir", file=sys.stderr)
        return 1
    stop = _stop_on_signals()
    kubeconfig = Path(args.kubeconfig).expanduser().resolve()
    claims = dict(c.split("=", 1) for c in args.claim)
    with Sandbox(data_dir=data_dir(args), state_dir=state, port=args.port, claims=claims) as sandbox:
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sandbox.kubeconfig, kubeconfig)
        operator = "not installed (--no-operator)"
        if not args.no_operator:
            pod = sandbox.install_chart(Path(args.chart), mlflow_uri=args.mlflow_uri)
            operator = f"pod pitwall-system/{pod['metadata']['name']} (chart {args.chart})"
        print(f"""
PitWall sandbox is up: Kubernetes {sandbox.url} (node {sandbox.node_ip})
  data: claim {DATA_CLAIM} -> {sandbox.data_dir}
  operator: {operator}
  state and logs: {state}

In another terminal:
  export KUBECONFIG={kubeconfig}
  kubectl apply -f examples/trainingrun.yaml
  kubectl get trainingruns -w
Press Ctrl-C to stop everything.
""", flush=True)
        while not stop.wait(1):
            sandbox.control_plane.check()
    del lock
    print("sandbox stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .demo import demo

    parser = argparse.ArgumentParser(prog="pitwall-sandbox", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder bound to the claim pitwall-data (default $PITWALL_DATA_DIR, "
                        "else the trainer's fetch cache)")
    common.add_argument("--no-fetch", action="store_true", help="do not fill an empty fetch cache")
    common.add_argument("--seasons", default="2014-2024", help="seasons to fetch into an empty cache")
    common.add_argument("--chart", default="charts/pitwall", help="the PitWall chart to install (default ./charts/pitwall)")
    p = sub.add_parser("up", parents=[common], help="run the sandbox cluster in the foreground")
    p.add_argument("--kubeconfig", required=True, help="where to write the admin kubeconfig for kubectl")
    p.add_argument("--claim", action="append", default=[], metavar="NAME=DIR",
                   help="bind another PersistentVolumeClaim name to a host folder (repeatable)")
    p.add_argument("--no-operator", action="store_true", help="do not install the chart")
    p.add_argument("--mlflow-uri", help="the operator's default MLflow tracking URI")
    p.add_argument("--state-dir", help=f"certificates, etcd, pods' files and logs (default {DEFAULT_STATE})")
    p.add_argument("--port", type=int, default=0, help="API server port (default: a free port)")
    d = sub.add_parser("demo", parents=[common], help="the sandbox and operator, the example TrainingRun applied and watched")
    d.add_argument("--example", default="examples/trainingrun.yaml", help="the TrainingRun manifest to apply")
    d.add_argument("--state-dir", default=".sandbox", help="logs, pods' files and the MLflow store (default ./.sandbox)")
    d.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    d.add_argument("--keep", action="store_true", help="stay up after the run until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args, data_dir(args), _stop_on_signals())
        return up(args)
    except (BuildError, FileNotFoundError, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
