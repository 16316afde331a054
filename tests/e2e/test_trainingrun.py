"""TrainingRun end to end: kubectl -> the real operator -> Jobs run by the cluster -> the real
trainer -> a real MLflow server -> status, Events and Slack posts back (issue 6, item 6)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    NAMESPACE,
    REPO,
    apply,
    children,
    condition,
    delete_run,
    events_for,
    example_run,
    get_run,
    wait_state,
)
from tests.plugins.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SUFFIX = uuid.uuid4().hex[:5]
MODEL_NAME = f"e2e-race-winner-{SUFFIX}"  # own registered model: runs of other sessions do not interfere


def name(base: str) -> str:
    return f"{base}-{SUFFIX}"


def champion_version(mlflow_uri: str, model: str, alias: str = "champion") -> str | None:
    query = urllib.parse.urlencode({"name": model, "alias": alias})
    try:
        with urllib.request.urlopen(f"{mlflow_uri}/api/2.0/mlflow/registered-models/alias?{query}", timeout=10) as r:
            return json.loads(r.read())["model_version"]["version"]
    except OSError:
        return None


def job_exists(cluster, run: str) -> list[dict[str, Any]]:
    return children(cluster, "jobs", run)


@pytest.fixture(scope="module")
def first_run(cluster, operator, slack) -> dict[str, Any]:
    """examples/trainingrun.yaml applied with kubectl, waited to the end."""
    doc = example_run(name("example"))
    doc["spec"]["mlflow"]["registeredModelName"] = MODEL_NAME
    apply(cluster, doc)
    return wait_state(cluster, doc["metadata"]["name"], "Succeeded", "Failed")


def test_example_succeeds_with_metrics_mlflow_and_promotion(cluster, operator, first_run, e2e_env):
    status = first_run["status"]
    assert status["state"] == "Succeeded", status
    run = first_run["metadata"]["name"]
    assert status["observedGeneration"] == first_run["metadata"]["generation"]
    assert status["startTime"] <= status["completionTime"]
    assert status["jobName"] == f"{run}-train"
    assert status["metrics"] and all(isinstance(v, int | float) for v in status["metrics"].values())
    assert status["baselines"]
    mlflow = status["mlflow"]
    assert mlflow["runId"] and mlflow["modelVersion"]
    assert status["promotion"]["promoted"] is True  # the first version of a new model becomes champion
    assert condition(first_run, "ModelRegistered")["status"] == "True"
    assert condition(first_run, "Promoted")["status"] == "True"
    assert condition(first_run, "Running")["status"] == "False"
    assert champion_version(e2e_env["PITWALL_DEFAULT_MLFLOW_URI"], MODEL_NAME) == str(mlflow["modelVersion"])
    reasons = {e["reason"] for e in events_for(cluster, run)}
    assert {"Created", "Succeeded", "ModelRegistered", "Promoted"} <= reasons, reasons
    (job,) = job_exists(cluster, run)
    assert job["metadata"]["ownerReferences"][0]["uid"] == first_run["metadata"]["uid"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["run", "--spec", "/etc/pitwall/spec.yaml"]


def scraped(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text format -> {(name, {(label, value)}): value}: label order does not matter."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name, _, labels = key.partition("{")
            out[(name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels)))] = float(value)
    return out


def test_operator_metrics(operator, first_run):
    text = operator.metrics()
    series = scraped(text)

    def value(name: str, **labels: str) -> float:
        assert (name, frozenset(labels.items())) in series, f"no {name}{labels} in:\n{text}"
        return series[(name, frozenset(labels.items()))]

    model = first_run["spec"]["model"]
    assert value("pitwall_trainingruns", state="Succeeded", model=model) >= 1
    assert value("pitwall_creation_to_job_seconds_count") >= 1
    assert value("pitwall_promotions_total", model=model) >= 1
    assert value("pitwall_reconcile_duration_seconds_count", handler="create") >= 1
    # issue 14: the run's end is observed once, from its status transition
    assert value("pitwall_run_duration_seconds_count", model=model, outcome="Succeeded") >= 1
    assert value("pitwall_queue_wait_seconds_count", model=model) >= 1
    # and the trainer reported its phases and resources, which the operator kept
    progress, resources = first_run["status"]["progress"], first_run["status"].get("resources") or {}
    assert progress["phase"] == "Done" and progress["percent"] == 100 and progress.get("metricName")
    assert resources.get("peakCpuCores", 0) > 0 and resources.get("peakMemoryBytes", 0) > 0


def test_second_run_that_does_not_beat_the_champion_is_not_promoted(cluster, operator, first_run, slack, e2e_env):
    """IfBetter with a margin no model can reach: the champion stays, the decision is recorded."""
    doc = example_run(name("second"))
    doc["spec"]["mlflow"]["registeredModelName"] = MODEL_NAME
    doc["spec"]["promotion"]["minImprovement"] = 0.9
    apply(cluster, doc)
    run = wait_state(cluster, doc["metadata"]["name"], "Succeeded", "Failed")
    assert run["status"]["state"] == "Succeeded", run["status"]
    assert run["status"]["promotion"]["promoted"] is False
    promoted = condition(run, "Promoted")
    assert promoted["status"] == "False" and promoted["reason"] == "NotPromoted"
    champion = first_run["status"]["mlflow"]["modelVersion"]
    assert champion_version(e2e_env["PITWALL_DEFAULT_MLFLOW_URI"], MODEL_NAME) == str(champion)
    assert str(run["status"]["mlflow"]["modelVersion"]) != str(champion)
    if run["status"]["promotion"].get("regression"):  # worse than the champion: alert + Warning Event
        wait_for(lambda: slack.about("Performance regression detected"), timeout=30, what="regression alert")
        assert any(e["reason"] == "Regression" and e["type"] == "Warning"
                   for e in events_for(cluster, doc["metadata"]["name"]))


def test_invalid_resource_fails_validation_naming_the_field(cluster, operator):
    doc = example_run(name("invalid"))
    doc["spec"]["tuning"] = {"engine": "optuna", "numSamples": 4,
                             "searchSpace": {"max_depth": {"type": "int", "low": 12, "high": 3}}}
    args = ["apply", "-f", "-"]
    result = cluster.kubectl(*args, input=yaml.safe_dump(doc), check=False)
    if result.returncode != 0:  # a real API server's CEL rules refuse it at apply time: also fine
        assert "low must be below high" in result.stderr, result.stderr
        return
    run = wait_state(cluster, doc["metadata"]["name"], "Failed", timeout=60)
    failed = condition(run, "Failed")
    assert failed["reason"] == "ValidationFailed"
    assert "spec.tuning.searchSpace.max_depth: low (12) must be below high (3)" in failed["message"]
    first_transition = failed["lastTransitionTime"]
    time.sleep(2)  # kopf's own bookkeeping write after the handler
    settled = get_run(cluster, doc["metadata"]["name"])["metadata"]["resourceVersion"]
    time.sleep(3)  # a retry loop would have written again by now (timer: 1 s, kopf backoff: seconds)
    again = get_run(cluster, doc["metadata"]["name"])
    assert condition(again, "Failed")["lastTransitionTime"] == first_transition
    assert again["metadata"]["resourceVersion"] == settled
    assert operator.logs().count(f"[default/{doc['metadata']['name']}] Handler 'on_create'") == 1
    assert job_exists(cluster, doc["metadata"]["name"]) == []
    assert children(cluster, "configmaps", doc["metadata"]["name"]) == []
    assert any(e["reason"] == "ValidationFailed" and e["type"] == "Warning"
               for e in events_for(cluster, doc["metadata"]["name"]))


def test_bad_data_fails_fast_with_trainer_message_and_slack_alert(cluster, operator, slack, e2e_env):
    doc = example_run(name("baddata"))
    claim = e2e_env["PITWALL_DEFAULT_DATA_CLAIM"]
    doc["spec"]["data"]["source"] = {"pvc": {"claimName": claim, "path": "no-such-folder"}}
    apply(cluster, doc)
    run = wait_state(cluster, doc["metadata"]["name"], "Failed", "Succeeded")
    failed = condition(run, "Failed")
    assert run["status"]["state"] == "Failed" and failed["reason"] == "TrainerFailed", run["status"]
    assert "no-such-folder" in failed["message"], failed["message"]
    assert run["status"].get("attempts", 1) == 1  # exit code 2: podFailurePolicy fails the Job, no retry
    job_id = f"{doc['metadata']['name']}-train"
    posts = wait_for(lambda: slack.about(f"Training job `{job_id}` failed"), timeout=30, what="Slack failure post")
    fields = {f["title"]: f["value"] for f in posts[0]["attachments"][0]["fields"]}
    assert fields["Job ID"] == job_id and fields["Error Type"]
    assert "no-such-folder" in posts[0]["attachments"][0]["text"]


def test_an_alert_that_cannot_be_sent_is_said_on_the_run(cluster, operator, e2e_env):
    doc = example_run(name("noslack"))
    claim = e2e_env["PITWALL_DEFAULT_DATA_CLAIM"]
    doc["spec"]["data"]["source"] = {"pvc": {"claimName": claim, "path": "no-such-folder"}}
    doc["spec"]["notifications"] = {"slack": {"webhookSecretRef": {"name": "no-such-secret", "key": "url"}}}
    apply(cluster, doc)
    run = wait_state(cluster, doc["metadata"]["name"], "Failed", "Succeeded")
    assert run["status"]["state"] == "Failed"
    warnings = wait_for(lambda: [e for e in events_for(cluster, doc["metadata"]["name"])
                                 if e["reason"] == "AlertNotSent"], timeout=30, what="the AlertNotSent Event")
    assert "no-such-secret" in warnings[0]["message"] and warnings[0]["type"] == "Warning"


def test_mlflow_unreachable_fails_after_retries_with_the_trainers_message(cluster, operator):
    doc = example_run(name("nomlflow"))
    doc["spec"]["mlflow"]["trackingUri"] = "http://127.0.0.1:9"  # discard port: nothing listens
    doc["spec"]["runPolicy"] = {"backoffLimit": 1}
    apply(cluster, doc)
    run = wait_state(cluster, doc["metadata"]["name"], "Failed", "Succeeded")
    failed = condition(run, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded", run["status"]
    assert "mlflow" in failed["message"].lower() and "2 attempt" in failed["message"]
    assert not run["status"].get("mlflow", {}).get("modelVersion")  # nothing half-written


def test_operator_killed_mid_run_resumes_with_one_job(cluster, operator):
    doc = example_run(name("restart"))
    run_name = doc["metadata"]["name"]
    apply(cluster, doc)
    (job,) = wait_for(lambda: job_exists(cluster, run_name), timeout=120, what="the Job")
    operator.stop(signal.SIGKILL)  # a crash: no graceful shutdown
    operator.start()
    run = wait_state(cluster, run_name, "Succeeded", "Failed")
    assert run["status"]["state"] == "Succeeded", run["status"]
    (again,) = job_exists(cluster, run_name)
    assert again["metadata"]["uid"] == job["metadata"]["uid"]  # the same Job, never recreated
    assert run["status"]["mlflow"]["modelVersion"] and run["status"]["metrics"]
    assert [e["reason"] for e in events_for(cluster, run_name)].count("Succeeded") == 1


def test_invalid_spec_update_mid_run_keeps_the_running_job_and_its_result(cluster, operator):
    doc = example_run(name("badupdate"))
    run_name = doc["metadata"]["name"]
    apply(cluster, doc)
    (job,) = wait_for(lambda: job_exists(cluster, run_name), timeout=120, what="the Job")
    bad = '{"spec":{"evaluation":{"holdoutRaces":3,"holdoutSeason":2024}}}'  # a cross-field (CEL) rule
    patched = cluster.kubectl("patch", "trainingrun", run_name, "-n", NAMESPACE, "--type=merge", "-p", bad,
                              check=False)
    run = wait_state(cluster, run_name, "Succeeded", "Failed")
    assert run["status"]["state"] == "Succeeded", run["status"]  # the result is not thrown away
    assert run["status"]["mlflow"]["modelVersion"]
    (again,) = job_exists(cluster, run_name)
    assert again["metadata"]["uid"] == job["metadata"]["uid"]
    if patched.returncode == 0:  # a server without the CEL rule: the operator says it ignored the update
        warnings = [e for e in events_for(cluster, run_name) if e["reason"] == "InvalidSpecUpdate"]
        assert warnings and "spec update ignored" in warnings[0]["message"]
        assert "spec.evaluation" in warnings[0]["message"]


def test_suspend_stops_children_and_resume_starts_again(cluster, operator):
    doc = example_run(name("suspend"))
    run_name = doc["metadata"]["name"]
    apply(cluster, doc)
    wait_for(lambda: job_exists(cluster, run_name), timeout=120, what="the Job")
    cluster.kubectl("patch", "trainingrun", run_name, "-n", NAMESPACE, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    run = wait_state(cluster, run_name, "Suspended", timeout=60)
    assert condition(run, "Suspended")["status"] == "True"
    wait_for(lambda: job_exists(cluster, run_name) == [], timeout=60, what="the Job to be deleted")
    wait_for(lambda: children(cluster, "pods", run_name) == [], timeout=60, what="the pods to be gone")
    cluster.kubectl("patch", "trainingrun", run_name, "-n", NAMESPACE, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    run = wait_state(cluster, run_name, "Succeeded", "Failed")
    assert run["status"]["state"] == "Succeeded", run["status"]
    assert condition(run, "Suspended")["status"] == "False" and condition(run, "Suspended")["reason"] == "Resumed"
    reasons = [e["reason"] for e in events_for(cluster, run_name)]
    assert "Suspended" in reasons and "Resumed" in reasons


def test_delete_mid_run_removes_children(cluster, operator):
    doc = example_run(name("delete"))
    run_name = doc["metadata"]["name"]
    apply(cluster, doc)
    wait_for(lambda: job_exists(cluster, run_name), timeout=120, what="the Job")
    delete_run(cluster, run_name)
    wait_for(lambda: get_run(cluster, run_name) is None, timeout=60, what="the TrainingRun to go")
    for kind in ("jobs", "pods", "configmaps"):
        wait_for(lambda kind=kind: children(cluster, kind, run_name) == [], timeout=60, what=f"{kind} to go")


def _tune_available() -> str | None:
    result = subprocess.run([str(REPO / ".venv" / "bin" / "pitwall-train"), "tune", "--help"],
                            capture_output=True, text=True)
    return None if result.returncode == 0 else "`pitwall-train tune` does not exist yet (tuning issue not landed)"


def test_tuned_run_on_a_raycluster(cluster, operator):
    reason = _tune_available()
    if reason:
        pytest.skip(reason)
    doc = yaml.safe_load((REPO / "examples" / "trainingrun-tuned.yaml").read_text())
    doc["metadata"]["name"] = name("tuned")
    doc["metadata"]["namespace"] = NAMESPACE
    spec = doc["spec"]
    spec["data"].pop("source", None)
    (spec.get("mlflow") or {}).pop("trackingUri", None)
    spec.pop("resources", None)
    spec["tuning"]["engine"] = "ray"
    spec["tuning"]["numSamples"] = 4
    spec["tuning"]["rayCluster"] = {"workers": 1}
    run_name = doc["metadata"]["name"]
    apply(cluster, doc)
    (rc,) = wait_for(lambda: children(cluster, "rayclusters", run_name), timeout=120, what="the RayCluster")
    assert rc["spec"]["rayVersion"] == "2.60.0"
    (job,) = wait_for(lambda: job_exists(cluster, run_name), timeout=180, what="the driver Job")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAY_ADDRESS"]
    run = wait_state(cluster, run_name, "Succeeded", "Failed")
    assert run["status"]["state"] == "Succeeded", run["status"]
    assert run["status"]["rayClusterName"] == f"{run_name}-ray"
    assert set(run["status"]["bestParams"]) <= set(spec["tuning"]["searchSpace"]) | {"n_estimators"}
    wait_for(lambda: children(cluster, "rayclusters", run_name) == [], timeout=60, what="RayCluster deleted after the run")


def test_optuna_tuned_run_trains_on_the_best_parameters(cluster, operator):
    reason = _tune_available()
    if reason:
        pytest.skip(reason)
    doc = example_run(name("optuna"))
    space = {"max_depth": {"type": "int", "low": 2, "high": 4},
             "learning_rate": {"type": "logfloat", "low": 0.01, "high": 0.3},
             "n_estimators": {"type": "int", "low": 20, "high": 60}}
    doc["spec"]["algorithm"] = "xgboost"  # its search space is XGBoost's
    doc["spec"]["tuning"] = {"engine": "optuna", "numSamples": 3, "searchSpace": space}
    doc["spec"]["evaluation"] = {"holdoutRaces": 4, "walkForwardFolds": 2}
    doc["spec"]["promotion"] = {"policy": "Never"}
    apply(cluster, doc)
    run = wait_state(cluster, doc["metadata"]["name"], "Succeeded", "Failed")
    status = run["status"]
    assert status["state"] == "Succeeded", status
    best = status["bestParams"]
    assert 2 <= best["max_depth"] <= 4 and 0.01 <= best["learning_rate"] <= 0.3
    assert not status.get("rayClusterName")  # Optuna tunes inside the training pod
    assert status["mlflow"]["modelVersion"] and status["promotion"]["promoted"] is False
