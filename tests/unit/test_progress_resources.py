"""Issue 14: progress by phase, resource use, and the status fields and columns that show them."""

from __future__ import annotations

from pathlib import Path

import yaml
from pitwall_api.trainingrun import PHASES, Progress, TrainingRunStatus, round_for_display

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
