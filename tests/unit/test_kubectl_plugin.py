"""`kubectl pitwall`: the pure rendering from dicts (as the API returns them) to the text on screen."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pitwall_kubectl import render
from pitwall_kubectl.cli import main
from rich.console import Console

# noon local time: "today" (the local calendar day) is then unambiguous for times a few hours off
NOW = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)


def iso(when: datetime) -> str:
    """As the API server writes times: UTC with a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def text_of(renderable: Any, width: int = 160) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def run(name: str, state: str | None, *, completed: datetime | None = None, uid: str | None = None,
        spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                     "creationTimestamp": iso(NOW - timedelta(minutes=10))},
        "spec": spec or {"model": "race_winner", "algorithm": "xgboost"},
    }
    if state is not None:
        body["status"] = {"state": state, **status}
        if completed is not None:
            body["status"]["completionTime"] = iso(completed)
    return body


TUNING = run(
    "tune-a", "Running",
    spec={"model": "race_winner", "algorithm": "xgboost", "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                                          "limits": {"cpu": "4", "memory": "8Gi"}}},
    startTime=iso(NOW - timedelta(minutes=4)),
    progress={"phase": "Tuning", "percent": 40, "message": "trial 12/50, best 0.612", "currentMetric": 0.59876,
              "bestMetric": 0.61249, "metricName": "top1_accuracy", "etaSeconds": 190},
    resources={"cpuCores": 2.0, "memoryBytes": 3 * 2**30, "peakCpuCores": 3.5, "peakMemoryBytes": 5 * 2**30},
)


def line_with(text: str, needle: str) -> str:
    lines = [line for line in text.splitlines() if needle in line]
    assert lines, f"no line with {needle!r} in:\n{text}"
    return lines[0]


def bar_cells(line: str) -> int:
    """How many cells of a rich progress bar are drawn as done (━ full, ╸ half)."""
    match = re.search(r"[━╸╺]+", line)
    return 0 if match is None else len(match.group(0).rstrip("╺").replace("╺", ""))


# --- counts ---------------------------------------------------------------------------------------


def test_counts_by_state_and_today_is_the_local_calendar_day() -> None:
    runs = [
        run("r1", "Running"), run("r2", "Running"), run("p1", "Pending"), run("new", None),  # no status yet = queued
        run("s1", "Suspended"),
        run("ok-today", "Succeeded", completed=NOW - timedelta(hours=3)),
        run("ok-today-2", "Succeeded", completed=NOW.replace(hour=0, minute=0, second=1)),
        run("ok-yesterday", "Succeeded", completed=NOW.replace(hour=0, minute=0, second=0) - timedelta(seconds=1)),
        run("ok-no-time", "Succeeded"),
        run("bad-today", "Failed", completed=NOW - timedelta(minutes=1)),
        run("bad-last-week", "Failed", completed=NOW - timedelta(days=7)),
    ]
    assert render.counts(runs, NOW) == {"active": 2, "queued": 2, "suspended": 1, "succeeded_today": 2, "failed_today": 1}
    header = line_with(text_of(render.dashboard({"runs": runs, "namespace": "default"}, NOW)), "Active")
    assert re.search(r"Active 2 .*Queued 2 .*Suspended 1 .*Succeeded today 2 .*Failed today 1", header), header


def test_only_running_and_pending_runs_get_a_panel() -> None:
    runs = [TUNING, run("queued-b", "Pending"), run("done-c", "Succeeded", completed=NOW), run("held-d", "Suspended")]
    text = text_of(render.dashboard({"runs": runs, "namespace": "default"}, NOW))
    assert "tune-a" in text and "queued-b" in text
    assert "done-c" not in text and "held-d" not in text
    assert text.index("tune-a") < text.index("queued-b"), "Running panels come before Pending ones"


# --- the run panel -------------------------------------------------------------------------------


def test_panel_shows_progress_metric_eta_and_resources() -> None:
    event_old = {"involvedObject": {"kind": "TrainingRun", "name": "tune-a", "uid": "uid-tune-a"}, "type": "Normal",
                 "reason": "JobCreated", "message": "created job", "lastTimestamp": iso(NOW - timedelta(minutes=3))}
    event_new = {"involvedObject": {"kind": "TrainingRun", "name": "tune-a", "uid": "uid-tune-a"}, "type": "Normal",
                 "reason": "TrialDone", "message": "trial 12 finished", "lastTimestamp": iso(NOW - timedelta(seconds=42))}
    other = {"involvedObject": {"kind": "TrainingRun", "name": "tune-a", "uid": "an-older-run-of-that-name"},
             "reason": "Stale", "message": "not this run", "lastTimestamp": iso(NOW)}
    text = text_of(render.dashboard({"runs": [TUNING], "events": [event_new, other, event_old],
                                     "namespace": "default"}, NOW))

    assert "race_winner" in text and "xgboost" in text
    assert "Tuning" in line_with(text, "Phase")
    progress = line_with(text, "Progress")
    assert "40%" in progress and "trial 12/50, best 0.612" in progress
    assert bar_cells(progress) in (12, 13), progress  # 40% of a 32-cell bar
    metric = line_with(text, "Metric")
    assert "current 0.599" in metric and "best 0.612" in metric and "top1_accuracy" in metric
    assert "3m 10s" in line_with(text, "ETA")
    cpu = line_with(text, "CPU")
    assert "2 / 4 cores (limit)" in cpu and "peak 3.5" in cpu
    assert bar_cells(cpu) == 16, "CPU is scaled to the limit: 2 of 4 cores is half the bar"
    memory = line_with(text, "Memory")
    assert "3Gi / 8Gi (limit)" in memory and "peak 5Gi" in memory
    assert "GPU" not in text, "no GPU row without gpuUtilization"
    event = line_with(text, "Event")
    assert "TrialDone: trial 12 finished" in event and "42s ago" in event
    assert "Stale" not in text, "an Event of another object with the same name (other uid) is not this run's"


def test_cpu_scales_to_the_request_then_the_peak_then_one_core_and_gpu_shows_when_reported() -> None:
    requested = run("a", "Running", spec={"model": "pit_window", "resources": {"requests": {"cpu": "500m"}}},
                    resources={"cpuCores": 0.25})
    assert "0.25 / 0.5 cores (request)" in line_with(text_of(render.run_panel(requested, [], NOW)), "CPU")
    peaked = run("b", "Running", resources={"cpuCores": 1, "peakCpuCores": 4, "gpuUtilization": 75,
                                            "gpuMemoryBytes": 2**30, "peakGpuUtilization": 90})
    text = text_of(render.run_panel(peaked, [], NOW))
    assert "1 / 4 cores (peak)" in line_with(text, "CPU")
    gpu = line_with(text, "GPU")
    assert "75%" in gpu and "mem 1Gi" in gpu and "peak 90%" in gpu
    assert bar_cells(gpu) == 24, "75% of the GPU bar"
    bare = run("c", "Running", resources={"cpuCores": 0.5})
    assert "0.5 / 1 cores" in line_with(text_of(render.run_panel(bare, [], NOW)), "CPU")


def test_missing_fields_show_a_dash_and_never_fail() -> None:
    """A run the operator has not touched yet, and one from an operator without phase/metricName/resources."""
    fresh = {"metadata": {"name": "fresh", "namespace": "default"}, "spec": {"model": "quali_order"}}
    older = run("older", "Running", progress={"percent": 10})
    text = text_of(render.dashboard({"runs": [fresh, older], "namespace": None}, NOW))
    assert "default/fresh" in text and "default/older" in text  # all namespaces: namespace/name
    fresh_panel = text_of(render.run_panel(fresh, [], NOW))
    for label in ("Progress", "ETA", "CPU", "Memory", "Event"):
        assert "—" in line_with(fresh_panel, label), label
    assert "current —  best —" in line_with(fresh_panel, "Metric")
    assert "Pending" in line_with(fresh_panel, "Phase"), "no phase: the state is shown"
    older_panel = text_of(render.run_panel(older, [], NOW))
    assert "10%" in line_with(older_panel, "Progress")
    stepped = run("stepped", "Running", progress={"percent": 30, "step": 2, "totalSteps": 4, "phase": "Evaluating"})
    assert "30%  step 2/4" in line_with(text_of(render.run_panel(stepped, [], NOW)), "Progress"), "no message: the steps"
    assert "Running" in line_with(older_panel, "Phase")
    assert "(" not in line_with(older_panel, "Metric"), "no metricName, no name in brackets"
    describe = text_of(render.describe(fresh, [], NOW))
    assert "no metrics yet" in describe and "none yet" in describe


def test_policies_table_shows_model_next_trigger_champion_and_last_run() -> None:
    policy = {
        "metadata": {"name": "weekly", "namespace": "default"},
        "spec": {"schedule": "0 6 * * 2", "checkInterval": "15m", "template": {"spec": {"model": "race_winner"}}},
        "status": {"lastCheckTime": iso(NOW - timedelta(minutes=5)), "lastSuccessfulRun": "weekly-abc",
                   "champion": {"version": "7", "metric": "top1_accuracy", "value": 0.5812}},
    }
    bare = {"metadata": {"name": "bare", "namespace": "default"}, "spec": {"template": {"spec": {"model": "pit_window"}}}}
    text = text_of(render.dashboard({"runs": [], "policies": [policy, bare], "namespace": "default"}, NOW))
    row = line_with(text, "weekly ")
    assert "race_winner" in row and "check in 10m" in row and "0 6 * * 2" in row
    assert "v7" in row and "0.581" in row and "weekly-abc" in row
    assert "—" in line_with(text, "bare")
    assert "No active TrainingRuns" in text


# --- describe ------------------------------------------------------------------------------------


def test_describe_marks_baselines_beaten_for_higher_and_lower_is_better() -> None:
    done = run("done", "Succeeded", completed=NOW,
               metrics={"top1_accuracy": 0.6, "log_loss": 2.1, "brier": 0.05, "mae_laps": 3.0},
               baselines={"pole_sitter.top1_accuracy": 0.55, "grid_order.top1_accuracy": 0.7,
                          "pole_sitter.log_loss": 2.5, "grid_order.log_loss": 1.9,
                          "pole_sitter.brier": 0.05, "median_stint.mae_laps": 4.0},
               promotion={"promoted": True, "alias": "champion", "version": "8", "previousVersion": "7",
                          "reason": "top1_accuracy 0.60 > 0.58 + 0.00"},
               mlflow={"runUrl": "http://mlflow:5000/#/experiments/1/runs/abc", "modelUri": "models:/pitwall-race_winner/8"},
               conditions=[{"type": "Succeeded", "status": "True", "reason": "Completed", "message": "trained",
                            "lastTransitionTime": iso(NOW - timedelta(minutes=2))}])
    names, rows = render.compare(done["status"]["metrics"], done["status"]["baselines"])
    assert names == ["pole_sitter", "grid_order", "median_stint"]
    by = {row["metric"]: row for row in rows}
    assert by["top1_accuracy"]["baselines"] == {"pole_sitter": (0.55, True), "grid_order": (0.7, False)}
    assert by["log_loss"]["lower_is_better"] and by["log_loss"]["baselines"] == {"pole_sitter": (2.5, True),
                                                                                  "grid_order": (1.9, False)}
    assert by["brier"]["baselines"] == {"pole_sitter": (0.05, None)}  # a tie beats nothing
    assert by["mae_laps"]["baselines"] == {"median_stint": (4.0, True)}

    text = text_of(render.describe(done, [], NOW), width=200)
    accuracy = line_with(text, "top1_accuracy │")
    assert re.search(r"higher .*0\.600 .*0\.550 ✓ beats .*0\.700 ✗ loses .*1/2", accuracy), accuracy
    log_loss = line_with(text, "log_loss")
    assert re.search(r"lower .*2\.100 .*2\.500 ✓ beats .*1\.900 ✗ loses .*1/2", log_loss), log_loss
    assert "= tie" in line_with(text, "brier")
    assert re.search(r"Succeeded .*True .*Completed .*trained .*2m 0s ago", line_with(text, "Completed │")), text
    assert "promoted" in line_with(text, "Decision") and "v8" in line_with(text, "Version ")
    assert "http://mlflow:5000/#/experiments/1/runs/abc" in text and "models:/pitwall-race_winner/8" in text


@pytest.mark.parametrize(("metric", "lower"), [("log_loss", True), ("brier", True), ("mae_laps", True), ("rmse", True),
                                               ("top1_accuracy", False), ("spearman", False), ("ndcg_at_10", False)])
def test_metric_direction(metric: str, lower: bool) -> None:
    assert render.lower_is_better(metric) is lower


@pytest.mark.parametrize(("seconds", "text"), [(190, "3m 10s"), (45, "45s"), (0, "0s"), (3600, "1h 0m"),
                                               (7500, "2h 5m"), (90061, "1d 1h"), (None, "—")])
def test_durations(seconds: float | None, text: str) -> None:
    assert render.fmt_duration(seconds) == text


# --- errors --------------------------------------------------------------------------------------


def test_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: team-a}}]
current-context: ctx
""")
    assert main(["dashboard", "--once", "--kubeconfig", str(kubeconfig)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the cluster at https://127.0.0.1:1 (context ctx)"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["describe", "x", "--kubeconfig", str(tmp_path / "missing")]) == 1
    assert "cannot load the kubeconfig" in capsys.readouterr().err


# --- the watch store -----------------------------------------------------------------------------


class FakeKube:
    """list_raw and watch as the API would answer: a first watch that expires (410), then a live one."""

    scope, context = "default", "ctx"

    def __init__(self, stop: Any) -> None:
        self.stop, self.lists, self.watched_from = stop, 0, []

    def list_raw(self, what: str) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return [run("relisted", "Running")], "200"

    def watch(self, what: str, resource_version: str | None) -> Any:
        from kubernetes.client.rest import ApiException

        self.watched_from.append(resource_version)
        if len(self.watched_from) == 1:
            yield "ADDED", run("added", "Pending")
            raise ApiException(status=410, reason="Gone")
        yield "BOOKMARK", {"metadata": {"resourceVersion": "250"}}
        yield "MODIFIED", run("relisted", "Succeeded", completed=NOW)
        yield "DELETED", run("relisted", "Succeeded")
        yield "ADDED", run("last", "Running")
        self.stop.set()
        yield "ADDED", run("after-stop", "Running")


def test_watch_applies_changes_and_relists_when_the_version_expires() -> None:
    import threading

    from pitwall_kubectl.dashboard import Store, _watch_forever

    stop, store = threading.Event(), Store()
    kube = FakeKube(stop)
    _watch_forever(kube, store, "runs", "100", stop)  # returns once stopped
    names = sorted(r["metadata"]["name"] for r in store.snapshot(kube)["runs"])
    assert names == ["last"], "the relist replaced 'added'; 'relisted' was deleted; nothing after stop"
    assert kube.lists == 1, "listed once: after the 410, not at the start (the caller listed)"
    assert kube.watched_from == ["100", "200"], "watch from the list's version, again from the relist's after 410"
    assert store.snapshot(kube)["errors"] == {}, "a 410 is routine, not an error to show"
    assert store.changed.is_set()


# --- logs: which pod ------------------------------------------------------------------------------


class PodsKube:
    def __init__(self, pods: dict[str, list[dict[str, Any]]]) -> None:
        self.by_selector, self.asked = pods, []

    def pods(self, selector: str) -> list[dict[str, Any]]:
        self.asked.append(selector)
        return self.by_selector.get(selector, [])


def pod(name: str, created: str, containers: tuple[str, ...] = ("trainer",)) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"containers": [{"name": c} for c in containers]}}


def test_logs_pick_the_newest_pod_of_the_job_or_the_ray_head() -> None:
    from pitwall_kubectl.kube import PluginError
    from pitwall_kubectl.logs import find_pod, pick_container

    job_run = run("r", "Running", jobName="r-job", rayClusterName="r-ray")
    kube = PodsKube({"batch.kubernetes.io/job-name=r-job": [pod("r-job-old", "2026-01-01T10:00:00Z"),
                                                             pod("r-job-new", "2026-01-01T10:05:00Z")],
                     "ray.io/cluster=r-ray,ray.io/node-type=head": [pod("r-ray-head", "2026-01-01T09:00:00Z",
                                                                        ("ray-head", "autoscaler"))]})
    assert find_pod(kube, job_run)["metadata"]["name"] == "r-job-new", "a retry's pod, not the failed first one"
    head = find_pod(kube, job_run, head=True)
    assert head["metadata"]["name"] == "r-ray-head" and pick_container(head, None) == "ray-head"
    assert pick_container(pod("p", "", ("sidecar", "trainer")), None) == "trainer"
    with pytest.raises(PluginError, match="has no container nope"):
        pick_container(head, "nope")

    old_cluster = PodsKube({"job-name=r-job": [pod("legacy", "2026-01-01T10:00:00Z")]})
    assert find_pod(old_cluster, job_run)["metadata"]["name"] == "legacy", "the pre-1.27 label"

    with pytest.raises(PluginError) as no_pods:
        find_pod(PodsKube({}), job_run)
    assert str(no_pods.value) == "TrainingRun r has no pod yet: state Running, Job r-job has no pods"
    pending = run("q", None)
    with pytest.raises(PluginError) as no_job:
        find_pod(PodsKube({}), pending)
    assert str(no_job.value) == "TrainingRun q has no pod yet: state Pending, no Job created yet"
    with pytest.raises(PluginError, match="TrainingRun q has no Ray cluster"):
        find_pod(PodsKube({}), pending, head=True)
