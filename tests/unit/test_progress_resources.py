"""Issue 14: progress by phase, resource use, and the status fields and columns that show them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import yaml
from pitwall_api.trainingrun import PHASES, Progress, TrainingRunStatus, round_for_display
from pitwall_trainer import progress as progress_module
from pitwall_trainer import reporting, resources
from pitwall_trainer.progress import Progress as Bar
from pitwall_trainer.progress import ProgressUpdate, RunTracker
from pitwall_trainer.reporting import StatusReporter, progress_status
from pitwall_trainer.resources import ResourceSampler

ROOT = Path(__file__).resolve().parents[2]
RESOURCE_FIELDS = ["cpuCores", "memoryBytes", "gpuUtilization", "gpuMemoryBytes", "peakCpuCores", "peakMemoryBytes",
                   "peakGpuUtilization", "peakGpuMemoryBytes", "sampledAt"]


# --- the contract ------------------------------------------------------------------------------


def test_status_model_accepts_phase_steps_metric_name_and_resources() -> None:
    status = TrainingRunStatus.model_validate({
        "progress": {"phase": "Tuning", "percent": 41.7, "step": 12, "totalSteps": 50, "metricName": "top1_accuracy",
                     "currentMetric": 0.5987654, "bestMetric": 0.5416666666666666, "etaSeconds": 190.4},
        "resources": {"cpuCores": 1.73, "memoryBytes": 3 * 2**30, "gpuUtilization": 55.0, "gpuMemoryBytes": 2**30,
                      "peakCpuCores": 3.5, "peakMemoryBytes": 5 * 2**30, "peakGpuUtilization": 90.0,
                      "peakGpuMemoryBytes": 2**31, "sampledAt": "2026-05-26T06:00:00Z"},
    })
    progress = status.progress
    assert (progress.phase, progress.percent, progress.step, progress.total_steps) == ("Tuning", 42, 12, 50)
    assert progress.best_metric == 0.542 and progress.current_metric == 0.599  # what `kubectl get tr` prints
    dumped = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert sorted(dumped["resources"]) == sorted(RESOURCE_FIELDS)
    assert dumped["progress"]["metricName"] == "top1_accuracy"


def test_unknown_phase_is_refused() -> None:
    try:
        Progress.model_validate({"phase": "Napping"})
    except ValueError as error:
        assert "phase" in str(error)
    else:
        raise AssertionError("a phase outside the enum was accepted")


def test_round_for_display() -> None:
    assert round_for_display(0.5416666666666666) == 0.542
    assert round_for_display(3.14159) == 3.142
    assert round_for_display(0.012345) == 0.0123  # small figures keep 3 significant digits
    assert round_for_display(0.0) == 0.0


def test_generated_crd_has_the_new_fields_and_the_phase_column() -> None:
    for path in (ROOT / "crds" / "trainingruns.pitwall.io.yaml", ROOT / "charts/pitwall/crds/trainingruns.pitwall.io.yaml"):
        crd = yaml.safe_load(path.read_text())
        (version,) = crd["spec"]["versions"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        progress = status["progress"]["properties"]
        assert progress["phase"]["enum"] == list(PHASES)
        assert {"metricName", "step", "totalSteps"} <= set(progress)
        assert sorted(status["resources"]["properties"]) == sorted(RESOURCE_FIELDS)
        columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
        assert columns["Phase"]["jsonPath"] == ".status.progress.phase"
        names = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
        assert names.index("State") < names.index("Phase") < names.index("Progress") < names.index("Best")


# --- the trainer: phases, ETA, display ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracked() -> tuple[RunTracker, Clock, list[ProgressUpdate]]:
    clock = Clock()
    tracker = RunTracker(clock=clock)
    seen: list[ProgressUpdate] = []
    tracker.listen(seen.append)
    return tracker, clock, seen


def test_percent_moves_monotonically_through_the_phases_with_and_without_tuning() -> None:
    for tuned in (False, True):
        tracker, clock, seen = tracked()
        tracker.enter("Loading")
        tracker.enter("Features")
        if tuned:
            tracker.enter("Tuning", total=5, metric_name="top1_accuracy")
            for trial in range(5):
                clock.now += 3
                tracker.step(f"trial {trial}", metric=0.5 + trial / 100, best=0.5 + trial / 100)
            tracker.enter("Loading")  # training loads the data again: the percent holds, never goes back
            tracker.enter("Features")
        tracker.enter("Evaluating", total=4, metric_name="top1_accuracy")
        for fold in range(4):
            clock.now += 2
            tracker.step(f"2024 R{fold}", metric=0.55)
        for name in ("Training", "Registering", "Promoting", "Done"):
            tracker.enter(name)
        percents = [u.percent for u in seen]
        assert percents == sorted(percents), percents
        assert percents[0] == 0 and percents[-1] == 100
        assert len(set(int(p) for p in percents)) >= 8  # it moves, not 0 then 100
        assert [u.phase for u in seen][-1] == "Done" and seen[-1].eta_seconds == 0
        evaluating = [u for u in seen if u.phase == "Evaluating"]
        assert (evaluating[-1].done, evaluating[-1].total) == (4, 4)
        assert evaluating[-1].message == "fold 4/4 (2024 R3), top1_accuracy 0.550"
        if tuned:
            trial = [u for u in seen if u.phase == "Tuning"][-1]
            assert trial.message == "trial 5/5, best 0.540" and trial.metric_name == "top1_accuracy"
            assert trial.percent > 40  # tuning is most of a tuned run


def test_eta_comes_from_the_measured_step_times() -> None:
    tracker, clock, seen = tracked()
    tracker.enter("Tuning", total=10)  # the first phase: the run's whole pace is this phase's
    for _ in range(4):
        clock.now += 5
        tracker.step()
    # 6 trials left at 5 s each, plus the later phases at the run's pace so far
    here = 6 * 5
    assert seen[-1].eta_seconds >= here
    pace = 20 / seen[-1].percent
    rest = 100 - (tracker.start + tracker.width)
    assert abs(seen[-1].eta_seconds - (here + pace * rest)) < 1e-6
    clock.now += 1  # slower steps lengthen the estimate
    before = tracker.eta()
    for _ in range(2):
        clock.now += 20
        tracker.step()
    assert seen[-1].eta_seconds > before - 40


def test_progress_bar_with_a_phase_feeds_the_tracker() -> None:
    tracker, clock, seen = tracked()
    with (mock.patch.object(progress_module, "TRACKER", tracker),
          Bar(3, "tuning", show=False, phase="Tuning", metric_name="mae") as bar):
        bar.advance(1, "trial 0", metric=3.21, best=3.21)
        bar.advance(1, "trial 1", metric=3.5, best=3.21)
    assert [(u.phase, u.done, u.total) for u in seen] == [("Tuning", 0, 3), ("Tuning", 1, 3), ("Tuning", 2, 3)]
    assert seen[-1].message == "trial 2/3, best 3.210" and seen[-1].metric_name == "mae"


def test_progress_status_block_rounds_for_display_and_names_the_phase() -> None:
    update = ProgressUpdate(12, 50, "trial 12/50, best 0.612", 0.5987654321, 0.5416666666666666, 190.7,
                            phase="Tuning", metric_name="top1_accuracy", overall=41.9)
    block = progress_status(update)
    assert block["bestMetric"] == 0.542 and block["currentMetric"] == 0.599
    assert (block["phase"], block["percent"], block["step"], block["totalSteps"]) == ("Tuning", 41, 12, 50)
    assert block["metricName"] == "top1_accuracy" and block["etaSeconds"] == 190
    TrainingRunStatus.model_validate({"progress": block})  # fits the contract


class FakeApi:
    def __init__(self) -> None:
        self.patches: list[dict] = []

    def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body):
        self.patches.append(body["status"])


class FixedSampler:
    def __init__(self) -> None:
        self.stopped = False

    def status(self, fresh: bool = False) -> dict:
        return {"cpuCores": 1.5, "memoryBytes": 2**30, "peakCpuCores": 2.0, "peakMemoryBytes": 2**31,
                "sampledAt": "2026-05-26T06:00:00Z"}

    def start(self, interval, on_sample) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


def test_reporter_follows_the_phases_with_resources_and_completes_the_final_block() -> None:
    api = FakeApi()
    reporter = StatusReporter("run", "ns", api=api, min_interval=60)
    tracker = RunTracker()
    with mock.patch.object(reporting, "TRACKER", tracker):
        reporter.follow_run(sampler=FixedSampler())  # type: ignore[arg-type]
        tracker.listen(reporter.progress)
        reporter.progress(ProgressUpdate(1, 100))  # a bar without a phase: its copy comes via the tracker
        assert api.patches == []
        tracker.enter("Loading")
        tracker.enter("Evaluating", total=3, metric_name="top1_accuracy")
        tracker.step("f1", metric=0.5)  # rate-limited: same phase, not the last step
        tracker.step("f2", metric=0.6)
        tracker.step("f3", metric=0.6)  # the last step of a phase always goes out
        assert [p["progress"]["phase"] for p in api.patches] == ["Loading", "Evaluating", "Evaluating"]
        assert all(p["resources"]["cpuCores"] == 1.5 for p in api.patches)
        reporter.patch({"metrics": {"top1_accuracy": 0.5416666666666666},
                        "progress": {"percent": 100, "message": "done", "bestMetric": 0.5416666666666666,
                                     "currentMetric": 0.5416666666666666}})
    final = api.patches[-1]["progress"]
    assert final["phase"] == "Done" and final["bestMetric"] == 0.542 and final["metricName"] == "top1_accuracy"
    assert final["etaSeconds"] == 0 and final["step"] is None  # merge patch: the steps are removed
    assert api.patches[-1]["resources"]["peakMemoryBytes"] == 2**31
    assert api.patches[-1]["metrics"]["top1_accuracy"] == 0.5416666666666666  # the exact figure stays
    assert reporter.sampler.stopped and reporter.progress not in tracker.listeners


def test_a_failing_listener_never_stops_training() -> None:
    tracker, _, _ = tracked()

    def broken(_update: ProgressUpdate) -> None:
        raise RuntimeError("API down")

    tracker.listen(broken)
    assert tracker.enter("Loading").phase == "Loading"


# --- the trainer: resources -------------------------------------------------------------------


BUSY = "import time\nend = time.time() + 20\nwhile time.time() < end:\n    pass\n"


def test_sampler_sees_a_busy_child_and_keeps_the_peaks() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        sampler = ResourceSampler(gpu=lambda: None)
        time.sleep(1.0)
        first = sampler.sample()
        assert first is not None and first.cpu_cores > 0.2, first  # the child spins a core
        assert first.memory_bytes > 10 * 2**20  # this process and the child, summed
        status = sampler.status()
        assert status["peakCpuCores"] >= status["cpuCores"] > 0 and status["peakMemoryBytes"] >= status["memoryBytes"]
        assert "gpuUtilization" not in status and "peakGpuMemoryBytes" not in status  # no GPU: absent
    finally:
        child.kill()
        child.wait()
    time.sleep(0.5)
    after = sampler.sample()
    assert after.cpu_cores < first.cpu_cores or after.cpu_cores < 0.5
    assert sampler.peak_cpu >= first.cpu_cores  # the peak stays
    TrainingRunStatus.model_validate({"resources": sampler.status()})


def test_gpu_figures_from_nvidia_smi_and_absent_without_it() -> None:
    with mock.patch.object(resources.shutil, "which", return_value=None):
        assert resources.gpu_usage() is None
    done = subprocess.CompletedProcess([], 0, stdout="40, 1024\n60, 2048\n", stderr="")
    with mock.patch.object(resources.shutil, "which", return_value="/usr/bin/nvidia-smi"):
        assert resources.gpu_usage(lambda *a, **k: done) == (50.0, 3072 * 2**20)
        failed = subprocess.CompletedProcess([], 9, stdout="", stderr="no devices")
        assert resources.gpu_usage(lambda *a, **k: failed) is None

        def boom(*_a, **_k):
            raise subprocess.TimeoutExpired("nvidia-smi", 5)

        assert resources.gpu_usage(boom) is None
    sampler = ResourceSampler(gpu=lambda: (75.0, 2**30))
    status = sampler.status(fresh=True)
    assert status["gpuUtilization"] == 75.0 and status["peakGpuMemoryBytes"] == 2**30


def test_background_thread_samples_and_stops() -> None:
    sampler = ResourceSampler(gpu=lambda: None)
    seen: list = []
    sampler.start(0.05, seen.append)
    time.sleep(0.4)
    sampler.stop()
    assert len(seen) >= 2 and not sampler.running
    thread = [t for t in threading.enumerate() if t.name == "pitwall-resources"]
    assert all(t.daemon for t in thread)  # never keeps the process alive


def test_sampler_without_psutil_reports_nothing_and_does_not_fail() -> None:
    with mock.patch.dict(sys.modules, {"psutil": None}):
        sampler = ResourceSampler()
    assert sampler.sample() is None and sampler.status() == {}
    sampler.start(0.01)
    sampler.stop()


def test_a_phase_without_steps_removes_the_previous_steps() -> None:
    block = progress_status(ProgressUpdate(0, 0, "fitting", phase="Training", overall=80.0))
    assert block["step"] is None and block["totalSteps"] is None and block["phase"] == "Training"
    assert reporting.finite({"progress": block})["progress"]["step"] is None  # sent as null: removed
