"""RetrainPolicy end to end (issue 8, item 6): kubectl -> the real operator -> TrainingRuns and monitoring
Jobs run by the cluster -> the real trainer and `pitwall-train monitor` -> a real MLflow -> status,
Events and Slack posts back.

Each test has its own policy and registered model, so tests do not see each other's champions.
Policies are suspended as soon as their point is made: a `* * * * *` schedule would otherwise keep
training on the two shared cores.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import NAMESPACE, RUN_TIMEOUT, apply, events_for, get_run, wait_state
from tests.plugins.cluster import wait_for
from tests.unit.test_monitor import truncate_data

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SUFFIX = uuid.uuid4().hex[:5]
LAST_RACE = "2024-12-08"  # Abu Dhabi 2024, the newest race in the shared data
BEFORE_LAST = "2024-12-07"
POLICY_LABEL = "pitwall.io/retrain-policy"


def name(base: str) -> str:
    return f"{base}-{SUFFIX}"


def template(model_name: str, claim: str | None = None, **extra: Any) -> dict[str, Any]:
    """A small race_winner run: 2024 only, the last race held out, Slack on failure and regression."""
    spec: dict[str, Any] = {
        "model": "race_winner", "algorithm": "xgboost",
        "data": {"seasons": [2024]},
        "evaluation": {"holdoutRaces": 1},
        "mlflow": {"registeredModelName": model_name},
        "promotion": {"policy": "IfBetter", "metric": "top1_accuracy"},
        "notifications": {"slack": {"webhookSecretRef": {"name": "pitwall-slack", "key": "webhook-url"}},
                          "events": ["Failed", "Regression"]},
    }
    if claim:
        spec["data"]["source"] = {"pvc": {"claimName": claim}}
    spec.update(extra)
    return {"metadata": {"labels": {"app.kubernetes.io/part-of": "pitwall"}}, "spec": spec}


def policy(policy_name: str, tmpl: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy",
            "metadata": {"name": policy_name, "namespace": NAMESPACE}, "spec": {"template": tmpl, **spec}}


def get_policy(cluster, policy_name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", "retrainpolicy", policy_name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def policy_runs(cluster, policy_name: str) -> list[dict[str, Any]]:
    items = cluster.kubectl_json("get", "trainingruns", "-n", NAMESPACE, "-l", f"{POLICY_LABEL}={policy_name}")["items"]
    return sorted(items, key=lambda r: r["metadata"]["creationTimestamp"] + r["metadata"]["name"])


def suspend(cluster, policy_name: str) -> None:
    cluster.kubectl("patch", "retrainpolicy", policy_name, "-n", NAMESPACE, "--type", "merge",
                    "-p", json.dumps({"spec": {"suspend": True}}))


def delete_policy(cluster, policy_name: str) -> None:
    cluster.kubectl("delete", "retrainpolicy", policy_name, "-n", NAMESPACE, "--wait=false", check=False)


def reasons_of_events(cluster, policy_name: str) -> list[str]:
    return [e["reason"] for e in events_for(cluster, policy_name)]


def wait_policy(cluster, policy_name: str, check, what: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        doc = get_policy(cluster, policy_name)
        return doc if doc and check(doc.get("status") or {}) else None

    try:
        return wait_for(probe, timeout=timeout, interval=1, what=f"RetrainPolicy {policy_name}: {what}")
    except AssertionError as exc:
        doc = get_policy(cluster, policy_name) or {}
        raise AssertionError(f"{exc}; status now: {json.dumps(doc.get('status'), indent=1)[:3000]}; "
                             f"events: {reasons_of_events(cluster, policy_name)}") from None


def claim_dir(cluster, claim: str) -> Path:
    """The host folder of a claim the sandbox's provisioner binds (a hostPath PersistentVolume)."""
    cluster.require_sandbox("writing into a claim's folder")
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": NAMESPACE},
           "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}
    apply(cluster, pvc)
    return cluster.claim_folder(NAMESPACE, claim)


@pytest.fixture(scope="module")
def scheduled(cluster, rp_operator, slack) -> dict[str, Any]:
    """A `* * * * *` policy: its first tick (within a minute) creates a run, trained to the end."""
    model = name("e2e-rp-sched")
    rp = name("rp-sched")
    apply(cluster, policy(rp, template(model), schedule="* * * * *", timeZone="Europe/London",
                          concurrencyPolicy="Forbid", checkInterval="10s"))
    runs = wait_for(lambda: policy_runs(cluster, rp), timeout=90, interval=1, what=f"a run of {rp}")
    suspend(cluster, rp)  # one run is the point; no further ticks
    run = wait_state(cluster, runs[0]["metadata"]["name"], "Succeeded", "Failed")
    return {"policy": rp, "model": model, "run": run}


def test_schedule_creates_a_run_that_trains_and_promotes(cluster, scheduled) -> None:
    run, rp = scheduled["run"], scheduled["policy"]
    meta, status = run["metadata"], run["status"]
    assert status["state"] == "Succeeded", status
    assert meta["name"].startswith(f"{rp}-") and meta["name"].endswith("-sched")
    assert meta["labels"][POLICY_LABEL] == rp and meta["labels"]["pitwall.io/trigger"] == "Schedule"
    assert meta["ownerReferences"][0]["kind"] == "RetrainPolicy" and meta["ownerReferences"][0]["name"] == rp
    assert status["promotion"]["promoted"] is True  # the first version of a new model becomes champion
    version = status["mlflow"]["modelVersion"]
    doc = wait_policy(cluster, rp, lambda s: (s.get("champion") or {}).get("version") == version, "champion recorded")
    st = doc["status"]
    assert st["lastSuccessfulRun"] == meta["name"]
    assert st["lastTriggerReasons"] == ["Schedule"] and st["lastTriggerTime"]
    assert st["promotionHistory"][0]["runName"] == meta["name"] and st["promotionHistory"][0]["promoted"] is True
    assert st["champion"]["value"] == status["metrics"]["top1_accuracy"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Suspended"] == "True"
    assert {"RunCreated", "Promoted"} <= set(reasons_of_events(cluster, rp))


def test_a_worse_run_does_not_promote_and_alerts_once(cluster, scheduled, slack) -> None:
    """Same registered model, a harder holdout: its accuracy falls below the champion's, which stays."""
    champion_value = scheduled["run"]["status"]["metrics"]["top1_accuracy"]
    assert champion_value == 1.0, "precondition: the champion predicted its single holdout race"
    rp = name("rp-worse")
    apply(cluster, policy(rp, template(scheduled["model"], evaluation={"holdoutRaces": 10}), schedule="* * * * *",
                          checkInterval="10s"))
    runs = wait_for(lambda: policy_runs(cluster, rp), timeout=90, interval=1, what=f"a run of {rp}")
    suspend(cluster, rp)
    run = wait_state(cluster, runs[0]["metadata"]["name"], "Succeeded", "Failed")
    status = run["status"]
    assert status["state"] == "Succeeded", status
    assert status["metrics"]["top1_accuracy"] < champion_value
    assert status["promotion"]["promoted"] is False and status["promotion"]["regression"] is True
    doc = wait_policy(cluster, rp, lambda s: s.get("promotionHistory"), "the outcome recorded")
    record = doc["status"]["promotionHistory"][0]
    assert record["promoted"] is False and record["value"] == status["metrics"]["top1_accuracy"]
    champion = get_policy(cluster, scheduled["policy"])["status"]["champion"]
    assert champion["version"] == scheduled["run"]["status"]["mlflow"]["modelVersion"]  # the champion stays
    assert "Regression" in reasons_of_events(cluster, rp)
    wait_for(lambda: slack.about(run["metadata"]["name"]), timeout=30, what="the regression alert")
    posts = [p for p in slack.about(run["metadata"]["name"]) if "regression" in p["text"].lower()]
    assert len(posts) == 1, posts  # the run alerts; the policy only posts an Event
    fields = {f["title"]: f["value"] for f in posts[0]["attachments"][0]["fields"]}
    assert fields["Previous Accuracy"] == "100.00%" and fields["Delta"].startswith("-")


def test_a_new_race_in_the_data_fires_after_new_race_and_new_data(cluster, rp_operator) -> None:
    shared = Path(cluster.sandbox.data_dir) if cluster.is_sandbox else None
    if shared is None:
        pytest.skip("needs a claim folder the test can write")
    claim = name("rp-data")
    folder = truncate_data(shared, claim_dir(cluster, claim), BEFORE_LAST)
    rp = name("rp-data")
    model = name("e2e-rp-data")
    apply(cluster, policy(rp, template(model, claim), checkInterval="10s",
                          triggers={"afterNewRace": {}, "newData": {"minSamples": 20}}))
    # no champion yet: everything is new, the first run trains the first champion
    first = wait_for(lambda: policy_runs(cluster, rp), timeout=180, interval=1, what=f"a first run of {rp}")[0]
    first = wait_state(cluster, first["metadata"]["name"], "Succeeded", "Failed")
    assert first["status"]["state"] == "Succeeded" and first["status"]["promotion"]["promoted"] is True
    version = first["status"]["mlflow"]["modelVersion"]
    quiet = wait_policy(cluster, rp, lambda s: (s.get("signals") or {}).get("championVersion") == version,
                        "signals against the new champion")
    signals = quiet["status"]["signals"]
    assert signals["latestRaceDate"] == "2024-12-01" == signals["championTrainEndDate"]
    assert signals["newRaces"] == 0 and signals["newSamples"] == 0
    assert len(policy_runs(cluster, rp)) == 1  # nothing new: nothing fires

    for csv in shared.glob("*.csv"):  # Abu Dhabi arrives, as a data refresh would bring it
        shutil.copyfile(csv, folder / csv.name)
    second = wait_for(lambda: policy_runs(cluster, rp)[1:], timeout=180, interval=1, what="a run for the new race")[0]
    suspend(cluster, rp)
    assert second["metadata"]["labels"]["pitwall.io/trigger"] == "AfterNewRace"
    assert second["metadata"]["annotations"]["pitwall.io/trigger-reasons"] == "AfterNewRace,NewData"
    assert second["metadata"]["name"].endswith("-race")
    doc = get_policy(cluster, rp)
    assert doc["status"]["signals"]["newRaces"] == 1 and doc["status"]["signals"]["newSamples"] == 20
    assert doc["status"]["signals"]["latestRaceDate"] == LAST_RACE
    assert doc["status"]["lastTriggerReasons"] == ["AfterNewRace", "NewData"]
    wait_state(cluster, second["metadata"]["name"], "Succeeded", "Failed")
    delete_policy(cluster, rp)


def test_forbid_prevents_overlap_and_deleting_the_policy_removes_its_runs(cluster, rp_operator) -> None:
    """A run that never ends (its template is suspended) holds the next tick back; deletion cascades."""
    rp = name("rp-forbid")
    apply(cluster, policy(rp, template(name("e2e-rp-forbid"), suspend=True), schedule="* * * * *",
                          concurrencyPolicy="Forbid"))
    bystander = {"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun",
                 "metadata": {"name": name("from-git"), "namespace": NAMESPACE, "labels": {POLICY_LABEL: rp}},
                 "spec": {**template(name("e2e-rp-forbid"))["spec"], "suspend": True}}
    apply(cluster, bystander)  # carries the label but not the owner reference: never the policy's
    wait_policy(cluster, rp, lambda s: s.get("activeRuns"), "an active run", timeout=90)
    wait_for(lambda: "RunSkipped" in reasons_of_events(cluster, rp), timeout=90, interval=1, what="a skipped tick")
    skipped = [e for e in events_for(cluster, rp) if e["reason"] == "RunSkipped"]
    assert "Forbid" in skipped[0]["message"]
    runs = [r["metadata"]["name"] for r in policy_runs(cluster, rp)]
    assert len(runs) == 2 and name("from-git") in runs  # one of its own, one bystander
    delete_policy(cluster, rp)
    wait_for(lambda: [r["metadata"]["name"] for r in policy_runs(cluster, rp)] == [name("from-git")],
             timeout=60, interval=1, what="the policy's runs garbage-collected")
    assert get_run(cluster, name("from-git")) is not None
    cluster.kubectl("delete", "trainingrun", name("from-git"), "-n", NAMESPACE, "--wait=false", check=False)


def test_history_limits_prune_old_runs(cluster, rp_operator) -> None:
    """Runs on an empty claim fail fast (bad data, exit 2); only the newest failed one is kept."""
    claim = name("rp-empty")
    claim_dir(cluster, claim).mkdir(parents=True, exist_ok=True)
    rp = name("rp-prune")
    apply(cluster, policy(rp, template(name("e2e-rp-prune"), claim), schedule="* * * * *",
                          concurrencyPolicy="Allow", failedRunsHistoryLimit=1))
    # the Pruned Event can be posted before the status write that records the second failure
    doc = wait_policy(cluster, rp, lambda s: "Pruned" in reasons_of_events(cluster, rp)
                      and len(s.get("promotionHistory") or []) >= 2, "a pruned run", timeout=240)
    suspend(cluster, rp)
    runs = policy_runs(cluster, rp)
    history = [h["runName"] for h in doc["status"]["promotionHistory"]]
    assert len(history) >= 2  # two failures recorded...
    failed = [r for r in runs if (r.get("status") or {}).get("state") == "Failed"]
    assert len(failed) <= 1  # ...but only the newest kept
    assert history[0] not in {e["message"].split()[1] for e in events_for(cluster, rp) if e["reason"] == "Pruned"}
    delete_policy(cluster, rp)


def test_invalid_policy_gets_validation_failed(cluster, rp_operator) -> None:
    rp = name("rp-bad")
    doc = policy(rp, template(name("e2e-rp-bad")), schedule="61 25 * * 8", timeZone="Mars/Olympus")
    args = ["apply", "-f", "-"]
    result = cluster.kubectl(*args, input=yaml.safe_dump(doc), check=False)
    if result.returncode != 0:  # a real API server may refuse it already (CEL)
        assert "timeZone" in result.stderr
        return
    doc = wait_policy(cluster, rp, lambda s: any(c["type"] == "Failed" for c in s.get("conditions") or []),
                      "ValidationFailed", timeout=30)
    failed = next(c for c in doc["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ValidationFailed" and "spec.timeZone" in failed["message"]
    assert "spec.schedule" in failed["message"]  # every problem at once, not one per fix
    assert policy_runs(cluster, rp) == []
    delete_policy(cluster, rp)


def test_the_operator_logged_no_policy_failure(rp_operator) -> None:
    """Last in this module: every evaluation above ran without an exception the handler swallowed."""
    logs = rp_operator.logs()
    assert "evaluation failed" not in logs, logs[-3000:]
    assert "Traceback" not in logs or "RetrainPolicy" not in logs.split("Traceback", 1)[1][:2000]



@pytest.fixture(scope="module")
def rp_operator(operator):
    """The session's operator (the chart's Deployment)."""
    return operator
