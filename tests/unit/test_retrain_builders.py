"""RetrainPolicy builders: cron in time zones, run names, manifests, triggers, concurrency, pruning, status."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from pitwall_api import parse_retrain_policy_spec
from pitwall_operator import retrain_policy as rp
from pitwall_operator.builders import retrain as rt
from pitwall_operator.config import Settings

from tests.unit.test_crds import server_errors

REPO = Path(__file__).resolve().parents[2]
POLICY = rp.PolicyRef("race-winner-weekly", "f1", "uid-rp-1")
SETTINGS = Settings(default_data_claim="pitwall-data", default_mlflow_uri="http://mlflow:5000")


def crd_schema(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "crds" / f"{name}.pitwall.io.yaml").read_text())
    return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def example_spec() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "retrainpolicy.yaml").read_text())
    return parse_retrain_policy_spec(doc["spec"], doc["metadata"]["name"]).to_dict()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- cron -----------------------------------------------------------------------------------------


def test_tuesday_six_in_london_follows_summer_time() -> None:
    """06:00 Europe/London is 06:00 UTC in winter and 05:00 UTC in summer (BST)."""
    winter = rp.previous_tick("0 6 * * 2", "Europe/London", utc(2026, 1, 8, 12))  # a Thursday
    summer = rp.previous_tick("0 6 * * 2", "Europe/London", utc(2026, 7, 9, 12))
    assert winter == utc(2026, 1, 6, 6, 0)
    assert summer == utc(2026, 7, 7, 5, 0)
    # the Tuesday after the clocks go forward (29 March 2026): already 05:00 UTC
    assert rp.next_tick("0 6 * * 2", "Europe/London", utc(2026, 3, 29, 12)) == utc(2026, 3, 31, 5, 0)


def test_time_zone_changes_the_utc_instant() -> None:
    now = utc(2026, 1, 8, 12)
    assert rp.previous_tick("0 6 * * 2", "UTC", now) == utc(2026, 1, 6, 6)
    assert rp.previous_tick("0 6 * * 2", "America/New_York", now) == utc(2026, 1, 6, 11)  # EST = UTC-5
    assert rp.previous_tick("0 6 * * 2", "Asia/Tokyo", now) == utc(2026, 1, 5, 21)  # JST = UTC+9


def test_schedule_tick_fires_once_per_tick_and_respects_the_deadline() -> None:
    created = utc(2026, 1, 6, 5, 59, 30)
    assert rp.schedule_tick("0 6 * * 2", "UTC", created, utc(2026, 1, 6, 5, 59, 59)) is None  # not yet
    tick = rp.schedule_tick("0 6 * * 2", "UTC", created, utc(2026, 1, 6, 6, 0, 5))
    assert tick == rp.Tick(utc(2026, 1, 6, 6), True)
    assert rp.schedule_tick("0 6 * * 2", "UTC", tick.time, utc(2026, 1, 6, 6, 10)) is None  # acted on already
    # the operator was down for two weeks: one run for the newest tick, not a backlog
    late = rp.schedule_tick("0 6 * * 2", "UTC", tick.time, utc(2026, 1, 20, 6, 30))
    assert late == rp.Tick(utc(2026, 1, 20, 6), True)
    missed = rp.schedule_tick("0 6 * * 2", "UTC", tick.time, utc(2026, 1, 20, 6, 30), starting_deadline_seconds=600)
    assert missed == rp.Tick(utc(2026, 1, 20, 6), False)
    every_minute = rp.schedule_tick("* * * * *", "UTC", utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 1, 0))
    assert every_minute == rp.Tick(utc(2026, 1, 1, 0, 1), True)


def test_schedule_errors_and_check_due() -> None:
    assert rp.schedule_error("0 6 * * 2") is None
    assert rp.schedule_error("@weekly") is None
    assert "croniter" in (rp.schedule_error("61 6 * * 2") or "")
    assert rp.check_due(None, 900, utc(2026, 1, 1))
    assert not rp.check_due(utc(2026, 1, 1, 0, 0), 900, utc(2026, 1, 1, 0, 14, 59))
    assert rp.check_due(utc(2026, 1, 1, 0, 0), 900, utc(2026, 1, 1, 0, 15))


# --- names and manifests --------------------------------------------------------------------------


def test_run_names_say_when_and_why_within_fifty_characters() -> None:
    when = utc(2026, 3, 3, 6, 0, 42)
    assert rt.run_name("race-winner-weekly", when, "Schedule") == "race-winner-weekly-20260303-0600-sched"
    assert rt.run_name("rw", when, "AfterNewRace") == "rw-20260303-0600-race"
    assert rt.run_name("rw", when, "PerformanceDrift").endswith("-perf")
    longest = rt.run_name("a" * 30, when, "DataDrift")
    assert len(longest) <= 50 and longest.endswith("-20260303-0600-drift")
    assert rt.run_name("a" * 29 + "-", when, "NewData").count("--") == 0


def test_training_run_from_the_template() -> None:
    spec = example_spec()
    spec["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] = "argo-app"
    spec["template"]["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "x:y/z", "team": "strategy"}
    signals = {"latestRaceDate": "2025-03-16", "championVersion": "7"}
    run = rt.build_training_run(POLICY, spec, utc(2026, 3, 17, 6, 0), ["NewData", "AfterNewRace"], signals)
    meta = run["metadata"]
    assert run["apiVersion"] == "pitwall.io/v1alpha1" and run["kind"] == "TrainingRun"
    assert meta["name"] == "race-winner-weekly-20260317-0600-race" and meta["namespace"] == "f1"
    assert meta["labels"]["pitwall.io/retrain-policy"] == "race-winner-weekly"
    assert meta["labels"]["pitwall.io/trigger"] == "AfterNewRace"
    assert meta["labels"]["app.kubernetes.io/part-of"] == "pitwall"
    assert "app.kubernetes.io/instance" not in meta["labels"]  # Argo CD would prune the run
    assert "argocd.argoproj.io/tracking-id" not in meta["annotations"]
    assert meta["annotations"]["team"] == "strategy"
    assert meta["annotations"]["pitwall.io/trigger-reasons"] == "AfterNewRace,NewData"
    assert meta["annotations"]["pitwall.io/trigger-evidence"] == "2025-03-16|7"
    assert meta["ownerReferences"] == [{"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy",
                                        "name": "race-winner-weekly", "uid": "uid-rp-1", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert run["spec"] == spec["template"]["spec"]
    assert run["spec"]["promotion"]["policy"] == "IfBetter"
    assert server_errors(run) == []
    scheduled = rt.build_training_run(POLICY, spec, utc(2026, 3, 17, 6, 0), ["Schedule"], signals)
    assert "pitwall.io/trigger-evidence" not in scheduled["metadata"]["annotations"]  # time, not data


def test_monitor_job_uses_the_operators_default_claim_when_the_template_names_none() -> None:
    spec = example_spec()
    assert "source" not in spec["template"]["spec"]["data"]
    job = rt.build_monitor_job(POLICY, spec, SETTINGS, utc(2026, 3, 17, 6, 0, 5))
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--data-dir") + 1] == "/data"
    assert {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"]["claimName"] == "pitwall-data"


def test_monitor_job_runs_pitwall_train_monitor_with_the_data_claim() -> None:
    spec = example_spec()
    spec["template"]["spec"]["data"]["source"] = {"pvc": {"claimName": "training-data-pvc", "path": "f1-ergast"}}
    job = rt.build_monitor_job(POLICY, spec, SETTINGS, utc(2026, 3, 17, 6, 0, 5))
    kubernetes_validate.validate(job, "1.32", strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["name"] == "race-winner-weekly-mon-20260317060005"
    assert job["metadata"]["labels"]["pitwall.io/retrain-policy"] == "race-winner-weekly"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "retrain-monitor"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "RetrainPolicy"
    assert container["command"] == ["pitwall-train"]
    args = container["args"]
    assert args[:3] == ["monitor", "--model", "race_winner"]
    assert args[args.index("--data-dir") + 1] == "/data/f1-ergast"
    assert args[args.index("--policy") + 1] == "race-winner-weekly" and args[args.index("--namespace") + 1] == "f1"
    assert '"minSamples":20' in args[args.index("--triggers") + 1]
    assert "--refresh" not in args  # the example mounts its claim read-only
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PITWALL_RETRAINPOLICY_NAME"] == "race-winner-weekly" and env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["data"]["persistentVolumeClaim"] == {"claimName": "training-data-pvc", "readOnly": True}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_monitor_job_refreshes_a_writable_claim() -> None:
    spec = example_spec()
    spec["template"]["spec"]["data"]["source"] = {"pvc": {"claimName": "training-data-pvc", "path": "f1-ergast",
                                                          "readOnly": False}}
    policy = rp.PolicyRef("rw", "f1", "u", (("pitwall.io/fetch-base-url", "http://ergast.local/f1"),))
    job = rt.build_monitor_job(policy, spec, SETTINGS, utc(2026, 3, 17))
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--refresh") + 1:args.index("--refresh") + 3] == ["--seasons", "2025"]
    assert args[args.index("--base-url") + 1] == "http://ergast.local/f1"
    assert job["spec"]["template"]["spec"]["volumes"][1]["persistentVolumeClaim"]["readOnly"] is False


# --- triggers -------------------------------------------------------------------------------------


TRIGGERS = {"afterNewRace": {"enabled": True}, "performanceDrift": {"threshold": 0.9, "windowRaces": 5},
            "dataDrift": {"threshold": 0.1, "method": "psi"}, "newData": {"minSamples": 20}}


def test_fired_reasons_each_trigger_at_its_threshold() -> None:
    quiet = {"newRaces": 0, "newSamples": 0, "recentAccuracy": 0.45, "baselineAccuracy": 0.5, "driftScore": 0.1}
    assert rp.fired_reasons(quiet, TRIGGERS) == []  # 0.45 == 0.9 x 0.5 and 0.1 == 0.1: not beyond
    loud = {"newRaces": 1, "newSamples": 20, "recentAccuracy": 0.44, "baselineAccuracy": 0.5, "driftScore": 0.11,
            "latestRaceDate": "2025-03-16", "championTrainEndDate": "2024-12-08"}
    reasons = [r for r, _ in rp.fired_reasons(loud, TRIGGERS)]
    assert reasons == ["AfterNewRace", "PerformanceDrift", "DataDrift", "NewData"]
    assert rp.fired_reasons(loud, {"newData": {"minSamples": 21}}) == []
    assert rp.fired_reasons(loud, {"afterNewRace": {"enabled": False}}) == []
    assert rp.fired_reasons(loud, None) == []
    missing = {"newRaces": 2, "newSamples": 40}  # no accuracy or drift measured: those cannot fire
    assert [r for r, _ in rp.fired_reasons(missing, TRIGGERS)] == ["AfterNewRace", "NewData"]


# --- concurrency and history ----------------------------------------------------------------------


def run(name: str, state: str | None, done: str | None = None, owner: rp.PolicyRef = POLICY,
        labelled: bool = True, evidence: str | None = None, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "f1", "creationTimestamp": "2026-01-01T00:00:00Z",
                            "labels": {rt.POLICY_LABEL: owner.name} if labelled else {},
                            "ownerReferences": [rt.owner_reference(owner)]}
    if evidence:
        meta["annotations"] = {rp.EVIDENCE_ANNOTATION: evidence}
    st = dict(status)
    if state:
        st["state"] = state
    if done:
        st["completionTime"] = done
    return {"metadata": meta, "status": st}


def test_concurrency_policies() -> None:
    assert rp.concurrency("Forbid", []) == rp.Concurrency(True, [], "no active run")
    forbid = rp.concurrency("Forbid", ["r1"])
    assert not forbid.create and "Forbid" in forbid.reason
    assert rp.concurrency("Replace", ["r2", "r1"]).delete == ["r1", "r2"]
    allow = rp.concurrency("Allow", ["r1"])
    assert allow.create and allow.delete == []


def test_pruning_keeps_the_newest_and_never_touches_other_runs() -> None:
    other = rp.PolicyRef("someone-else", "f1", "uid-x")
    runs = [
        run("s1", "Succeeded", "2026-01-01T00:00:00Z"), run("s2", "Succeeded", "2026-01-02T00:00:00Z"),
        run("s3", "Succeeded", "2026-01-03T00:00:00Z"), run("s4", "Succeeded", "2026-01-04T00:00:00Z"),
        run("f1", "Failed", "2026-01-01T00:00:00Z"), run("f2", "Failed", "2026-01-05T00:00:00Z"),
        run("active", "Running"),
        run("git-run", "Succeeded", "2025-01-01T00:00:00Z", labelled=False),  # from git: no label
        run("foreign", "Succeeded", "2025-01-01T00:00:00Z", owner=other),  # another policy's
    ]
    assert rp.runs_to_prune(runs, POLICY, 3, 1) == ["f1", "s1"]
    assert rp.runs_to_prune(runs, POLICY, 0, 0) == ["f1", "f2", "s1", "s2", "s3", "s4"]
    assert rp.runs_to_prune(runs, POLICY, 10, 10) == []
    stranger = run("same-label-other-uid", "Succeeded", "2024-01-01T00:00:00Z",
                   owner=rp.PolicyRef(POLICY.name, "f1", "uid-old"))  # a deleted-and-recreated policy's run
    assert rp.runs_to_prune([stranger], POLICY, 0, 0) == []


def test_already_triggered_on_the_same_evidence() -> None:
    runs = [run("r1", "Succeeded", "2026-01-01T00:00:00Z", evidence="2025-03-16|7")]
    assert rp.already_triggered(runs, POLICY, {"latestRaceDate": "2025-03-16", "championVersion": "7"}) == "r1"
    assert rp.already_triggered(runs, POLICY, {"latestRaceDate": "2025-03-23", "championVersion": "7"}) is None
    assert rp.already_triggered(runs, POLICY, {"latestRaceDate": "2025-03-16", "championVersion": "8"}) is None


# --- status ---------------------------------------------------------------------------------------


def test_fold_runs_records_promotions_regressions_and_failures() -> None:
    spec = example_spec()["template"]["spec"]
    status = {"champion": {"version": "3", "metric": "top1_accuracy", "value": 0.5}}
    runs = [
        run("r-better", "Succeeded", "2026-01-01T00:00:00Z", metrics={"top1_accuracy": 0.6},
            promotion={"promoted": True, "version": "4", "previousVersion": "3", "reason": "better by 0.1"}),
        run("r-worse", "Succeeded", "2026-01-02T00:00:00Z", metrics={"top1_accuracy": 0.4},
            mlflow={"modelVersion": "5"},
            promotion={"promoted": False, "previousVersion": "4", "regression": True, "reason": "worse by 0.2"}),
        run("r-failed", "Failed", "2026-01-03T00:00:00Z"),
        run("r-active", "Running"),
    ]
    folded, decisions = rp.fold_runs(status, runs, POLICY, spec)
    assert folded["activeRuns"] == ["r-active"]
    assert folded["lastSuccessfulRun"] == "r-worse"
    assert folded["champion"] == {"version": "4", "metric": "top1_accuracy", "value": 0.6, "runName": "r-better"}
    history = folded["promotionHistory"]
    assert [h["runName"] for h in history] == ["r-failed", "r-worse", "r-better"]  # newest first
    assert history[1] == {"time": "2026-01-02T00:00:00Z", "runName": "r-worse", "version": "5", "promoted": False,
                          "value": 0.4, "previousValue": 0.6, "reason": "worse by 0.2"}
    assert [(d.reason, d.type) for d in decisions] == [("Promoted", "Normal"), ("Regression", "Warning"),
                                                        ("RunFailed", "Warning")]
    assert "previous 0.6, new 0.4, delta -0.2000" in decisions[1].message
    # folding again records nothing twice
    again, more = rp.fold_runs({**status, **folded}, runs, POLICY, spec)
    assert again["promotionHistory"] == history and more == []
    # the status block fits the CRD
    policy_status = {**folded, "lastCheckTime": "2026-01-03T00:00:00Z", "lastTriggerReasons": ["Schedule"],
                     "signals": {"newRaces": 1, "driftScore": 0.2}}
    doc = {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy", "metadata": {"name": "rw"},
           "spec": example_spec(), "status": policy_status}
    assert server_errors(doc) == []


def test_history_is_bounded() -> None:
    spec = example_spec()["template"]["spec"]
    runs = [run(f"r{i:02d}", "Succeeded", f"2026-01-{i + 1:02d}T00:00:00Z",
                promotion={"promoted": False, "reason": "no better"}) for i in range(25)]
    folded, _ = rp.fold_runs({}, runs, POLICY, spec)
    assert len(folded["promotionHistory"]) == rp.MAX_HISTORY
    assert folded["promotionHistory"][0]["runName"] == "r24"


def test_a_schedule_that_never_fires_is_refused() -> None:
    from pitwall_operator.retrain_policy import schedule_error

    assert "never fires" in (schedule_error("0 6 31 2 *") or "")
    assert schedule_error("0 6 * * 2", "Europe/London") is None


def test_the_module_python_m_pitwall_operator_runs_registers_the_retrain_policy_handlers() -> None:
    """`python -m pitwall_operator` runs `kopf run -m pitwall_operator.handlers` (the sandbox, make demo)."""
    import subprocess
    import sys

    code = ("import kopf, pitwall_operator.handlers; r = kopf.get_default_registry(); "
            "print(sorted(h.id for reg in (r._changing, r._spawning) for h in reg.get_all_handlers()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'rp_timer'" in out and "'rp_create'" in out and "'reconcile_run'" in out
