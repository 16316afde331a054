"""Operator metrics from status transitions (issue 14): one entry point, each series counted once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pitwall_api.common import set_condition
from pitwall_operator import metrics
from pitwall_operator.builders.status import status_patch

T0, T1, T2, T3 = "2026-05-26T06:00:00Z", "2026-05-26T06:00:04Z", "2026-05-26T06:00:30Z", "2026-05-26T06:10:30Z"
NOW = datetime(2026, 5, 26, 6, 10, 30, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def run(model: str = "quali_order") -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "f1", "uid": str(uuid.uuid4()), "creationTimestamp": T0},
            "spec": {"model": model}}


def pending() -> dict[str, Any]:
    conds = set_condition([], "Running", False, "Created", "Job created", now=T1)
    return {"state": "Pending", "conditions": conds, "jobName": "r-train", "startTime": T1}


def running() -> dict[str, Any]:
    status = pending()
    status["conditions"] = set_condition(status["conditions"], "Running", True, "Running", "running", now=T2)
    status["state"] = "Running"
    return status


def succeeded(promoted: bool, regression: bool = False) -> dict[str, Any]:
    status = running()
    conds = set_condition(status["conditions"], "Running", False, "Completed", "done", now=T3)
    status.update(state="Succeeded", completionTime=T3,
                  conditions=set_condition(conds, "Succeeded", True, "Succeeded", "v7", now=T3),
                  promotion={"promoted": promoted, "alias": "champion", "regression": regression})
    return status


def failed(reason: str) -> dict[str, Any]:
    status = running()
    conds = set_condition(status["conditions"], "Running", False, reason, "stopped", now=T3)
    status.update(state="Failed", completionTime=T3, conditions=set_condition(conds, "Failed", True, reason, "x", now=T3))
    return status


def test_a_run_going_through_to_a_promotion_counts_each_series_once() -> None:
    body, model = run(), "quali_order"
    before = {
        "promotions": value("pitwall_promotions_total", model=model),
        "regressions": value("pitwall_regressions_total", model=model),
        "durations": value("pitwall_run_duration_seconds_count", model=model, outcome="Succeeded"),
        "duration_sum": value("pitwall_run_duration_seconds_sum", model=model, outcome="Succeeded"),
        "queue": value("pitwall_queue_wait_seconds_count", model=model),
        "queue_sum": value("pitwall_queue_wait_seconds_sum", model=model),
        "jobs": value("pitwall_creation_to_job_seconds_count"),
    }
    metrics.observe_run(body, {}, {"state": "Pending"}, now=NOW)
    metrics.observe_run(body, {}, pending(), now=datetime(2026, 5, 26, 6, 0, 4, tzinfo=UTC))
    assert value("pitwall_trainingruns", state="Pending", model=model) >= 1
    queue_time = datetime(2026, 5, 26, 6, 0, 30, tzinfo=UTC)
    metrics.observe_run(body, pending(), running(), now=queue_time)
    metrics.observe_run(body, running(), running(), now=NOW)  # a pass that changes nothing counts nothing
    for _ in range(3):  # kopf retries the pass whose status write did not land: still once
        metrics.observe_run(body, running(), succeeded(promoted=True), now=NOW)
    metrics.observe_run(body, succeeded(promoted=True), succeeded(promoted=True), now=NOW)  # sticky
    assert value("pitwall_promotions_total", model=model) == before["promotions"] + 1
    assert value("pitwall_regressions_total", model=model) == before["regressions"]
    assert value("pitwall_run_duration_seconds_count", model=model, outcome="Succeeded") == before["durations"] + 1
    assert value("pitwall_run_duration_seconds_sum", model=model, outcome="Succeeded") == before["duration_sum"] + 626
    assert value("pitwall_queue_wait_seconds_count", model=model) == before["queue"] + 1
    assert value("pitwall_queue_wait_seconds_sum", model=model) == before["queue_sum"] + 30
    assert value("pitwall_creation_to_job_seconds_count") == before["jobs"] + 1
    succeeded_now = value("pitwall_trainingruns", state="Succeeded", model=model)
    assert succeeded_now >= 1 and value("pitwall_trainingruns", state="Running", model=model) == 0
    metrics.observe_run(body, succeeded(promoted=True), None)  # deleted: the gauge forgets it
    assert value("pitwall_trainingruns", state="Succeeded", model=model) == succeeded_now - 1


def test_a_regression_counts_by_model_and_is_not_a_promotion() -> None:
    body = run("pit_window")
    promotions = value("pitwall_promotions_total", model="pit_window")
    regressions = value("pitwall_regressions_total", model="pit_window")
    metrics.observe_run(body, running(), succeeded(promoted=False, regression=True), now=NOW)
    assert value("pitwall_regressions_total", model="pit_window") == regressions + 1
    assert value("pitwall_promotions_total", model="pit_window") == promotions


def test_failures_count_by_the_failed_condition_reason() -> None:
    counts = {r: value("pitwall_trainingrun_failures_total", reason=r)
              for r in ("TrainerFailed", "DeadlineExceeded", "PodNotStarting", "ChildRefused")}
    durations = value("pitwall_run_duration_seconds_count", model="race_winner", outcome="Failed")
    for reason in counts:
        body = run("race_winner")
        metrics.observe_run(body, running(), failed(reason), now=NOW)
        metrics.observe_run(body, running(), failed(reason), now=NOW)  # the same transition seen again
    for reason, before in counts.items():
        assert value("pitwall_trainingrun_failures_total", reason=reason) == before + 1
    assert value("pitwall_run_duration_seconds_count", model="race_winner", outcome="Failed") == durations + 4


def test_the_states_gauge_by_model() -> None:
    bodies = [run("model_a") for _ in range(3)]
    for body in bodies:
        metrics.observe_run(body, {}, running(), now=NOW)
    assert value("pitwall_trainingruns", state="Running", model="model_a") == 3
    metrics.observe_run(bodies[0], running(), failed("TrainerFailed"), now=NOW)
    assert value("pitwall_trainingruns", state="Running", model="model_a") == 2
    assert value("pitwall_trainingruns", state="Failed", model="model_a") == 1
    for body in bodies:
        metrics.observe_run(body, None, None)
    assert value("pitwall_trainingruns", state="Running", model="model_a") == 0  # zeroed, not stale


def test_merged_is_the_status_after_the_patch() -> None:
    assert metrics.merged({"a": 1, "b": 2}, {"b": None, "c": 3}) == {"a": 1, "c": 3}


def test_exported_names_as_promql_sees_them() -> None:
    names = metrics.exported_names()
    assert {"pitwall_trainingruns", "pitwall_promotions_total", "pitwall_run_duration_seconds",
            "pitwall_queue_wait_seconds", "pitwall_trainingrun_failures_total",
            "pitwall_reconcile_errors_total", "pitwall_reconcile_duration_seconds"} <= names


def test_the_operator_keeps_the_trainers_progress_and_resources() -> None:
    current = {"state": "Running", "progress": {"phase": "Tuning", "percent": 40},
               "resources": {"cpuCores": 1.5, "peakMemoryBytes": 2**30}}
    desired = {"state": "Succeeded", "progress": {"percent": 0}, "resources": {}}  # a builder that slipped
    assert status_patch(current, desired) == {"state": "Succeeded"}
    assert status_patch(current, {"state": "Running"}) == {}
