"""`pitwall-sandbox demo`: the whole product on one machine, as a user would drive it.

Starts the sandbox (the real control plane), installs the chart, applies the example TrainingRun
with the real kubectl, shows `kubectl get trainingruns` (the server's printer columns) as the run
trains, then prints the metrics beside the baselines, the MLflow model version, the promotion
decision and the Events. MLflow is a SQLite store in the state folder (pods run on this machine's
filesystem), so `mlflow ui` can browse the result afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from .sandbox import Sandbox

TERMINAL = {"Succeeded", "Failed"}


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60)


def results_table(status: dict[str, Any]) -> Table:
    """Each model metric beside the baselines' value of the same metric."""
    metrics, baselines = status.get("metrics") or {}, status.get("baselines") or {}
    names = sorted({b.split(".", 1)[0] for b in baselines})
    table = Table(title="evaluation races: model vs baselines")
    table.add_column("metric")
    table.add_column("model", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for metric, value in sorted(metrics.items()):
        if metric == "n_races":
            continue
        cells = [f"{baselines[f'{b}.{metric}']:.3f}" if f"{b}.{metric}" in baselines else "-" for b in names]
        table.add_row(metric, f"{value:.3f}", *cells)
    return table


def watch(kubeconfig: Path, name: str, namespace: str, timeout: float, stop: threading.Event,
          console: Console) -> dict[str, Any]:
    """Print the server's table whenever it changes; return the final resource."""
    last, deadline = "", time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline and not stop.is_set():
        table = _kubectl(kubeconfig, "get", "trainingruns", "-n", namespace).stdout.strip()
        if table and table != last:
            print(table, flush=True)
            last = table
        got = _kubectl(kubeconfig, "get", "trainingrun", name, "-n", namespace, "-o", "json")
        if got.returncode == 0:
            body = json.loads(got.stdout)
            if (body.get("status") or {}).get("state") in TERMINAL:
                return body
        stop.wait(2)
    console.print(f"[red]stopped waiting for {name} after {timeout:.0f}s[/red]")
    return body


def demo(args: argparse.Namespace, data_dir: Path, stop: threading.Event) -> int:
    console = Console()
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    mlflow_uri = f"sqlite:///{state / 'mlflow.db'}"
    example = Path(args.example).resolve()
    manifest = yaml.safe_load(example.read_text())
    name, namespace = manifest["metadata"]["name"], manifest["metadata"].get("namespace", "default")
    console.print("[bold]starting the sandbox[/bold]: etcd, kube-apiserver, controller manager, scheduler, "
                  "KubeRay, the process kubelet (a first run builds them: see README)")
    with Sandbox(data_dir=data_dir, state_dir=state / "cluster") as sandbox:
        kubeconfig = sandbox.kubeconfig
        print(_kubectl(kubeconfig, "version").stdout.strip(), flush=True)
        console.print(f"[bold]helm install pitwall {args.chart}[/bold] (operator as the chart's Deployment)")
        pod = sandbox.install_chart(Path(args.chart), mlflow_uri=mlflow_uri, extra_env={"PITWALL_TIMER_INTERVAL": "2"})
        console.print(f"operator pod {pod['metadata']['name']} Ready; data {data_dir}; MLflow {mlflow_uri}")
        console.print(f"$ kubectl apply -f {args.example}")
        applied = _kubectl(kubeconfig, "apply", "-f", str(example))
        console.print(applied.stdout.strip() or applied.stderr.strip(), highlight=False)
        if applied.returncode != 0:
            return 1
        body = watch(kubeconfig, name, namespace, args.timeout, stop, console)
        status = body.get("status") or {}
        console.print(results_table(status))
        for condition in status.get("conditions") or []:
            console.print(f"  {condition['type']}={condition['status']} ({condition['reason']}): "
                          f"{condition.get('message', '')}", highlight=False)
        mlflow, promotion = status.get("mlflow") or {}, status.get("promotion") or {}
        console.print(f"MLflow: {mlflow.get('modelUri')} (run {mlflow.get('runId')}); promotion: "
                      f"{'promoted' if promotion.get('promoted') else 'not promoted'} - {promotion.get('reason')}")
        events = _kubectl(kubeconfig, "get", "events", "-n", namespace, "--field-selector",
                          f"involvedObject.name={name}", "--sort-by=.metadata.creationTimestamp",
                          "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message")
        print(events.stdout.strip(), flush=True)
        console.print(f"browse the run: mlflow ui --backend-store-uri {mlflow_uri}")
        if args.keep:
            console.print(f"still up: export KUBECONFIG={kubeconfig}; Ctrl-C stops everything")
            stop.wait()
        return 0 if status.get("state") == "Succeeded" else 1
