"""Operator benchmark: 200 TrainingRuns on the real control plane, ours versus the framework's floor.

    .venv/bin/python bench/operator.py [--runs 200] [--json out.json]

For each of two operators, on a fresh sandbox (kube-apiserver, etcd, the controller manager, the
scheduler, the process kubelet; KubeRay off): create N TrainingRuns as fast as one client can,
and measure, from a watch on Jobs, the latency from each run's create call to its Job's ADDED
event (p50, p95), the time until all Jobs exist, and the operator process's peak RSS. Both
operators run as local processes with the admin kubeconfig (not as the chart's pod), so the
figures are the operator's own work, not the kubelet's.

- pitwall: `kopf run -m pitwall_operator`, with PITWALL_TRAINER_COMMAND_OVERRIDE=true (benchmark
  only: the Job runs `true` instead of the trainer, so no training cost is measured).
- floor: a bare Kopf handler that only creates a Job (same client, same no-op command), with the
  same kopf framework settings as pitwall (`config.apply_framework_settings`: workers, threads,
  Event posting level, kopf's state in status), so the ratio measures the product's work.

Also printed: the API requests per run, read from the API server's own `apiserver_request_total`
(until every Job existed, and after the no-op Jobs finished and were observed), and the load
average before each measurement (the machine is shared).

Goal (issue 6): pitwall within 1.5x of the floor.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "default"
SETTLE = 5.0  # seconds after the last Job appeared until the requests are counted again
RUN_SPEC = {"model": "race_winner", "algorithm": "xgboost", "data": {"seasons": [2024]}}

FLOOR_OPERATOR = '''
"""The floor: the least a Kopf operator can do per TrainingRun -- create one Job.

Framework settings (worker limits, thread pool, event posting level, where kopf keeps its own
state) are the same as pitwall's, so the comparison measures the product's work, not tuning.
"""
import importlib.util
import os
import sys

import kopf
from kubernetes import client, config

config.load_kube_config()
# pitwall's config module loaded by path: importing the package would register pitwall's handlers.
_spec = importlib.util.spec_from_file_location("pitwall_config", os.environ["PITWALL_CONFIG_PY"])
pitwall_config = sys.modules["pitwall_config"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pitwall_config)
BATCH = client.BatchV1Api()


@kopf.on.startup()
def configure(settings, **_):
    pitwall_config.apply_framework_settings(settings, pitwall_config.Settings.from_env())


@kopf.on.create("pitwall.io", "v1alpha1", "trainingruns")
def create(body, **_):
    name, ns = body["metadata"]["name"], body["metadata"]["namespace"]
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": f"{name}-train", "namespace": ns,
                        "labels": {"pitwall.io/training-run": name},
                        "ownerReferences": [{"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun",
                                             "name": name, "uid": body["metadata"]["uid"], "controller": True}]},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "trainer", "image": "busybox", "command": ["true"]}]}}}}
    try:
        BATCH.create_namespaced_job(ns, job)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


REQUEST_LINE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(api: client.ApiClient) -> collections.Counter[str]:
    """`PATCH trainingruns/status`, `WATCH jobs`...: the API server's request counters, summed over codes."""
    text = api.call_api("GET", f"{api.configuration.host}/metrics").read().decode()
    counts: collections.Counter[str] = collections.Counter()
    for match in REQUEST_LINE.finditer(text):
        labels = dict(LABEL.findall(match["labels"]))
        if labels.get("group") not in ("pitwall.io", "batch", "") or not labels.get("resource"):
            continue
        resource = labels["resource"] + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        counts[f"{labels['verb']} {resource}"] += int(float(match["value"]))
    return counts


def difference(after: collections.Counter[str], before: collections.Counter[str]) -> dict[str, int]:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] > before.get(key, 0)}


class MemorySampler(threading.Thread):
    """Peak RSS of a process tree, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                root = psutil.Process(self.pid)
                rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            self.done.wait(0.05)


def start_operator(kind: str, kubeconfig: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    port = free_port()
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PITWALL_METRICS_PORT="0",
               PITWALL_TRAINER_COMMAND_OVERRIDE="true",
               PITWALL_CONFIG_PY=str(REPO / "operator" / "pitwall_operator" / "config.py"))
    if kind == "pitwall":
        target = ["-m", "pitwall_operator"]
    else:
        floor = workdir / "floor_operator.py"
        floor.write_text(FLOOR_OPERATOR)
        target = [str(floor)]
    log = workdir / f"{kind}.log"
    command = [sys.executable, "-m", "kopf", "run", *target, "--standalone", "--namespace", NAMESPACE,
               "--liveness", f"http://127.0.0.1:{port}/healthz"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} operator exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} operator not live after 60 s") from None
            time.sleep(0.2)
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def measure(kind: str, runs: int, timeout: float) -> dict[str, Any]:
    """One fresh sandbox, one operator, `runs` TrainingRuns; the figures for one table column."""
    from pitwall_sandbox.sandbox import Sandbox

    load = os.getloadavg()[0]
    with (tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp,
          Sandbox(state_dir=Path(tmp) / "sandbox", crds=[REPO / "crds"], kuberay=False,
                  data_dir=os.environ.get("PITWALL_DATA_DIR")) as sb):
        api = config.new_client_from_config(config_file=str(sb.kubeconfig))
        wait_for_default_service_account(client.CoreV1Api(api))
        before = request_counts(api)
        custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
        proc, log = start_operator(kind, sb.kubeconfig, Path(tmp))
        sampler = MemorySampler(proc.pid)
        sampler.start()
        created: dict[str, float] = {}
        seen: dict[str, float] = {}
        watcher = watch.Watch()

        def watch_jobs() -> None:
            try:
                for event in watcher.stream(batch.list_namespaced_job, NAMESPACE, timeout_seconds=int(timeout)):
                    if event["type"] == "ADDED":
                        name = event["object"].metadata.name.removesuffix("-train")
                        seen.setdefault(name, time.perf_counter())
                        if len(seen) >= runs:
                            return
            except Exception as exc:  # noqa: BLE001 - reported as missing Jobs
                print(f"watch ended: {exc}", file=sys.stderr)

        thread = threading.Thread(target=watch_jobs, daemon=True)
        thread.start()
        time.sleep(1.0)  # the watch is established
        try:
            start = time.perf_counter()
            for i in range(runs):
                name = f"bench-{i:04d}"
                body = {"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun",
                        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": RUN_SPEC}
                created[name] = time.perf_counter()
                custom.create_namespaced_custom_object("pitwall.io", "v1alpha1", NAMESPACE, "trainingruns", body)
            create_seconds = time.perf_counter() - start
            thread.join(timeout)
            at_all_jobs = difference(request_counts(api), before)
            watcher.stop()
            time.sleep(SETTLE)  # the Jobs (`true`) finish; pitwall observes them and posts its Events
            settled = difference(request_counts(api), before)
        finally:
            sampler.done.set()
            stop(proc)
            api.close()
        latencies = [seen[n] - created[n] for n in created if n in seen]
        return {
            "operator": kind,
            "runs": runs,
            "jobs": len(latencies),
            "create_seconds": create_seconds,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "all_jobs_seconds": (max(seen.values()) - start) if len(seen) >= runs else float("nan"),
            "peak_rss_mib": sampler.peak / 2**20,
            "load1_before": load,
            # until every Job existed: the creation path (the Jobs' completions follow after)
            "requests_per_run": {k: v / runs for k, v in sorted(at_all_jobs.items()) if v >= runs / 10},
            # ... and SETTLE seconds later: the whole run's work, observation of the finished Jobs included
            "requests_per_run_settled": {k: v / runs for k, v in sorted(settled.items()) if v >= runs / 10},
        }


def wait_for_default_service_account(core: client.CoreV1Api, timeout: float = 60) -> None:
    """Pods of a new namespace are refused until the serviceaccount controller made `default`."""
    deadline = time.monotonic() + timeout
    while not core.list_namespaced_service_account(NAMESPACE, field_selector="metadata.name=default").items:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no default ServiceAccount in {NAMESPACE} after {timeout:.0f} s")
        time.sleep(0.5)


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in results)
    out["jobs"] = min(r["jobs"] for r in results)
    out["rounds"] = len(results)
    out["load1_before"] = [round(r.get("load1_before", float("nan")), 2) for r in results]
    return out


def table(ours: dict[str, Any], floor: dict[str, Any]) -> str:
    rows = [("p50 creation->Job (s)", "p50", "{:.3f}"), ("p95 creation->Job (s)", "p95", "{:.3f}"),
            ("all Jobs exist (s)", "all_jobs_seconds", "{:.2f}"), ("operator peak RSS (MiB)", "peak_rss_mib", "{:.1f}")]
    out = [f"{ours['runs']} TrainingRuns (create burst: pitwall {ours['create_seconds']:.2f} s, floor {floor['create_seconds']:.2f} s; "
           f"Jobs seen: {ours['jobs']}/{floor['jobs']})", "",
           "| metric | pitwall | kopf floor | ratio |", "|---|---:|---:|---:|"]
    for label, key, fmt in rows:
        ratio = ours[key] / floor[key] if floor[key] else float("nan")
        out.append(f"| {label} | {fmt.format(ours[key])} | {fmt.format(floor[key])} | {ratio:.2f}x |")
    ours_req, floor_req = ours.get("requests_per_run") or {}, floor.get("requests_per_run") or {}
    ours_all, floor_all = ours.get("requests_per_run_settled") or {}, floor.get("requests_per_run_settled") or {}
    out += ["", f"API requests per TrainingRun (one round; every client: the bench, the controllers and the kubelet "
            f"as well as the operator): until every "
            f"Job existed, and {SETTLE:.0f} s later (the no-op Jobs finished and were observed)", "",
            "| request | pitwall | kopf floor | pitwall, settled | floor, settled |", "|---|---:|---:|---:|---:|"]
    for key in sorted(set(ours_req) | set(floor_req) | set(ours_all) | set(floor_all)):
        out.append(f"| {key} | {ours_req.get(key, 0):.2f} | {floor_req.get(key, 0):.2f} | "
                   f"{ours_all.get(key, 0):.2f} | {floor_all.get(key, 0):.2f} |")
    out.append(f"| total | {sum(ours_req.values()):.2f} | {sum(floor_req.values()):.2f} | "
               f"{sum(ours_all.values()):.2f} | {sum(floor_all.values()):.2f} |")
    out += ["", f"1-min load average before each measurement: pitwall {ours['load1_before']}, "
            f"floor {floor['load1_before']} ({os.cpu_count()} CPUs)"]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate floor/pitwall this many times and report medians (noisy machines)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    floors, ourses = [], []
    for _ in range(args.rounds):
        floors.append(measure("floor", args.runs, args.timeout))
        ourses.append(measure("pitwall", args.runs, args.timeout))
    floor, ours = median_of(floors), median_of(ourses)
    print(table(ours, floor))
    if args.rounds > 1:
        print(f"(medians of {args.rounds} alternating rounds)")
    goal = ours["p95"] <= 1.5 * floor["p95"] and ours["all_jobs_seconds"] <= 1.5 * floor["all_jobs_seconds"]
    print(f"\ngoal (p95 and all-Jobs within 1.5x of the floor): {'met' if goal else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"pitwall": ourses, "floor": floors}, indent=2))
    return 0 if ours["jobs"] == args.runs and floor["jobs"] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
