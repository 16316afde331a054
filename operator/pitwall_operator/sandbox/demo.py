"""`pitwall-sandbox demo`: the whole product on a laptop, as a user would drive it.

Starts the sandbox cluster with the operator, applies `examples/trainingrun.yaml` with the real
kubectl, shows `kubectl get trainingruns` as the run trains, then prints the metrics, the
baselines beside them, the MLflow model version and the promotion decision. MLflow is a local
SQLite store under the state folder, so `mlflow ui` can browse the result afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .sandbox import Sandbox

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "trainingrun.yaml"
TERMINAL = {"Succeeded", "Failed"}


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60)


def _results_table(status: dict[str, Any]) -> Table:
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


def watch(kubeconfig: Path, name: str, namespace: str, timeout: float, console: Console) -> dict[str, Any]:
    """Print the dashboard whenever it changes; return the final resource."""
    last, deadline = "", time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        table = _kubectl(kubeconfig, "get", "trainingruns", "-n", namespace).stdout.strip()
        if table and table != last:
            print(table, flush=True)  # as kubectl prints it: no re-wrapping
            last = table
        got = _kubectl(kubeconfig, "get", "trainingrun", name, "-n", namespace, "-o", "json")
        if got.returncode == 0:
            body = json.loads(got.stdout)
            if (body.get("status") or {}).get("state") in TERMINAL:
                return body
        time.sleep(2)
    console.print(f"[red]timed out after {timeout:.0f}s waiting for {name}[/red]")
    return body


def demo(args: argparse.Namespace, data_dir: Path) -> int:
    console = Console()
    state = Path(args.state_dir or ".sandbox").resolve()
    state.mkdir(parents=True, exist_ok=True)
    mlflow_uri = f"sqlite:///{state / 'mlflow.db'}"
    example = Path(args.example).resolve()
    manifest = _kubectl_manifest(example)
    name, namespace = manifest["metadata"]["name"], manifest["metadata"].get("namespace", "default")
    with Sandbox(data_dir=data_dir, state_dir=state) as sandbox:
        sandbox.start_operator(env={"PITWALL_DEFAULT_MLFLOW_URI": mlflow_uri, "PITWALL_TIMER_INTERVAL": "2"})
        kubeconfig = sandbox.kubeconfig
        console.print(f"[bold]sandbox up[/bold]: API {sandbox.url}, data {data_dir}, MLflow {mlflow_uri}")
        console.print(f"$ kubectl apply --validate=false -f {example.relative_to(REPO) if example.is_relative_to(REPO) else example}")
        applied = _kubectl(kubeconfig, "apply", "--validate=false", "-f", str(example))
        console.print(applied.stdout.strip() or applied.stderr.strip(), highlight=False)
        if applied.returncode != 0:
            return 1
        body = watch(kubeconfig, name, namespace, args.timeout, console)
        status = body.get("status") or {}
        console.print(_results_table(status))
        for condition in status.get("conditions") or []:
            console.print(f"  {condition['type']}={condition['status']} ({condition['reason']}): {condition.get('message', '')}",
                          highlight=False)
        mlflow = status.get("mlflow") or {}
        promotion = status.get("promotion") or {}
        console.print(f"MLflow: {mlflow.get('modelUri')} (run {mlflow.get('runId')}); "
                      f"promotion: {'promoted' if promotion.get('promoted') else 'not promoted'} - {promotion.get('reason')}")
        events = _kubectl(kubeconfig, "get", "events", "-n", namespace, "--field-selector",
                          f"involvedObject.name={name}", "--sort-by=.metadata.creationTimestamp",
                          "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message")
        print(events.stdout.strip(), flush=True)
        console.print(f"browse the run: mlflow ui --backend-store-uri {mlflow_uri}")
        if args.keep:
            console.print(f"still up: export KUBECONFIG={kubeconfig}; Ctrl-C stops everything")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if status.get("state") == "Succeeded" else 1


def _kubectl_manifest(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())
