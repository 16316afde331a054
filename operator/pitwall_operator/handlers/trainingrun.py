"""Kopf handlers for TrainingRun: every path is one reconcile in kopf's queue for that run.

Kopf runs the change handlers (create, resume, update) of one object one at a time, each with a
body that shows the previous one's status write. So every reconcile runs there:
- a spec edit or a new run arrives as create/update;
- a child's change (its Job started, ended or went; its RayCluster became ready) is written by
  `on_child_event` into the run's `pitwall.io/children` annotation, which arrives as an update;
- a periodic resync (the safety net, like controller-runtime's) writes the same annotation on a
  run whose status and children disagree: a pod that never starts, a slow RayCluster, a lost
  event, or a pass whose status kopf could not write (its PATCH refused, the API server down).
The children themselves are read from kopf indexes fed by the same watches (no GET per pass).
"""

from __future__ import annotations

import asyncio
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
from pitwall_operator.handlers.reconcile import (
    Result,
    age_seconds,
    delete_children,
    may_be_stuck,
    now_iso,
    reconcile,
)

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


def needs_a_look(status: dict[str, Any], job: dict[str, Any] | None, ray_cluster: dict[str, Any] | None,
                 now: str) -> bool:
    """Whether a run that has not ended should be reconciled although no event asked for it: its
    status may have missed a write (kopf's PATCH refused, the API server down) or an event was lost."""
    if not (status.get("jobName") or status.get("rayClusterName")):
        return True  # a create that never took
    if status.get("rayClusterName") and not status.get("jobName"):
        return ray_cluster is None or not is_ready(ray_cluster)  # the ready timeout, a lost event
    if job is None:
        return True  # gone, or a lost event
    ended = any(c.get("type") in ("Complete", "Failed", "SuccessCriteriaMet") and c.get("status") == "True"
                for c in (job.get("status") or {}).get("conditions") or [])
    active = int((job.get("status") or {}).get("active") or 0) > 0
    return ended or may_be_stuck(job, now) or (active and status.get("state") != "Running")


def runs_to_wake(runs: list[dict[str, Any]], jobs: list[dict[str, Any]], ray_clusters: list[dict[str, Any]],
                 now: str, min_age: float) -> list[tuple[str, str]]:
    """(namespace, name) of every run, not ended nor suspended nor being deleted and older than
    `min_age` seconds, whose children and status say it needs a look."""
    def by_run(children: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {((c["metadata"].get("namespace") or "default"), (c["metadata"].get("labels") or {}).get(RUN_LABEL, "")): c
                for c in children}

    job_of, cluster_of = by_run(jobs), by_run(ray_clusters)
    out = []
    for run in runs:
        meta, status = run["metadata"], run.get("status") or {}
        key = (meta.get("namespace") or "default", meta["name"])
        if meta.get("deletionTimestamp") or is_terminal(status.get("conditions")) or status.get("state") == "Suspended":
            continue
        if age_seconds(meta.get("creationTimestamp"), now) < min_age:
            continue  # its create handler is (most likely) still at work
        if needs_a_look(status, job_of.get(key), cluster_of.get(key), now):
            out.append(key)
    return out


def resync(now: str | None = None) -> list[tuple[str, str]]:
    """One pass of the safety net: list runs and children, wake those that need a look."""
    now = now or now_iso()
    namespaces: list[str | None] = list(SETTINGS.namespaces) or [None]
    runs, jobs, clusters = [], [], []
    for namespace in namespaces:
        runs += k8s.list_objects(f"{GROUP}/{VERSION}", "TrainingRun", namespace, "")
        jobs += k8s.list_objects("batch/v1", "Job", namespace, RUN_LABEL)
        try:
            clusters += k8s.list_objects("ray.io/v1", "RayCluster", namespace, RUN_LABEL)
        except k8s.ApiError as exc:
            if exc.status != 404:  # no KubeRay: no RayClusters
                raise
    woken = runs_to_wake(runs, jobs, clusters, now, min_age=SETTINGS.timer_interval)
    for namespace, name in woken:
        k8s.annotate_training_run(namespace, name, {CHILDREN_ANNOTATION: f"checked {now}"})
    return woken


async def resync_forever(interval: float) -> None:
    """Like controller-runtime's periodic resync: every `interval` seconds, whatever happened to
    events and to kopf's own writes, a run whose status and children disagree is woken."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            woken = await loop.run_in_executor(None, resync)
            if woken:
                log.info("resync woke %d run(s): %s", len(woken), ", ".join(f"{ns}/{n}" for ns, n in woken[:10]))
        except Exception as exc:  # noqa: BLE001 - the next pass tries again
            log.warning("resync failed, trying again in %.0fs: %s", interval, exc)


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **_: Any) -> None:
    memo["resync"] = asyncio.get_running_loop().create_task(resync_forever(max(1.0, SETTINGS.timer_interval)))


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("resync")
    if task is not None:
        task.cancel()
