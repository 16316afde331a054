"""RetrainPolicy decisions as pure functions: when to fire, what to delete, what status says.

Like a CronJob with data triggers. The handler (handlers/retrainpolicy.py) reads the cluster and
the clock and passes them in; everything here is deterministic and unit-tested:

- `schedule_tick`: the cron tick due now (croniter, in the policy's IANA time zone);
- which data triggers fire: `pitwall_api.triggers.fired_reasons`, the rule the monitor uses too;
- `concurrency`: Forbid / Replace / Allow; `runs_to_prune`: history limits;
- `fold_runs`: outcomes of finished runs into champion and promotion history.
The manifests it decides to create are built by builders/retrain.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitwall_api.contract import POLICY_LABEL, PRIMARY_METRIC, RETRAINPOLICY_KIND
from pitwall_api.triggers import SIGNAL_KEYS, fired_reasons, ordered  # noqa: F401 - the handler's decisions

from pitwall_operator.times import utc

MAX_HISTORY = 20  # status.promotionHistory items
EVIDENCE_ANNOTATION = "pitwall.io/trigger-evidence"  # latest race date | champion version (data triggers)


@dataclass(frozen=True)
class PolicyRef:
    """The owning RetrainPolicy: enough to name, label and own what it creates."""

    name: str
    namespace: str
    uid: str
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_body(cls, body: Any) -> PolicyRef:
        meta = body["metadata"]
        return cls(meta["name"], meta.get("namespace") or "default", meta.get("uid") or "",
                   tuple(sorted((meta.get("annotations") or {}).items())))



def schedule_error(schedule: str, time_zone: str = "UTC") -> str | None:
    """Why croniter cannot use this schedule (the API pattern admits a few it rejects), else None."""
    from croniter import croniter

    try:
        croniter(schedule, datetime.now(ZoneInfo(time_zone)))
    except Exception as error:  # noqa: BLE001 - croniter raises several types for bad expressions
        return f"{schedule!r} is not a cron schedule croniter understands: {error}"
    try:  # a valid-looking schedule that never fires (31 February) fails only when asked for a tick
        croniter(schedule, datetime.now(ZoneInfo(time_zone))).get_next(datetime)
    except Exception as error:  # noqa: BLE001
        return f"{schedule!r} never fires: {error}"
    return None



def previous_tick(schedule: str, time_zone: str, now: datetime) -> datetime:
    """The latest tick at or before `now`, evaluated in the policy's time zone (DST-aware), in UTC."""
    from croniter import croniter

    local = utc(now).astimezone(ZoneInfo(time_zone))
    itr = croniter(schedule, local + timedelta(microseconds=1))
    return utc(itr.get_prev(datetime))



def next_tick(schedule: str, time_zone: str, now: datetime) -> datetime:
    from croniter import croniter

    return utc(croniter(schedule, utc(now).astimezone(ZoneInfo(time_zone))).get_next(datetime))



@dataclass(frozen=True)
class Tick:
    time: datetime  # the cron tick
    fire: bool  # False: missed by more than startingDeadlineSeconds (skipped, like a CronJob)



def schedule_tick(schedule: str, time_zone: str, since: datetime, now: datetime,
                  starting_deadline_seconds: int | None = None) -> Tick | None:
    """The newest tick after `since` (the last tick acted on, or the policy's creation) up to `now`.

    Several missed ticks collapse into the newest one (a CronJob starts one Job, not a backlog).
    """
    tick = previous_tick(schedule, time_zone, now)
    if tick <= utc(since):
        return None
    late = (utc(now) - tick).total_seconds()
    return Tick(tick, starting_deadline_seconds is None or late <= starting_deadline_seconds)



def check_due(last_check: datetime | None, interval_seconds: int, now: datetime) -> bool:
    """The data triggers are evaluated once per checkInterval (the timer itself ticks faster)."""
    return last_check is None or (utc(now) - utc(last_check)).total_seconds() >= interval_seconds



def job_finished(job: dict[str, Any]) -> str | None:
    """"Complete" or "Failed" once the Job ended, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Complete"
        if cond.get("status") == "True" and cond.get("type") == "Failed":
            return "Failed"
    return None



def run_state(run: dict[str, Any]) -> str:
    return str((run.get("status") or {}).get("state") or "Pending")



def is_finished(run: dict[str, Any]) -> bool:
    return run_state(run) in ("Succeeded", "Failed")



def created_by(run: dict[str, Any], policy: PolicyRef) -> bool:
    """Only runs this policy created (its label and its owner reference): never a run from git."""
    meta = run.get("metadata") or {}
    if (meta.get("labels") or {}).get(POLICY_LABEL) != policy.name:
        return False
    owners = meta.get("ownerReferences") or []
    return any(o.get("kind") == RETRAINPOLICY_KIND and o.get("name") == policy.name
               and (not policy.uid or o.get("uid") == policy.uid) for o in owners)



def _age_key(run: dict[str, Any]) -> str:
    status, meta = run.get("status") or {}, run.get("metadata") or {}
    return str(status.get("completionTime") or meta.get("creationTimestamp") or "")



@dataclass
class Concurrency:
    create: bool
    delete: list[str] = field(default_factory=list)  # active runs to delete first (Replace)
    reason: str = ""



def concurrency(policy: str, active: list[str], registered: set[str] | frozenset[str] = frozenset()) -> Concurrency:
    """CronJob's rule: Forbid skips while a run is active, Replace deletes it, Allow runs both.

    Replace never deletes a run that has already registered its model (`registered`): that run is
    about to report a promotion decision, and deleting it would leave a version nobody explains.
    """
    if not active or policy == "Allow":
        return Concurrency(True, [], "Allow: runs may overlap" if active else "no active run")
    if policy == "Replace":
        doomed, kept = sorted(set(active) - set(registered)), sorted(set(active) & set(registered))
        reason = f"Replace: deleting active {', '.join(doomed)}" if doomed else "Replace"
        if kept:
            reason += f"; keeping {', '.join(kept)}: its model is already registered"
        return Concurrency(True, doomed, reason)
    return Concurrency(False, [], f"Forbid: {', '.join(sorted(active))} still running")



def registered_runs(runs: list[dict[str, Any]]) -> set[str]:
    """Runs whose model version is in the registry already (status.mlflow.modelVersion)."""
    return {r["metadata"]["name"] for r in runs if (((r.get("status") or {}).get("mlflow") or {}).get("modelVersion"))}



def runs_to_prune(runs: list[dict[str, Any]], policy: PolicyRef, successful_limit: int,
                  failed_limit: int) -> list[str]:
    """Finished runs beyond the history limits, oldest first to go; runs from elsewhere are never touched."""
    mine = [r for r in runs if created_by(r, policy) and is_finished(r)]
    doomed: list[str] = []
    for state, limit in (("Succeeded", successful_limit), ("Failed", failed_limit)):
        done = sorted((r for r in mine if run_state(r) == state), key=_age_key, reverse=True)
        doomed += [r["metadata"]["name"] for r in done[limit:]]
    return sorted(doomed)



@dataclass
class Decision:
    """Something worth an Event on the policy."""

    reason: str
    message: str
    type: str = "Normal"



def metric_of(run_spec: dict[str, Any]) -> str:
    promotion = run_spec.get("promotion") or {}
    return promotion.get("metric") or PRIMARY_METRIC.get(run_spec.get("model", ""), "top1_accuracy")



def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None



def fold_runs(status: dict[str, Any], runs: list[dict[str, Any]], policy: PolicyRef,
              run_spec: dict[str, Any]) -> tuple[dict[str, Any], list[Decision]]:
    """Active runs, last success, champion and promotion history from the policy's runs.

    A finished run is recorded once (by name) in the bounded history, newest first. A run that
    registered a worse model than the champion yields a Warning `Regression` decision (an Event);
    the Slack alert for it comes from the run itself (its notifications, copied from the template).
    """
    mine = [r for r in runs if created_by(r, policy)]
    out: dict[str, Any] = {"activeRuns": sorted(r["metadata"]["name"] for r in mine if not is_finished(r))}
    history = list(status.get("promotionHistory") or [])
    seen = {h.get("runName") for h in history}
    champion = dict(status.get("champion") or {})
    metric = metric_of(run_spec)
    decisions: list[Decision] = []
    finished = sorted((r for r in mine if is_finished(r)), key=_age_key)
    succeeded = [r["metadata"]["name"] for r in finished if run_state(r) == "Succeeded"]
    last_success = succeeded[-1] if succeeded else status.get("lastSuccessfulRun")  # pruned: keep the name
    for run in finished:
        name, rstatus = run["metadata"]["name"], run.get("status") or {}
        if name in seen:
            continue
        promotion = rstatus.get("promotion") or {}
        version = promotion.get("version") or (rstatus.get("mlflow") or {}).get("modelVersion")
        value = _number((rstatus.get("metrics") or {}).get(metric))
        record: dict[str, Any] = {"time": rstatus.get("completionTime"), "runName": name, "version": version,
                                  "promoted": bool(promotion.get("promoted")) if promotion else False,
                                  "value": value, "previousValue": _number(champion.get("value")),
                                  "reason": (promotion.get("reason") or "")[:1024] or None}
        if run_state(run) == "Failed":
            record["reason"] = "run failed"
            decisions.append(Decision("RunFailed", f"{name} failed; the champion stays", "Warning"))
        elif record["promoted"]:
            decisions.append(Decision("Promoted", f"{name}: version {version} is the new champion "
                                                  f"({metric} {value}); {record['reason'] or ''}".strip()))
            champion = {"version": str(version) if version is not None else None, "metric": metric,
                        "value": value, "runName": name}
        elif promotion.get("regression"):
            prev = record["previousValue"]
            delta = f"{value - prev:+.4f}" if value is not None and prev is not None else "n/a"
            decisions.append(Decision("Regression", f"{name}: version {version} is worse than champion "
                                                    f"{champion.get('version') or promotion.get('previousVersion')} "
                                                    f"({metric}: previous {prev}, new {value}, delta {delta}); "
                                                    "not promoted", "Warning"))
        else:
            decisions.append(Decision("NotPromoted", f"{name}: version {version} not promoted: {record['reason']}"))
        history.insert(0, {k: v for k, v in record.items() if v is not None})
        seen.add(name)
    out["promotionHistory"] = history[:MAX_HISTORY]
    if champion:
        out["champion"] = {k: v for k, v in champion.items() if v is not None}
    if last_success:
        out["lastSuccessfulRun"] = last_success
    return out, decisions



def champion_from_signals(status: dict[str, Any], signals: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """Before any run of its own, the policy shows the registry's champion as the monitor saw it."""
    version = signals.get("championVersion")
    current = status.get("champion") or {}
    if not version or current.get("version") == str(version):
        return None
    out = {"version": str(version), "metric": metric}
    if signals.get("baselineAccuracy") is not None and metric == "top1_accuracy":
        out["value"] = signals["baselineAccuracy"]  # the monitor's accuracy metric is race_winner's primary one
    return out



def evidence(signals: dict[str, Any]) -> str:
    """What a data-triggered run was started on: the newest race and the champion it was measured against."""
    return f"{signals.get('latestRaceDate') or '-'}|{signals.get('championVersion') or '-'}"



def already_triggered(runs: list[dict[str, Any]], policy: PolicyRef, signals: dict[str, Any]) -> str | None:
    """The run already started on the same evidence, if any: the same data and champion never retrain twice.

    Without this a run that does not beat the champion would leave the triggers firing, and every
    checkInterval would start another run on the same data.
    """
    key = evidence(signals)
    for run in runs:
        meta = run.get("metadata") or {}
        if created_by(run, policy) and (meta.get("annotations") or {}).get(EVIDENCE_ANNOTATION) == key:
            return meta["name"]
    return None

