"""Thin kopf handlers for TrainingRun: every path ends in the same idempotent reconcile."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from pitwall_api import is_terminal

from pitwall_operator import k8s, metrics
from pitwall_operator.builders.meta import RUN_LABEL
from pitwall_operator.builders.raycluster import is_ready
from pitwall_operator.config import GROUP, PLURAL, VERSION, Settings, apply_framework_settings
from pitwall_operator.handlers import reconcile as rc

log = logging.getLogger(__name__)
SETTINGS = Settings.from_env()
RESOURCE = (GROUP, VERSION, PLURAL)


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


def _run(handler: str, namespace: str, name: str, body: dict[str, Any] | None = None,
         job: dict[str, Any] | None = None, patch: kopf.Patch | None = None) -> None:
    started = time.perf_counter()
    try:
        rc.reconcile(namespace, name, SETTINGS, body=body, job=job, patch=patch)
    except k8s.ApiError as exc:
        metrics.RECONCILE_ERRORS.labels(handler=handler).inc()
        if not exc.retryable:  # refused (403 RBAC, 422 a child the server rejects): say it on the run
            rc.report_error(namespace, name, body, f"the API server refused a request, retrying in 30s: {exc}")
        raise kopf.TemporaryError(f"API error, retrying: {exc}", delay=5 if exc.retryable else 30) from exc
    except Exception as exc:  # a bug or a surprise in one run must not stop the others
        metrics.RECONCILE_ERRORS.labels(handler=handler).inc()
        log.exception("reconcile of %s/%s failed", namespace, name)
        rc.report_error(namespace, name, body, f"{type(exc).__name__}: {exc}")
        raise kopf.TemporaryError(f"reconcile failed, retrying: {exc}", delay=30) from exc
    finally:
        metrics.RECONCILE.labels(handler=handler).observe(time.perf_counter() - started)


# The create/resume/update handlers hand their status write to kopf's `patch`: kopf sends it
# with its own bookkeeping in one PATCH after the handler, instead of two PATCHes.


@kopf.on.create(*RESOURCE)
def on_create(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, **_: Any) -> None:
    with rc.creating():
        _run("create", namespace, name, dict(body), patch=patch)


@kopf.on.resume(*RESOURCE)
def on_resume(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, **_: Any) -> None:
    _run("resume", namespace, name, dict(body), patch=patch)


@kopf.on.update(*RESOURCE, field="spec")
def on_update(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, **_: Any) -> None:
    _run("update", namespace, name, dict(body), patch=patch)


@kopf.on.event(*RESOURCE)
async def remember(event: kopf.RawEvent, **_: Any) -> None:
    """Keep the newest TrainingRun bodies the watch delivered: Job events reconcile from here
    instead of a GET (no API call: this runs on every change of every run)."""
    rc.remember(event.get("type"), event.get("object") or {})


def _active(status: kopf.Status, **_: Any) -> bool:
    """Runs that have not ended: with children, or whose create handler waits for a retry.

    Job events do the prompt work; the timer catches what they cannot: a pod that never starts
    (no Job event ever comes), a slow RayCluster, a lost event, and a create handler whose retry
    was lost (kopf's own patch refused, so no event wakes it). kopf evaluates this only when an
    event arrives, so it must not depend on time: a run whose events stopped still needs its
    timer. The price is kopf's finalizer on each run (one write).
    """
    status = status or {}
    if is_terminal(status.get("conditions")) or status.get("state") == "Suspended":
        return False
    if not (status.get("jobName") or status.get("rayClusterName")):  # nothing created yet: only when a
        return bool((status.get("kopf") or {}).get("progress"))  # handler failed and waits for a retry
    return True


@kopf.timer(*RESOURCE, interval=SETTINGS.timer_interval, initial_delay=SETTINGS.timer_interval, when=_active)
def observe(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Watch the children of a run that has not ended (progress itself is written by the trainer)."""
    _run("timer", namespace, name, dict(body))


_job_seen: dict[str, tuple] = {}  # Job uid -> the part of its status a run's state depends on


def _job_signature(job: dict[str, Any]) -> tuple:
    status = job.get("status") or {}
    ended = tuple(sorted(c.get("type", "") for c in status.get("conditions") or [] if c.get("status") == "True"))
    return (int(status.get("active") or 0) > 0, bool((job.get("spec") or {}).get("suspend")), ended,
            int(status.get("failed") or 0), bool((job.get("metadata") or {}).get("deletionTimestamp")))


_job_pending: dict[str, dict[str, Any] | None] = {}  # "ns/run" -> newest Job body not yet observed


def _observe_job(namespace: str, run: str) -> None:
    """Reconcile a run from the newest state of its Job: events that arrived while this waited
    are folded into one reconcile (a Job that started and finished meanwhile: one status write)."""
    rc.yield_to_creations()  # our own pool's thread, not a kopf worker
    job = _job_pending.pop(f"{namespace}/{run}", None)
    _run("job-event", namespace, run, job=job)
    if job is not None:
        _job_seen[(job.get("metadata") or {}).get("uid", "")] = _job_signature(job)


# Observing Jobs gets its own threads, so a burst of finishing Jobs never delays creating new ones.
_observers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="job-events")


@kopf.on.event("batch", "v1", "jobs", labels={"app.kubernetes.io/managed-by": "pitwall-operator", RUN_LABEL: kopf.PRESENT})
async def on_job_event(event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    """A child Job changed in a way its run's state depends on: reconcile the run now.

    The timer is only a safety net. ADDED is skipped (a new Job has nothing to report; after a
    restart the resume handlers cover every run), and so are changes that do not move the run
    (counters of ready pods, uncounted pods...). Errors are logged, not raised: kopf does not
    retry event handlers, the timer does.
    """
    kind, job = event.get("type"), event.get("object") or {}
    uid = (job.get("metadata") or {}).get("uid", "")
    if kind == "DELETED":
        _job_seen.pop(uid, None)
    elif kind != "MODIFIED" or not namespace or _job_seen.get(uid) == _job_signature(job):
        return
    key = f"{namespace}/{labels[RUN_LABEL]}"
    queued = key in _job_pending
    _job_pending[key] = None if kind == "DELETED" else dict(job)
    if queued:  # an observation of this run is waiting: it takes this newer state
        return
    try:
        await asyncio.get_running_loop().run_in_executor(
            _observers, functools.partial(_observe_job, namespace, labels[RUN_LABEL]))
    except Exception as exc:  # noqa: BLE001 - logged; the timer retries
        log.warning("reconcile after a Job event of %s/%s failed: %s", namespace, labels.get(RUN_LABEL), exc)


def _observe_ray(namespace: str, run: str) -> None:
    rc.yield_to_creations()
    _run("job-event", namespace, run)


@kopf.on.event("ray.io", "v1", "rayclusters",
               labels={"app.kubernetes.io/managed-by": "pitwall-operator", RUN_LABEL: kopf.PRESENT})
async def on_ray_cluster_event(event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    """A child RayCluster became ready (or stopped being): start the driver Job without waiting."""
    cluster = event.get("object") or {}
    uid = (cluster.get("metadata") or {}).get("uid", "")
    signature = ("ray", is_ready(cluster))
    if event.get("type") != "MODIFIED" or not namespace or _job_seen.get(uid) == signature:
        return
    try:
        await asyncio.get_running_loop().run_in_executor(
            _observers, functools.partial(_observe_ray, namespace, labels[RUN_LABEL]))
        _job_seen[uid] = signature
    except Exception as exc:  # noqa: BLE001 - logged; the timer retries
        log.warning("reconcile after a RayCluster event of %s/%s failed: %s", namespace, labels.get(RUN_LABEL), exc)


@kopf.on.delete(*RESOURCE, optional=True)
def on_delete(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Stop the children of a deleted run; owner references let the garbage collector do the rest."""
    try:
        rc.delete_children(dict(body))
    except k8s.ApiError as exc:
        raise kopf.TemporaryError(f"cannot delete children yet: {exc}", delay=5) from exc
    finally:
        rc.forget(namespace, name, body["metadata"].get("uid") or name)
