"""Kopf handlers for TrainingRun: every path is one reconcile in kopf's queue for that run.

Kopf runs the change handlers (create, resume, update) of one object one at a time, each with a
body that shows the previous one's status write. So every reconcile runs there:
- a spec edit or a new run arrives as create/update;
- a child's change (its Job started, ended or went; its RayCluster became ready) is written by
  `on_child_event` into the run's `pitwall.io/children` annotation, which arrives as an update;
- the safety-net timer writes the same annotation when the children's events cannot help (a pod
  that never starts, a slow RayCluster, a lost event, a create whose retry was lost).
The children themselves are read from kopf indexes fed by the same watches (no GET per pass).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from pitwall_api import is_terminal

from pitwall_operator import alerts, k8s, metrics
from pitwall_operator.builders import slack as payloads
from pitwall_operator.builders.meta import RUN_LABEL
from pitwall_operator.builders.raycluster import is_ready
from pitwall_operator.config import GROUP, PLURAL, VERSION, apply_framework_settings, settings
from pitwall_operator.handlers.reconcile import Result, delete_children, may_be_stuck, now_iso, reconcile

log = logging.getLogger(__name__)
SETTINGS = settings()
RESOURCE = (GROUP, VERSION, PLURAL)
CHILDREN = {"app.kubernetes.io/managed-by": "pitwall-operator", RUN_LABEL: kopf.PRESENT}
CHILDREN_ANNOTATION = f"{GROUP}/children"  # what the operator last saw of a run's children


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    """State in status (GitOps-safe), own finalizer, Events only for warnings, bounded workers.

    Standalone by default (one replica). For HA, set PITWALL_PEERING=<name>, create that
    KopfPeering (or ClusterKopfPeering) and grant kopf.dev peerings in RBAC; replicas then elect
    one active operator by priority.
    """
    apply_framework_settings(settings, SETTINGS)
    if SETTINGS.peering:
        settings.peering.name = SETTINGS.peering
        settings.peering.standalone = False
        settings.peering.mandatory = True
    else:
        settings.peering.standalone = True
    try:
        if metrics.serve(SETTINGS.metrics_port):
            logger.info("Prometheus metrics on :%d/metrics", SETTINGS.metrics_port)
    except OSError as exc:
        logger.warning("metrics port %d unavailable: %s", SETTINGS.metrics_port, exc)


# --- the children, as the watches last saw them ----------------------------------------------------


@kopf.index("batch", "v1", "jobs", labels=CHILDREN)
def run_jobs(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict]:
    return {(namespace, labels[RUN_LABEL]): dict(body)}


@kopf.index("ray.io", "v1", "rayclusters", labels=CHILDREN)
def run_ray_clusters(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict]:
    return {(namespace, labels[RUN_LABEL]): dict(body)}


def _one(index: kopf.Index, key: tuple[str, str]) -> dict[str, Any] | None:
    return next(iter(index.get(key, ())), None)


# --- the reconcile ----------------------------------------------------------------------------------


@kopf.on.create(*RESOURCE)
@kopf.on.resume(*RESOURCE)
@kopf.on.update(*RESOURCE)
def reconcile_run(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, reason: str,
                  run_jobs: kopf.Index, run_ray_clusters: kopf.Index, **_: Any) -> None:
    """Bring the run in line; its status goes out in kopf's one PATCH after this handler."""
    started = time.perf_counter()
    handler = str(reason)
    try:
        result = reconcile(dict(body), SETTINGS, job=_one(run_jobs, (namespace, name)),
                           ray_cluster=_one(run_ray_clusters, (namespace, name)))
    except k8s.ApiError as exc:
        metrics.RECONCILE_ERRORS.labels(handler=handler).inc()
        if not exc.retryable:  # refused (403 RBAC, 422 a child the server rejects): say it on the run
            kopf.event(body, type="Warning", reason="ReconcileError",
                       message=f"the API server refused a request, retrying in 30s: {exc}")
        raise kopf.TemporaryError(f"API error, retrying: {exc}", delay=5 if exc.retryable else 30) from exc
    except Exception as exc:  # a bug or a surprise in one run must not stop the others
        metrics.RECONCILE_ERRORS.labels(handler=handler).inc()
        log.exception("reconcile of %s/%s failed", namespace, name)
        kopf.event(body, type="Warning", reason="ReconcileError", message=f"{type(exc).__name__}: {exc}")
        raise kopf.TemporaryError(f"reconcile failed, retrying: {exc}", delay=30) from exc
    finally:
        metrics.RECONCILE.labels(handler=handler).observe(time.perf_counter() - started)
    for key, value in result.patch.items():
        patch.status[key] = value
    announce(body, result)


def announce(body: kopf.Body, result: Result) -> None:
    """Events for transitions (posted by kopf in the background), Slack for failures and
    regressions, counters."""
    meta = body["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    metrics.observe_run(body, body.get("status"), metrics.merged(body.get("status"), result.patch))
    for reason, message in result.warnings:
        kopf.event(body, type="Warning", reason=reason, message=message)
    outcome, spec = result.outcome, result.spec
    if not result.patch or outcome is None:
        return
    for transition in outcome.transitions:
        kopf.event(body, type=transition.type, reason=transition.reason, message=transition.message)

    def alert(kind: str, payload: dict[str, Any]) -> None:
        """Slack, when the run asks for this kind; a Warning Event on the run when it cannot be sent."""
        def warn(message: str) -> None:
            kopf.event(body, type="Warning", reason="AlertNotSent", message=message)
        alerts.send(namespace, spec, kind, payload, on_problem=warn)

    if outcome.failure:
        job = outcome.status.get("jobName") or name
        alert("Failed", payloads.failure_payload(job, outcome.failure["type"], outcome.failure["message"],
                                                 f"{namespace}/{name}"))
    if outcome.state == "Succeeded":
        for kind, payload in payloads.success_payloads(namespace, name, outcome.status, spec):
            alert(kind, payload)
    if outcome.regression:
        payload = payloads.regression_from_record(namespace, name, outcome.regression, spec)
        if payload is not None:
            alert("Regression", payload)


@kopf.on.delete(*RESOURCE, optional=True)
def on_delete(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Stop the children of a deleted run; owner references let the garbage collector do the rest."""
    try:
        delete_children(dict(body))
    except k8s.ApiError as exc:
        raise kopf.TemporaryError(f"cannot delete children yet: {exc}", delay=5) from exc


@kopf.on.event(*RESOURCE)
def on_run_event(event: kopf.RawEvent, **_: Any) -> None:
    """A run is gone (whether or not it carried the finalizer): the metrics forget it."""
    if event.get("type") == "DELETED":
        run = event.get("object") or {}
        metrics.observe_run(run, run.get("status"), None)


# --- wake-up calls ------------------------------------------------------------------------------------


def child_signature(child: dict[str, Any]) -> str:
    """The part of a Job's or RayCluster's state its run's state depends on (not pod counters)."""
    status, meta = child.get("status") or {}, child.get("metadata") or {}
    if child.get("kind") == "RayCluster":
        return f"raycluster {meta.get('uid', '')[:8]} ready={is_ready(child)}"
    ended = ",".join(sorted(c.get("type", "") for c in status.get("conditions") or [] if c.get("status") == "True"))
    return (f"job {meta.get('uid', '')[:8]} active={int(status.get('active') or 0) > 0} "
            f"suspended={bool((child.get('spec') or {}).get('suspend'))} ended={ended or '-'} "
            f"failed={int(status.get('failed') or 0)} deleting={bool(meta.get('deletionTimestamp'))}")


@kopf.on.event("batch", "v1", "jobs", labels=CHILDREN)
@kopf.on.event("ray.io", "v1", "rayclusters", labels=CHILDREN)
def on_child_event(event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo,
                   **_: Any) -> None:
    """A child changed in a way its run's state depends on: write that into the run's annotation.

    ADDED is skipped (a new child has nothing to report; after a restart the resume handlers
    cover every run); a re-list after a broken watch (type None) counts, a change may have
    happened in the gap. Errors are logged, not raised (kopf does not retry event handlers; the
    next change or the timer wakes the run).
    """
    kind, child = event.get("type"), event.get("object") or {}
    if kind not in ("MODIFIED", "DELETED", None) or not namespace:
        return
    uid = ((child.get("metadata") or {}).get("uid") or "")[:8]
    signature = f"gone {uid}" if kind == "DELETED" else child_signature(child)
    if memo.get("signature") == signature:
        return
    try:
        k8s.annotate_training_run(namespace, labels[RUN_LABEL], {CHILDREN_ANNOTATION: signature})
    except k8s.ApiError as exc:
        log.warning("could not wake %s/%s after a child's change: %s", namespace, labels.get(RUN_LABEL), exc)
        return
    memo["signature"] = signature


def _active(status: kopf.Status, **_: Any) -> bool:
    """Runs that have not ended: with children, or whose create handler waits for a retry.

    kopf evaluates this only when an event arrives, so it must not depend on time: a run whose
    events stopped still needs its timer. The price is kopf's finalizer on each run (one write).
    """
    status = status or {}
    if is_terminal(status.get("conditions")) or status.get("state") == "Suspended":
        return False
    if not (status.get("jobName") or status.get("rayClusterName")):  # nothing created yet: only when a
        return bool((status.get("kopf") or {}).get("progress"))  # handler failed and waits for a retry
    return True


def needs_a_look(status: dict[str, Any], job: dict[str, Any] | None, ray_cluster: dict[str, Any] | None,
                 now: str) -> bool:
    """Whether the timer should wake the reconcile: only when no child's event will."""
    if not (status.get("jobName") or status.get("rayClusterName")):
        return True  # a create whose retry was lost
    if status.get("rayClusterName") and not status.get("jobName"):
        return ray_cluster is None or not is_ready(ray_cluster)  # the ready timeout, a lost event
    if job is None:
        return True  # gone, or a lost event
    ended = any(c.get("type") in ("Complete", "Failed", "SuccessCriteriaMet") and c.get("status") == "True"
                for c in (job.get("status") or {}).get("conditions") or [])
    return ended or may_be_stuck(job, now)  # a lost event; a pod that never starts


@kopf.timer(*RESOURCE, interval=SETTINGS.timer_interval, initial_delay=SETTINGS.timer_interval, when=_active)
def check(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, run_jobs: kopf.Index,
          run_ray_clusters: kopf.Index, **_: Any) -> None:
    """The safety net: wake the reconcile of a run that has not ended when its children cannot."""
    now = now_iso()
    job, ray_cluster = _one(run_jobs, (namespace, name)), _one(run_ray_clusters, (namespace, name))
    if needs_a_look(dict(body.get("status") or {}), job, ray_cluster, now):
        patch.metadata.annotations[CHILDREN_ANNOTATION] = f"checked {now}"
