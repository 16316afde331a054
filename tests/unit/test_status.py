"""The TrainingRun state machine: observed Job + pods + termination message -> desired status."""

from __future__ import annotations

import json

import pytest
from pitwall_api import derive_state, get_condition, parse_training_run_status
from pitwall_operator.builders import status as st

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"

RESULT_OK = {
    "ok": True,
    "metrics": {"top1_accuracy": 0.58, "log_loss": 1.9, "bad": float("nan")},
    "baselines": {"pole_sitter.top1_accuracy": 0.5},
    "mlflow": {"runId": "r1", "experimentId": "1", "modelVersion": "3", "modelUri": "models:/pitwall-race_winner/3"},
    "promotion": {"promoted": True, "alias": "champion", "previousVersion": "2", "reason": "0.58 > 0.54"},
    "regression": None,
    "error": None,
    "exitCode": 0,
}


def job(active=0, failed=0, succeeded=0, cond=None, reason=None, message="", suspend=False) -> dict:
    status = {"active": active, "failed": failed, "succeeded": succeeded}
    if cond:
        status["conditions"] = [{"type": cond, "status": "True", "reason": reason or "", "message": message}]
    return {"metadata": {"name": "rw-train"}, "spec": {"suspend": suspend}, "status": status}


def pod(exit_code: int, message: str, finished: str = T1) -> dict:
    term = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error", "message": message, "finishedAt": finished}
    return {"metadata": {"creationTimestamp": finished}, "status": {"containerStatuses": [{"name": "trainer", "state": {"terminated": term}}]}}


def apply(current: dict, outcome: st.Outcome) -> dict:
    patch = st.status_patch(current, outcome.status)
    parse_training_run_status({**current, **patch})  # every status we write fits the CRD model
    return {**current, **patch}


def test_created_then_running_then_succeeded_with_result_from_termination():
    s0: dict = {}
    out = st.created(s0, 1, T0, job_name="rw-train")
    s1 = apply(s0, out)
    assert s1["state"] == "Pending" and s1["jobName"] == "rw-train" and s1["startTime"] == T0
    assert get_condition(s1["conditions"], "Running")["reason"] == "Created"
    assert [t.reason for t in out.transitions] == ["Created"]

    out = st.observe(s1, 1, job(active=1), [], T1)
    s2 = apply(s1, out)
    assert s2["state"] == "Running" and s2["attempts"] == 1 and s2["observedGeneration"] == 1
    assert [t.reason for t in out.transitions] == ["Running"]
    running_since = get_condition(s2["conditions"], "Running")["lastTransitionTime"]

    again = st.observe(s2, 1, job(active=1), [], T2)
    assert st.status_patch(s2, again.status) == {} and again.transitions == []  # unchanged -> no write
    assert get_condition(again.status["conditions"], "Running")["lastTransitionTime"] == running_since

    out = st.observe(s2, 1, job(succeeded=1, cond="Complete"), [pod(0, json.dumps(RESULT_OK))], T2)
    s3 = apply(s2, out)
    assert s3["state"] == "Succeeded" and s3["completionTime"] == T2
    assert s3["metrics"] == {"top1_accuracy": 0.58, "log_loss": 1.9}  # NaN dropped
    assert s3["mlflow"]["modelVersion"] == "3"
    assert s3["promotion"]["promoted"] is True and s3["promotion"]["version"] == "3"
    assert get_condition(s3["conditions"], "ModelRegistered")["status"] == "True"
    assert get_condition(s3["conditions"], "Promoted")["reason"] == "Promoted"
    assert get_condition(s3["conditions"], "Running")["status"] == "False"
    assert {t.reason for t in out.transitions} >= {"Succeeded", "ModelRegistered", "Promoted"}
    assert out.promoted is True and out.regression is None and out.failure is None


def test_trainer_status_report_wins_over_termination_message():
    current = {"state": "Running", "metrics": {"top1_accuracy": 0.6}, "mlflow": {"modelVersion": "9"}}
    out = st.observe(current, 1, job(succeeded=1, cond="Complete"), [pod(0, json.dumps(RESULT_OK))], T1)
    assert out.status["metrics"] == {"top1_accuracy": 0.6} and out.status["mlflow"] == {"modelVersion": "9"}
    assert out.status["baselines"] == {"pole_sitter.top1_accuracy": 0.5}  # filled from the message


def test_not_promoted_with_regression():
    result = {**RESULT_OK, "promotion": {"promoted": False, "alias": "champion", "reason": "0.40 < 0.58"},
              "regression": {"metric": "top1_accuracy", "previous": 0.58, "new": 0.40, "delta": -0.18}}
    out = st.observe({"state": "Running"}, 1, job(succeeded=1, cond="Complete"), [pod(0, json.dumps(result))], T1)
    promoted = get_condition(out.status["conditions"], "Promoted")
    assert promoted["status"] == "False" and promoted["reason"] == "NotPromoted"
    assert out.promoted is False and out.regression["delta"] == -0.18
    assert out.status["promotion"]["regression"] is True
    warning = [t for t in out.transitions if t.reason == "Regression"]
    assert warning and warning[0].type == "Warning" and "previous 0.58" in warning[0].message


def test_bad_data_fails_fast_with_trainer_message():
    result = {"ok": False, "error": {"type": "DataError", "message": "races.csv: missing column raceId"}, "exitCode": 2}
    failed_job = job(failed=1, cond="Failed", reason="PodFailurePolicy", message="Container trainer exited 2")
    out = st.observe({"state": "Running"}, 1, failed_job, [pod(2, json.dumps(result))], T1)
    failed = get_condition(out.status["conditions"], "Failed")
    assert out.state == "Failed" and failed["reason"] == "TrainerFailed"
    assert failed["message"] == "DataError: races.csv: missing column raceId"
    assert out.failure == {"type": "DataError", "message": "DataError: races.csv: missing column raceId"}
    assert out.transitions[0].type == "Warning"


def test_backoff_limit_uses_newest_pod_and_counts_attempts():
    pods = [pod(1, json.dumps({"ok": False, "error": {"type": "MlflowUnavailable", "message": "old"}}), T0),
            pod(1, json.dumps({"ok": False, "error": {"type": "MlflowUnavailable", "message": "MLflow at http://x unreachable"}}), T2)]
    out = st.observe({"state": "Running"}, 1, job(failed=4, cond="Failed", reason="BackoffLimitExceeded"), pods, T2)
    failed = get_condition(out.status["conditions"], "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and out.status["attempts"] == 4
    assert failed["message"] == "failed after 4 attempt(s): MlflowUnavailable: MLflow at http://x unreachable"


def test_deadline_and_logs_fallback():
    out = st.observe({}, 1, job(failed=1, cond="Failed", reason="DeadlineExceeded", message="Job was active longer than specified deadline"), [], T1)
    assert get_condition(out.status["conditions"], "Failed")["reason"] == "DeadlineExceeded"
    assert "deadline" in out.failure["message"]
    logs = "Traceback (most recent call last):\nKeyError: 'x'"
    out = st.observe({}, 1, job(failed=4, cond="Failed", reason="BackoffLimitExceeded"), [pod(1, logs)], T1)
    assert "KeyError: 'x'" in get_condition(out.status["conditions"], "Failed")["message"]


def test_terminal_states_are_sticky():
    done = apply({}, st.observe({}, 1, job(succeeded=1, cond="Complete"), [pod(0, json.dumps(RESULT_OK))], T1))
    later = st.observe(done, 2, job(active=1), [], T2)
    assert st.status_patch(done, later.status) == {} and later.transitions == []
    failed = apply({}, st.observe({}, 1, job(failed=1, cond="Failed", reason="BackoffLimitExceeded"), [], T1))
    assert st.status_patch(failed, st.observe(failed, 1, job(succeeded=1, cond="Complete"), [], T2).status) == {}


def test_validation_failed_names_the_field_once():
    msgs = ["spec.tuning.searchSpace.max_depth: low (12) must be below high (3)"]
    out = st.validation_failed({}, 1, msgs, T0)
    s1 = apply({}, out)
    failed = get_condition(s1["conditions"], "Failed")
    assert s1["state"] == "Failed" and failed["reason"] == "ValidationFailed" and failed["message"] == msgs[0]
    assert out.failure["type"] == "ValidationFailed" and out.transitions[0].type == "Warning"
    again = st.validation_failed(s1, 1, msgs, T1)
    assert st.status_patch(s1, again.status) == {} and again.transitions == [] and again.failure is None


def test_suspend_and_resume():
    running = apply({}, st.observe({}, 1, job(active=1), [], T0))
    out = st.suspended(running, 2, T1)
    s = apply(running, out)
    assert s["state"] == "Suspended" and get_condition(s["conditions"], "Running")["status"] == "False"
    assert [t.reason for t in out.transitions] == ["Suspended"]
    assert st.suspended(s, 2, T2).transitions == []
    out = st.created(s, 3, T2, job_name="rw-train")
    resumed = apply(s, out)
    assert resumed["state"] == "Pending" and get_condition(resumed["conditions"], "Suspended")["reason"] == "Resumed"
    assert "Resumed" in [t.reason for t in out.transitions]
    assert resumed["startTime"] == running["startTime"]  # the run started once


def test_kueue_queued_and_waiting_for_ray():
    out = st.observe({}, 1, job(suspend=True), [], T0)
    assert out.state == "Pending" and get_condition(out.status["conditions"], "Running")["reason"] == "Queued"
    out = st.created({}, 1, T0, job_name=None, ray_cluster_name="rw-ray", waiting_for_ray=True)
    assert out.status["rayClusterName"] == "rw-ray" and "jobName" not in out.status
    assert get_condition(out.status["conditions"], "Running")["reason"] == "WaitingForRayCluster"
    assert derive_state(out.status["conditions"]) == "Pending"


def test_parse_termination_ignores_other_containers_and_garbage():
    assert st.parse_termination([]) is None
    other = {"status": {"containerStatuses": [{"name": "sidecar", "state": {"terminated": {"exitCode": 0}}}]}}
    assert st.parse_termination([other]) is None
    term = st.parse_termination([pod(1, "{not json")])
    assert term.result is None and term.exit_code == 1 and term.message == "{not json"


def test_job_deleted_before_it_finished_fails_instead_of_retraining():
    running = apply({}, st.observe({}, 1, job(active=1), [], T0))
    out = st.job_lost(running, 1, "rw-train", T1)
    s = apply(running, out)
    failed = get_condition(s["conditions"], "Failed")
    assert s["state"] == "Failed" and failed["reason"] == "JobDeleted" and "rw-train" in failed["message"]
    assert out.failure["type"] == "JobDeleted" and out.transitions[0].type == "Warning"


def test_a_finished_run_survives_its_jobs_deletion_when_the_trainer_reported():
    """TTL 0, or the Job deleted while the operator was down: the trainer's own report is the result."""
    running = apply({}, st.observe({}, 1, job(active=1), [], T0))
    reported = {**running, **{k: RESULT_OK[k] for k in ("metrics", "mlflow", "promotion")}}
    reported["metrics"] = {"top1_accuracy": 0.58}
    out = st.job_lost(reported, 1, "rw-train", T1)
    s = apply(reported, out)
    assert s["state"] == "Succeeded" and out.failure is None and out.promoted is True
    assert get_condition(s["conditions"], "ModelRegistered")["message"].startswith("version 3")
    # figures without a promotion decision are not a finished run (MLflow failed after training)
    partial = {**running, "metrics": {"top1_accuracy": 0.58}}
    assert apply(partial, st.job_lost(partial, 1, "rw-train", T1))["state"] == "Failed"


def test_a_refused_child_fails_the_run_once_with_the_servers_words():
    out = st.child_refused({}, 2, "422: Job.batch \"rw-train\" is invalid: spec.template...", T1)
    s = apply({}, out)
    failed = get_condition(s["conditions"], "Failed")
    assert s["state"] == "Failed" and failed["reason"] == "ChildRefused" and "is invalid" in failed["message"]
    assert out.failure["type"] == "ChildRefused"
    assert st.observe(s, 2, job(active=1), [], T2).status == st._base(s, None)  # sticky afterwards


def pending_pod(reason: str, message: str = "", created: str = T0, scheduled: bool = True) -> dict:
    status: dict = {"phase": "Pending", "conditions": []}
    if scheduled:
        status["containerStatuses"] = [{"name": "trainer", "state": {"waiting": {"reason": reason, "message": message}}}]
    else:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
    return {"metadata": {"creationTimestamp": created}, "status": status}


def test_a_waiting_pod_is_said_then_fails_the_run_naming_the_field():
    running = apply({}, st.observe({}, 1, job(active=1), [], T0))
    waiting = st.pod_waiting(job(active=1), [pending_pod("CreateContainerConfigError", 'secret "mlflow-creds" not found')])
    assert waiting.reason == "CreateContainerConfigError" and waiting.since == T0
    early = st.pod_not_starting(running, st.observe(running, 1, job(active=1), [], T1), waiting, 60, 600, 1, T1)
    s = apply(running, early)
    said = get_condition(s["conditions"], "Running")
    assert s["state"] == "Pending" and said["status"] == "False" and said["reason"] == "PodWaiting"
    assert 'secret "mlflow-creds" not found' in said["message"] and "spec.env" in said["message"]
    assert [t.reason for t in early.transitions] == ["PodWaiting"]  # one Warning, no "Running" Event
    created = st.created(s, 1, T2, job_name="rw-train")  # the next pass, as reconcile makes it
    assert created.transitions == []  # no second "Created" Event while the pod waits
    again = st.pod_not_starting(s, st.observe(created.status, 1, job(active=1), [], T2), waiting, 120, 600, 1, T2)
    assert again.transitions == []  # said once per reason
    late = st.pod_not_starting(s, st.observe(s, 1, job(active=1), [], T2), waiting, 600, 600, 1, T2)
    failed = get_condition(apply(s, late)["conditions"], "Failed")
    assert failed["reason"] == "PodNotStarting" and "spec.env" in failed["message"] and late.failure


def test_unschedulable_and_no_pod_at_all_are_recognised():
    unschedulable = st.pod_waiting(job(active=1), [pending_pod("", "0/1 nodes: Insufficient cpu", scheduled=False)])
    assert unschedulable.reason == "Unschedulable" and "Insufficient cpu" in unschedulable.message
    assert "spec.resources" in st.POD_WAITING_FIXES[unschedulable.reason]
    empty = {**job(), "metadata": {"name": "rw-train", "creationTimestamp": T0}}
    nothing = st.pod_waiting(empty, [])
    assert nothing.reason == "NoPodCreated" and "rw-train" in nothing.message and nothing.since == T0
    running = {"metadata": {}, "status": {"phase": "Running"}}
    assert st.pod_waiting(job(active=1), [running]) is None
    config_error = pending_pod("CreateContainerConfigError", "secret not found")
    config_error["status"]["phase"] = "Running"  # some report Running before the container starts
    assert st.pod_waiting(job(active=1), [config_error]).reason == "CreateContainerConfigError"


def test_a_raycluster_that_never_gets_ready_fails_the_run():
    out = st.ray_not_ready({}, 1, {"metadata": {"name": "rw-ray"}, "status": {"state": "suspended"}}, 900, T1)
    failed = get_condition(apply({}, out)["conditions"], "Failed")
    assert failed["reason"] == "RayClusterNotReady" and "rw-ray" in failed["message"] and "900s" in failed["message"]


def test_status_patch_removes_keys_the_operator_dropped():
    current = {"state": "Failed", "completionTime": T0, "progress": {"percent": 5}}
    patch = st.status_patch(current, {"state": "Pending"})
    assert patch == {"state": "Pending", "completionTime": None}  # progress belongs to the trainer


def test_oom_killed_says_so_and_how_to_fix_it():
    oom = pod(137, "")
    oom["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"
    out = st.observe({"state": "Running"}, 1, job(failed=4, cond="Failed", reason="BackoffLimitExceeded"), [oom], T1)
    failed = get_condition(out.status["conditions"], "Failed")
    assert "memory limit" in failed["message"] and "spec.resources.limits.memory" in failed["message"]
    assert out.failure["type"] == "OOMKilled"


def test_a_termination_message_with_one_bad_field_keeps_the_others() -> None:
    """TrainerResult.salvage: a metric of the wrong type or a clipped block never loses the version."""
    from pitwall_api.result import TrainerResult

    message = {"ok": True, "exitCode": 0, "metrics": {"top1_accuracy": 0.5, "bad": "x"},
               "mlflow": {"modelVersion": "7", "modelUri": "models:/m/7"}, "promotion": {"promoted": "perhaps"}}
    salvaged = TrainerResult.salvage(message)
    assert salvaged is not None and salvaged.metrics == {"top1_accuracy": 0.5}
    assert salvaged.mlflow.model_version == "7" and salvaged.promotion is None
    assert TrainerResult.salvage({"computedAt": "2026-01-01"}) is None  # the monitor's signals, not a result


def test_the_trainers_payload_is_what_the_operator_reads() -> None:
    """One model both ways: what result_payload writes, Termination.trainer parses to the same fields."""
    from types import SimpleNamespace

    from pitwall_trainer.cli.run import result_payload

    decision = SimpleNamespace(regression=True, new_value=0.4, previous_value=0.5, metric="top1_accuracy",
                               promoted=False, alias="champion", new_version="8", previous_version="7",
                               reason="top1_accuracy 0.4 < 0.5")
    record = SimpleNamespace(run_id="r1", experiment_id="1", model_version=8, model_uri="models:/m/8", run_url=None)
    trained = SimpleNamespace(metrics={"top1_accuracy": 0.4}, baselines={"pole_sitter.top1_accuracy": 0.5})
    payload = result_payload(trained, record, decision, {"max_depth": 3})
    parsed = st.Termination(0, "Completed", json.dumps(payload), payload).trainer
    assert parsed.regression.delta == pytest.approx(-0.1) and parsed.promotion.previous_version == "7"
    outcome = st.succeeded({}, {"state": "Running", "jobName": "r-train"}, st.Termination(0, "Completed", "", payload),
                           1, "2026-01-01T00:00:00Z")
    assert outcome.status["mlflow"]["modelVersion"] == "8" and outcome.status["bestParams"] == {"max_depth": 3}
    assert outcome.regression["metric"] == "top1_accuracy" and outcome.state == "Succeeded"
