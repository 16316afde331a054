"""Thin kopf handlers for RetrainPolicy: validate on create/update/resume, evaluate on a timer.

The timer ticks every few seconds (kopf cannot change a timer's interval per object). The cron
schedule is read on every tick, so a tick fires on time, like a CronJob; the data checks (a
monitoring Job each) run once per checkInterval, due-ness taken from status.lastCheckTime, so an
operator restart neither skips nor repeats a check. status.lastScheduleTime keeps the last cron
tick acted on for the same reason. Each evaluation is idempotent and level-triggered: it folds the policy's runs
into status, prunes history, reads a finished monitoring Job, acts on a due cron tick or fired
trigger, and writes status only when it changed. Decisions (run created, skipped, promoted,
regression, pruned) become Events on the policy. Errors never escape to crash the operator:
API errors retry through kopf, anything else is logged and retried on the next tick.

Regression alerts: the created run carries the template's notifications, and the TrainingRun
path already alerts on its regression; the policy only posts an Event, so Slack hears once.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import kopf
from pitwall_api import SpecError, get_condition, parse_retrain_policy_spec, set_condition
from pitwall_api.retrainpolicy import duration_seconds

from pitwall_operator import k8s
from pitwall_operator import retrain_policy as rp
from pitwall_operator.builders import retrain as rt
from pitwall_operator.builders.events import build_event
from pitwall_operator.builders.status import parse_termination, status_patch
from pitwall_operator.builders.trainer_access import build_monitor_access
from pitwall_operator.config import GROUP, VERSION, settings
from pitwall_operator.times import iso, parse_time

log = logging.getLogger(__name__)
SETTINGS = settings()
RESOURCE = (GROUP, VERSION, rt.POLICY_PLURAL)
TIMER_INTERVAL = max(1.0, SETTINGS.timer_interval)
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _event(body: dict[str, Any], decision: rp.Decision) -> None:
    event = build_event(body["metadata"], decision.type, decision.reason, decision.message,
                        iso(_now()), SETTINGS.instance)
    event["involvedObject"]["kind"] = rt.POLICY_KIND
    k8s.post_event(event)


def _invalid(body: dict[str, Any], status: dict[str, Any], messages: list[str]) -> None:
    """Failed/ValidationFailed naming each bad field; nothing is created and nothing retries."""
    gen = body["metadata"].get("generation")
    text = "; ".join(messages)
    conds = set_condition(status.get("conditions"), "Failed", True, "ValidationFailed", text, gen)
    conds = set_condition(conds, "Ready", False, "ValidationFailed", text, gen)
    desired = {**status, "conditions": conds, "observedGeneration": gen}
    patch = status_patch(status, desired)
    if patch:
        k8s.patch_policy_status(body["metadata"].get("namespace") or "default", body["metadata"]["name"], patch)
        _event(body, rp.Decision("ValidationFailed", text, "Warning"))


def _parse(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
    name = body["metadata"]["name"]
    spec: dict[str, Any] | None = None
    messages: list[str] = []
    try:
        spec = parse_retrain_policy_spec(body.get("spec"), name).to_dict()
    except SpecError as exc:
        messages = list(exc.messages)
    # croniter's own check, reported beside the model's findings (every problem at once)
    schedule = (spec or body.get("spec") or {}).get("schedule")
    zone = spec.get("timeZone", "UTC") if spec else "UTC"
    problem = rp.schedule_error(schedule, zone) if isinstance(schedule, str) and schedule else None
    if problem and not any(m.startswith("spec.schedule") for m in messages):
        messages.append(f"spec.schedule: {problem}")
    if messages:
        _invalid(body, status, messages)
        return None
    return spec


def _read_monitor(job: dict[str, Any], namespace: str) -> dict[str, Any] | None:
    """The signals the monitoring Job wrote as its termination message (None when it wrote none)."""
    pods = k8s.list_objects("v1", "Pod", namespace, f"job-name={job['metadata']['name']}")
    term = parse_termination(pods, rt.MONITOR_CONTAINER)
    return term.result if term and term.result else None


def _monitor(body: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], desired: dict[str, Any],
             now: datetime, decisions: list[rp.Decision]) -> tuple[list[str], dict[str, Any] | None]:
    """Fold finished monitoring Jobs into signals; start the next one when the check is due."""
    meta = body["metadata"]
    namespace, policy = meta.get("namespace") or "default", rp.PolicyRef.from_body(body)
    selector = f"{rt.POLICY_LABEL}={policy.name},app.kubernetes.io/component={rt.MONITOR_COMPONENT}"
    jobs = k8s.list_objects("batch/v1", "Job", namespace, selector)
    reasons: list[str] = []
    fresh: dict[str, Any] | None = None
    running = False
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
        state = rp.job_finished(job)
        if state is None:
            running = True
            continue
        result = _read_monitor(job, namespace)
        if state == "Complete" and result:
            fresh = {k: result[k] for k in rp.SIGNAL_KEYS if result.get(k) is not None}
            desired["signals"] = {k: result.get(k) for k in rp.SIGNAL_KEYS}  # nulls clear stale figures
            fired = rp.fired_reasons(fresh, spec.get("triggers"))
            reasons = [r for r, _ in fired]
            text = "; ".join(m for _, m in fired) or "no trigger fired"
            decisions.append(rp.Decision("TriggersEvaluated", f"{job['metadata']['name']}: {text}"))
            refresh = fresh.get("dataRefresh") or {}
            conds = desired.get("conditions")
            if refresh.get("succeeded") is False:
                conds = set_condition(conds, "DataRefreshFailed", True, "FetchFailed",
                                      str(refresh.get("message") or "data refresh failed")[:1024], meta.get("generation"))
            elif refresh.get("succeeded") is True or get_condition(conds, "DataRefreshFailed"):
                conds = set_condition(conds, "DataRefreshFailed", False, "Refreshed", "", meta.get("generation"))
            desired["conditions"] = conds
        else:
            message = (result or {}).get("error", {}).get("message") if isinstance((result or {}).get("error"), dict) else None
            decisions.append(rp.Decision("MonitorFailed", f"{job['metadata']['name']} {state.lower()}: "
                                                          f"{message or 'no signals written'}", "Warning"))
        k8s.delete("batch/v1", "Job", namespace, job["metadata"]["name"])  # consumed
    interval = duration_seconds(spec.get("checkInterval", "15m"))
    if not running and rp.check_due(parse_time(status.get("lastCheckTime")), interval, now):
        for obj in build_monitor_access(policy, (spec.get("template") or {}).get("spec") or {}):
            k8s.create(obj)  # its own account, allowed to write this policy's status only
        k8s.create(rt.build_monitor_job(policy, spec, SETTINGS, now))
        desired["lastCheckTime"] = iso(now)
    return reasons, fresh


def evaluate(body: dict[str, Any], now: datetime | None = None) -> None:
    """One idempotent pass over a policy (see the module docstring)."""
    now = now or _now()
    meta = body["metadata"]
    name, namespace, gen = meta["name"], meta.get("namespace") or "default", meta.get("generation")
    status = {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}
    spec = _parse(body, status)
    if spec is None:
        return
    policy = rp.PolicyRef.from_body(body)
    run_spec = (spec.get("template") or {}).get("spec") or {}
    conds = status.get("conditions")
    if get_condition(conds, "Failed"):
        conds = set_condition(conds, "Failed", False, "Valid", "", gen)
    suspended = bool(spec.get("suspend"))
    conds = set_condition(conds, "Suspended", suspended, "Suspended" if suspended else "Active",
                          "spec.suspend is true: no new runs" if suspended else "", gen)
    conds = set_condition(conds, "Ready", True, "Evaluating", "schedule and triggers are evaluated", gen)
    desired: dict[str, Any] = {**status, "conditions": conds, "observedGeneration": gen}
    decisions: list[rp.Decision] = []

    runs = k8s.list_objects(f"{GROUP}/{VERSION}", "TrainingRun", namespace, f"{rt.POLICY_LABEL}={name}")
    folded, more = rp.fold_runs(status, runs, policy, run_spec)
    desired.update(folded)
    decisions += more
    for doomed in rp.runs_to_prune(runs, policy, spec.get("successfulRunsHistoryLimit", 3),
                                   spec.get("failedRunsHistoryLimit", 1)):
        if k8s.delete(f"{GROUP}/{VERSION}", "TrainingRun", namespace, doomed):
            decisions.append(rp.Decision("Pruned", f"deleted {doomed} (history limits)"))

    reasons: list[str] = []
    signals: dict[str, Any] | None = None
    run_time = now  # names the run: the cron tick when the schedule fired, so a retry makes no second run
    if not suspended:
        if spec.get("schedule"):
            since = parse_time(status.get("lastScheduleTime")) or parse_time(meta.get("creationTimestamp")) or now
            tick = rp.schedule_tick(spec["schedule"], spec.get("timeZone", "UTC"), since, now,
                                    spec.get("startingDeadlineSeconds"))
            if tick is not None:
                desired["lastScheduleTime"] = iso(tick.time)
                if tick.fire:
                    reasons.append("Schedule")
                    run_time = tick.time
                else:
                    decisions.append(rp.Decision("MissedSchedule", f"tick {iso(tick.time)} missed by more than "
                                                                   f"{spec.get('startingDeadlineSeconds')}s", "Warning"))
        if not spec.get("triggers") and rp.check_due(parse_time(status.get("lastCheckTime")),
                                                     duration_seconds(spec.get("checkInterval", "15m")), now):
            desired["lastCheckTime"] = iso(now)  # schedule only: the cron itself is read every tick
        if spec.get("triggers"):
            fired, signals = _monitor(body, spec, status, desired, now, decisions)
            if fired and signals is not None:
                earlier = rp.already_triggered(runs, policy, signals)
                if earlier:
                    decisions.append(rp.Decision("AlreadyTriggered", f"{', '.join(fired)}: {earlier} was started "
                                                                     f"on the same data and champion"))
                else:
                    reasons += fired
        champion = rp.champion_from_signals(desired, signals or {}, rp.metric_of(run_spec))
        if champion and not desired.get("promotionHistory"):
            desired["champion"] = champion

    if reasons:
        _start_run(policy, spec, desired, reasons, signals, (run_time, now), runs, decisions)

    patch = status_patch(status, desired)
    if patch:
        k8s.patch_policy_status(namespace, name, patch)
    for decision in decisions:
        _event(body, decision)


def _start_run(policy: rp.PolicyRef, spec: dict[str, Any], desired: dict[str, Any], reasons: list[str],
               signals: dict[str, Any] | None, times: tuple[datetime, datetime], runs: list[dict[str, Any]],
               decisions: list[rp.Decision]) -> None:
    """Create the run unless concurrencyPolicy forbids it; Replace deletes the active runs first.

    `times`: (the time the run is named after, now). The name comes from the cron tick (or the
    check) that fired, so when the status write below fails, the next pass finds the same name
    (a 409, the same run) instead of creating a second run for the same tick.
    """
    run_time, now = times
    why = ", ".join(rp.ordered(reasons))
    active = list(desired.get("activeRuns") or [])
    verdict = rp.concurrency(spec.get("concurrencyPolicy", "Forbid"), active, rp.registered_runs(runs))
    if not verdict.create:
        decisions.append(rp.Decision("RunSkipped", f"{why} fired; {verdict.reason}"))
        return
    for name in verdict.delete:
        k8s.delete(f"{GROUP}/{VERSION}", "TrainingRun", policy.namespace, name)
        active.remove(name)
    manifest = rt.build_training_run(policy, spec, run_time, reasons, signals)
    _, created = k8s.create(manifest)
    run = manifest["metadata"]["name"]
    desired["activeRuns"] = sorted(set(active) | {run})
    desired["lastTriggerTime"] = iso(now)
    desired["lastTriggerReasons"] = rp.ordered(reasons)
    if created:
        decisions.append(rp.Decision("RunCreated", f"created {run} ({why}); {verdict.reason}"))


def validate(body: dict[str, Any]) -> None:
    """create/update/resume: conditions only (Failed/ValidationFailed, or Ready); the timer does the rest."""
    status = {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}
    if _parse(body, status) is None:
        return
    gen = body["metadata"].get("generation")
    conds = status.get("conditions")
    if get_condition(conds, "Failed"):
        conds = set_condition(conds, "Failed", False, "Valid", "", gen)
    conds = set_condition(conds, "Ready", True, "Evaluating", "schedule and triggers are evaluated", gen)
    patch = status_patch(status, {**status, "conditions": conds, "observedGeneration": gen})
    if patch:
        k8s.patch_policy_status(body["metadata"].get("namespace") or "default", body["metadata"]["name"], patch)


def _guarded(body: kopf.Body, handler: str) -> None:
    """One pass at a time per policy; API errors retry via kopf, nothing else escapes."""
    uid = body["metadata"].get("uid") or body["metadata"]["name"]
    with _locks[uid]:
        try:
            (evaluate if handler == "timer" else validate)(dict(body))
        except k8s.ApiError as exc:
            raise kopf.TemporaryError(f"API error, retrying: {exc}", delay=5 if exc.retryable else 30) from exc
        except Exception:  # noqa: BLE001 - a bug here must not stop the operator; the next tick retries
            log.exception("RetrainPolicy %s: %s evaluation failed", body["metadata"]["name"], handler)


@kopf.on.create(*RESOURCE)
def rp_create(body: kopf.Body, **_: Any) -> None:
    _guarded(body, "create")


@kopf.on.resume(*RESOURCE)
def rp_resume(body: kopf.Body, **_: Any) -> None:
    _guarded(body, "resume")


@kopf.on.update(*RESOURCE, field="spec")
def rp_update(body: kopf.Body, **_: Any) -> None:
    _guarded(body, "update")


@kopf.timer(*RESOURCE, interval=TIMER_INTERVAL, initial_delay=TIMER_INTERVAL)
def rp_timer(body: kopf.Body, **_: Any) -> None:
    """Evaluate the schedule and triggers (due-ness from status, so the base interval stays short)."""
    _guarded(body, "timer")


@kopf.on.delete(*RESOURCE, optional=True)
def rp_delete(body: kopf.Body, **_: Any) -> None:
    """Owner references let the garbage collector remove the policy's runs and monitoring Jobs."""
    _locks.pop(body["metadata"].get("uid") or body["metadata"]["name"], None)
