"""Prometheus metrics of the operator: what an SRE graphs next to `kubectl get trainingruns`.

Own registry (not the process-global one) so tests and the benchmark can read it directly.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
STATES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")

RUNS = Gauge("pitwall_trainingruns", "TrainingRuns by state", ["state"], registry=REGISTRY)
RECONCILE = Histogram(
    "pitwall_reconcile_duration_seconds", "Time of one reconcile of a TrainingRun", ["handler"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("pitwall_reconcile_errors_total", "Reconciles that raised", ["handler"], registry=REGISTRY)
CREATION_TO_JOB = Histogram(
    "pitwall_creation_to_job_seconds", "TrainingRun creation to its Job's creation", registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
PROMOTIONS = Counter("pitwall_promotions_total", "Runs whose model version took the alias", registry=REGISTRY)
REGRESSIONS = Counter("pitwall_regressions_total", "Runs whose model was worse than the champion", registry=REGISTRY)

_lock = threading.Lock()
_states: dict[str, str] = {}  # run uid -> state


def observe_state(uid: str, state: str | None) -> None:
    """Record a run's state (None: the run is gone) and refresh the by-state gauge."""
    with _lock:
        if state is None:
            _states.pop(uid, None)
        else:
            _states[uid] = state
        counts = dict.fromkeys(STATES, 0)
        for value in _states.values():
            counts[value] = counts.get(value, 0) + 1
    for name, count in counts.items():
        RUNS.labels(state=name).set(count)


def job_created(run_created: str | None, now: datetime | None = None) -> float | None:
    """Observe creation->Job latency from the run's creationTimestamp; returns the seconds."""
    if not run_created:
        return None
    start = datetime.fromisoformat(run_created.replace("Z", "+00:00"))
    seconds = max(0.0, ((now or datetime.now(UTC)) - start).total_seconds())
    CREATION_TO_JOB.observe(seconds)
    return seconds


def serve(port: int) -> bool:
    """Expose /metrics on `port`; 0 disables. False when the port cannot be bound (logged by caller)."""
    if port <= 0:
        return False
    start_http_server(port, registry=REGISTRY)
    return True
