"""Prometheus metrics of the operator: what an SRE graphs and alerts on next to `kubectl get trainingruns`.

Own registry (not the process-global one) so tests and the benchmark can read it directly.

Everything about runs comes from one call, `observe_run(body, status_before, status_after)`, made
where a run's status is written: it derives the series from the status transition (a Job name
appearing, the Running condition turning True, the state entering Succeeded or Failed, the
promotion decision), so a handler never counts anything itself. Each once-per-run observation
(queue wait, duration, outcome counters) is remembered by run uid: a pass retried by kopf, or a
status write that did not land and is seen again, counts once. `observe_run(body, status, None)`
says the run is gone. The reconcile handler times itself with RECONCILE and RECONCILE_ERRORS.

The Grafana dashboard shipped in the chart (charts/pitwall/dashboards/pitwall.json) graphs these
names; tests/unit/test_grafana.py fails when a panel names a series this registry does not export.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
STATES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
TERMINAL = ("Succeeded", "Failed")
UNKNOWN = "unknown"

RUNS = Gauge("pitwall_trainingruns", "TrainingRuns by state and model", ["state", "model"], registry=REGISTRY)
RECONCILE = Histogram(
    "pitwall_reconcile_duration_seconds", "Time of one reconcile of a TrainingRun", ["handler"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("pitwall_reconcile_errors_total", "Reconciles that raised", ["handler"], registry=REGISTRY)
CREATION_TO_JOB = Histogram(
    "pitwall_creation_to_job_seconds", "TrainingRun creation to its Job's creation", registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
QUEUE_WAIT = Histogram(
    "pitwall_queue_wait_seconds", "TrainingRun creation to its trainer pod running (the Running condition True)",
    ["model"], registry=REGISTRY,
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
RUN_DURATION = Histogram(
    "pitwall_run_duration_seconds", "TrainingRun start (first child created) to completion, by outcome",
    ["model", "outcome"], registry=REGISTRY,
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400),
)
PROMOTIONS = Counter("pitwall_promotions_total", "Runs whose model version took the alias", ["model"],
                     registry=REGISTRY)
REGRESSIONS = Counter("pitwall_regressions_total", "Runs whose model was worse than the champion", ["model"],
                      registry=REGISTRY)
FAILURES = Counter(
    "pitwall_trainingrun_failures_total",
    "Runs that failed, by the Failed condition's reason (TrainerFailed, DeadlineExceeded, PodNotStarting, ...)",
    ["reason"], registry=REGISTRY,
)

_lock = threading.Lock()
_states: dict[str, tuple[str, str]] = {}  # run uid -> (state, model)
_labels: set[tuple[str, str]] = set()  # every (state, model) the gauge has shown: zeroed, not left stale
_seen: dict[str, set[str]] = {}  # run uid -> once-per-run observations made ("job", "running", "end")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _seconds(start: Any, end: Any, now: datetime) -> float | None:
    began = parse_time(start)
    if began is None:
        return None
    return max(0.0, ((parse_time(end) or now) - began).total_seconds())


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return {}


def merged(status: dict[str, Any] | None, patch: dict[str, Any] | None) -> dict[str, Any]:
    """The status after a top-level merge patch (None removes a key), as the API server stores it."""
    out = dict(status or {})
    for key, value in (patch or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _once(uid: str, what: str) -> bool:
    """True the first time `what` happens to run `uid` (under _lock)."""
    done = _seen.setdefault(uid, set())
    if what in done:
        return False
    done.add(what)
    return True


def _refresh_gauge() -> None:
    """Counts per (state, model) from _states (under _lock); a pair no run is in any more reads 0."""
    counts: dict[tuple[str, str], int] = {}
    for pair in _states.values():
        counts[pair] = counts.get(pair, 0) + 1
    _labels.update(counts)
    for state, model in _labels:
        RUNS.labels(state=state, model=model).set(counts.get((state, model), 0))


def observe_run(body: dict[str, Any], status_before: dict[str, Any] | None, status_after: dict[str, Any] | None,
                now: datetime | None = None) -> None:
    """Every run metric from one status transition of `body` (`status_after` None: the run is gone)."""
    meta = body.get("metadata") or {}
    uid = meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    model = str((body.get("spec") or {}).get("model") or UNKNOWN)
    now = now or datetime.now(UTC)
    before = status_before or {}
    with _lock:
        if status_after is None:
            _states.pop(uid, None)
            _seen.pop(uid, None)
            _refresh_gauge()
            return
        after = status_after
        state = after.get("state") or "Pending"
        _states[uid] = (state, model)
        _refresh_gauge()
        created = meta.get("creationTimestamp")
        if after.get("jobName") and not before.get("jobName") and _once(uid, "job"):
            waited = _seconds(created, None, now)
            if waited is not None:
                CREATION_TO_JOB.observe(waited)
        running_before = _condition(before, "Running").get("status") == "True" or before.get("state") in TERMINAL
        if _condition(after, "Running").get("status") == "True" and not running_before and _once(uid, "running"):
            waited = _seconds(created, None, now)
            if waited is not None:
                QUEUE_WAIT.labels(model=model).observe(waited)
        if state not in TERMINAL or before.get("state") in TERMINAL or not _once(uid, "end"):
            return
        duration = _seconds(after.get("startTime") or created, after.get("completionTime"), now)
        if duration is not None:
            RUN_DURATION.labels(model=model, outcome=state).observe(duration)
        if state == "Failed":
            FAILURES.labels(reason=str(_condition(after, "Failed").get("reason") or UNKNOWN)).inc()
            return
        promotion = after.get("promotion") if isinstance(after.get("promotion"), dict) else {}
        if promotion.get("promoted") is True:
            PROMOTIONS.labels(model=model).inc()
        if promotion.get("regression") is True:
            REGRESSIONS.labels(model=model).inc()


def exported_names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every metric name the registry exports as PromQL sees it: counters with `_total`, histograms
    by their base name (their `_bucket`, `_sum` and `_count` series)."""
    return {metric.name + ("_total" if metric.type == "counter" else "") for metric in registry.collect()}


def serve(port: int) -> bool:
    """Expose /metrics on `port`; 0 disables. False when the port cannot be bound (logged by caller)."""
    if port <= 0:
        return False
    start_http_server(port, registry=REGISTRY)
    return True
