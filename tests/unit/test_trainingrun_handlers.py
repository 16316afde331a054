"""The TrainingRun handlers' wake-up calls and bookkeeping, without a cluster (k8s calls replaced)."""

from __future__ import annotations

from typing import Any

import pytest
from pitwall_operator import k8s, metrics
from pitwall_operator.handlers import trainingrun as handlers

LABELS = {"pitwall.io/training-run": "rw"}


def job(uid: str, **status: Any) -> dict[str, Any]:
    return {"kind": "Job", "metadata": {"name": "rw-train", "uid": uid}, "spec": {}, "status": status}


@pytest.fixture
def annotations(monkeypatch) -> list[dict[str, str]]:
    written: list[dict[str, str]] = []
    monkeypatch.setattr(k8s, "annotate_training_run", lambda ns, name, values: written.append(values) or True)
    return written


def wake(memo: dict, kind: str | None, obj: dict) -> None:
    handlers.on_child_event(event={"type": kind, "object": obj}, namespace="f1", labels=LABELS, memo=memo)


def test_a_child_wakes_its_run_once_per_change_that_matters(annotations) -> None:
    memo: dict[str, Any] = {}
    wake(memo, "ADDED", job("j1"))  # a new Job has nothing to report
    wake(memo, "MODIFIED", job("j1", active=1))
    wake(memo, "MODIFIED", job("j1", active=1, ready=1))  # a pod counter: same state for the run
    wake(memo, None, job("j1", succeeded=1, conditions=[{"type": "Complete", "status": "True"}]))  # re-list
    wake(memo, "DELETED", job("j1"))
    values = [a[handlers.CHILDREN_ANNOTATION] for a in annotations]
    assert len(values) == 3 and "active=True" in values[0] and "ended=Complete" in values[1]
    assert values[2] == "gone j1"


def test_a_wake_up_that_failed_is_tried_again_on_the_next_event(monkeypatch) -> None:
    calls: list[str] = []

    def flaky(ns: str, name: str, values: dict[str, str]) -> bool:
        calls.append(values[handlers.CHILDREN_ANNOTATION])
        if len(calls) == 1:
            raise k8s.ApiError(503, "unavailable")
        return True

    monkeypatch.setattr(k8s, "annotate_training_run", flaky)
    memo: dict[str, Any] = {}
    wake(memo, "MODIFIED", job("j1", active=1))
    wake(memo, "MODIFIED", job("j1", active=1, ready=1))  # same signature: sent again, the first was lost
    assert len(calls) == 2 and calls[0] == calls[1] and memo["signature"] == calls[1]


def test_a_deleted_run_leaves_the_state_gauge(monkeypatch) -> None:
    run = {"metadata": {"name": "gone", "namespace": "f1", "uid": "u-gone"}, "spec": {"model": "pit_window"},
           "status": {"state": "Succeeded"}}
    def succeeded() -> float:
        return metrics.REGISTRY.get_sample_value("pitwall_trainingruns", {"state": "Succeeded", "model": "pit_window"})

    metrics.observe_run(run, {}, run["status"])
    before = succeeded()
    handlers.on_run_event(event={"type": "DELETED", "object": run})
    assert before >= 1 and succeeded() == before - 1


def test_the_resync_wakes_a_run_only_when_its_status_and_children_disagree() -> None:
    now = "2026-06-01T10:10:00Z"
    fresh = {"metadata": {"creationTimestamp": "2026-06-01T10:09:58Z"}, "spec": {}, "status": {"active": 1}}
    stuck = {"metadata": {"creationTimestamp": "2026-06-01T10:00:00Z"}, "spec": {}, "status": {"active": 1}}
    ended = {**fresh, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    running = {"jobName": "rw-train", "state": "Running"}
    assert not handlers.needs_a_look(running, fresh, None, now)
    assert handlers.needs_a_look({"jobName": "rw-train", "state": "Pending"}, fresh, None, now)  # a lost write
    assert handlers.needs_a_look(running, stuck, None, now)  # a pod not ready after the grace period
    assert handlers.needs_a_look(running, ended, None, now)  # ended but the run did not hear of it
    assert handlers.needs_a_look(running, None, None, now)  # gone, or not seen yet
    assert handlers.needs_a_look({}, None, None, now)  # a create whose retry was lost


def test_the_resync_picks_the_runs_to_wake() -> None:
    now = "2026-06-01T10:10:00Z"

    def run(name: str, created: str = "2026-06-01T10:00:00Z", **status: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "f1", "creationTimestamp": created}, "spec": {}, "status": status}

    def child(run_name: str, **status: Any) -> dict[str, Any]:
        return {"kind": "Job", "metadata": {"name": f"{run_name}-train", "namespace": "f1", "uid": "u",
                                            "labels": {"pitwall.io/training-run": run_name},
                                            "creationTimestamp": "2026-06-01T10:09:55Z"}, "spec": {}, "status": status}

    runs = [run("lost-create"), run("brand-new", created="2026-06-01T10:09:59Z"),
            run("healthy", jobName="healthy-train", state="Running"),
            run("finished-unseen", jobName="finished-unseen-train", state="Running"),
            run("done", jobName="done-train", conditions=[{"type": "Succeeded", "status": "True"}]),
            run("paused", state="Suspended")]
    jobs = [child("healthy", active=1, ready=1), child("done", succeeded=1),
            child("finished-unseen", succeeded=1, conditions=[{"type": "Complete", "status": "True"}])]
    woken = handlers.runs_to_wake(runs, jobs, [], now, min_age=5)
    assert woken == [("f1", "lost-create"), ("f1", "finished-unseen")]
