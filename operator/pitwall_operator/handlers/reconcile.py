"""One idempotent, level-triggered reconcile of a TrainingRun: parse, ensure children, fold status.

Kopf calls it for every change of a run (create, resume, spec update, and the nudges its
children's events leave in an annotation, see handlers/trainingrun.py), one call per run at a
time, with a body that shows the previous call's status write. Deterministic child names make
create idempotent (409 = already there) and terminal states are never left.

The API is reached through a `Cluster` (the k8s module in the operator, a dict-backed fake in unit
tests); the result is the status patch and what to announce, which the handler writes once.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import yaml
from pitwall_api import SpecError, is_terminal, parse_training_run_spec

from pitwall_operator import k8s
from pitwall_operator.builders import status as st
from pitwall_operator.builders.configmap import SPEC_KEY, build_spec_configmap
from pitwall_operator.builders.job import build_job
from pitwall_operator.builders.meta import RUN_LABEL, RunRef, job_name, ray_cluster_name, spec_configmap_name
from pitwall_operator.builders.raycluster import (
    build_network_policy,
    build_ray_cluster,
    build_ray_token_secret,
    driver_env,
    is_ready,
    ray_settings,
)
from pitwall_operator.builders.trainer_access import build_promotion_lease, build_trainer_access
from pitwall_operator.config import Settings
from pitwall_operator.times import parse_time

log = logging.getLogger(__name__)


class Cluster(Protocol):
    """The API calls a reconcile makes (pitwall_operator.k8s implements them)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create(self, obj: dict[str, Any], *, read_back: bool = True) -> tuple[dict[str, Any], bool]: ...
    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool: ...
    def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]: ...


@dataclass
class Result:
    """What one reconcile decided: the state, the status keys to write (None deletes) and what
    to announce once written (Events, alerts and counters: see handlers/trainingrun.py)."""

    state: str
    patch: dict[str, Any] = field(default_factory=dict)
    outcome: st.Outcome | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) Events besides transitions
    job_created: bool = False


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reconcile(body: dict[str, Any], settings: Settings, cluster: Cluster = k8s, *,
              job: dict[str, Any] | None = None, ray_cluster: dict[str, Any] | None = None,
              now: str | None = None) -> Result:
    """Bring one run's children and status in line with its spec.

    `job` / `ray_cluster`: the children as the operator's watch last saw them (saves a GET; a
    child missing there is read from the API, as the watch may not have shown it yet).
    """
    meta = body["metadata"]
    name, namespace, generation = meta["name"], meta.get("namespace") or "default", meta.get("generation")
    if meta.get("deletionTimestamp"):  # going away: children follow by owner references
        return Result((body.get("status") or {}).get("state") or "Pending")
    original = {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}
    status = original
    now = now or now_iso()
    if is_terminal(status.get("conditions")):
        if not _revalidate(status, generation):
            return Result(status.get("state") or "Failed")
        status = {k: v for k, v in status.items() if k not in ("conditions", "completionTime", "state")}
    warnings: list[tuple[str, str]] = []
    try:
        spec = parse_training_run_spec(body.get("spec"), name).to_dict()
    except SpecError as exc:
        started = _started_spec(cluster, namespace, name, meta.get("uid") or "") if status.get("jobName") else None
        if started is None:
            outcome = st.validation_failed(status, generation, exc.messages, now)
            return _finish(original, outcome, body.get("spec") or {})
        # A running run keeps the spec its Job started with: failing it would hide the result it
        # is about to produce. The rejected update is said on the run as a Warning Event.
        if generation != status.get("observedGeneration"):
            warnings.append(("InvalidSpecUpdate", "spec update ignored, it is not valid: " + "; ".join(exc.messages)
                             + "; the running Job keeps the spec it started with"))
        spec = started
    run = RunRef.from_body(body)
    if spec.get("suspend"):
        if status.get("state") != "Suspended":  # already stopped: the timer's ticks cost nothing
            _delete_children(cluster, run)
        return _finish(original, st.suspended(status, generation, now), spec, warnings)
    try:
        return _ensure_children(cluster, body, original, status, spec, run, settings, job, ray_cluster, now,
                                warnings)
    except k8s.StaleChild as exc:
        if _remove_stale(cluster, run, exc.existing):
            raise  # retried (kopf's delay) once the predecessor's object is gone
        message = f"{exc}: it was not made by the operator for this run; delete or rename it"
        return _finish(original, st.child_refused(status, generation, message, now), spec, warnings)
    except k8s.ApiError as exc:
        if exc.status not in REFUSED:
            raise
        # The server will refuse the same object every time: fail once, saying why, not every 30 s.
        _delete_children(cluster, run)
        return _finish(original, st.child_refused(status, generation, str(exc), now), spec, warnings)


REFUSED = (400, 422)  # a child the API server rejects as invalid: retrying cannot help


def _started_spec(cluster: Cluster, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
    """The spec this run's children were created with (its `<run>-spec` ConfigMap), if any."""
    configmap = cluster.get("v1", "ConfigMap", namespace, spec_configmap_name(name))
    if not k8s.owned_by(configmap, uid):  # a predecessor's, not yet garbage-collected
        return None
    text = ((configmap or {}).get("data") or {}).get(SPEC_KEY)
    if not text:
        return None
    try:
        return parse_training_run_spec(yaml.safe_load(text), name).to_dict()
    except (SpecError, yaml.YAMLError):
        return None


def _revalidate(status: dict[str, Any], generation: int | None) -> bool:
    """A spec fixed after ValidationFailed gets a new chance (nothing was ever created for it)."""
    failed = next((c for c in status.get("conditions") or [] if c.get("type") == "Failed"), None)
    return bool(failed and failed.get("reason") == "ValidationFailed" and generation != status.get("observedGeneration"))


def _remove_stale(cluster: Cluster, run: RunRef, existing: dict[str, Any]) -> bool:
    """Delete a predecessor's child of the same name (the operator made it for an earlier run of
    this name: its labels say so); False for anything else, which is never touched."""
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") != "pitwall-operator" or labels.get(RUN_LABEL) != run.name:
        return False
    meta = existing["metadata"]
    log.info("removing %s %s/%s of a previous run of the same name", existing["kind"], run.namespace, meta["name"])
    cluster.delete(existing["apiVersion"], existing["kind"], run.namespace, meta["name"])
    return True


def _ours(obj: dict[str, Any] | None, run: RunRef) -> dict[str, Any] | None:
    """The object if this run owns it; a predecessor's (same name, other uid) or a forged one is not."""
    return obj if obj is not None and k8s.owned_by(obj, run.uid) else None


def _child(cluster: Cluster, seen: dict[str, Any] | None, run: RunRef, api_version: str, kind: str,
           name: str) -> dict[str, Any] | None:
    """This run's child as the watch saw it, else as the API has it (the watch may lag a create)."""
    return _ours(seen, run) or _ours(cluster.get(api_version, kind, run.namespace, name), run)


def _ensure_access(cluster: Cluster, run: RunRef, spec: dict[str, Any], settings: Settings) -> None:
    """The namespace's promotion Lease and the run's own ServiceAccount, Role and RoleBinding,
    before any pod that uses them."""
    cluster.create(build_promotion_lease(run.namespace), read_back=False)  # one per namespace, no owner
    for obj in build_trainer_access(run, spec, settings):
        cluster.create(obj)


def _ensure_children(cluster: Cluster, body: dict[str, Any], original: dict[str, Any], status: dict[str, Any],
                     spec: dict[str, Any], run: RunRef, settings: Settings, seen_job: dict[str, Any] | None,
                     seen_ray: dict[str, Any] | None, now: str, warnings: list[tuple[str, str]]) -> Result:
    """Create what is missing (idempotent), then fold the Job's state into the status."""
    name, namespace, generation = run.name, run.namespace, body["metadata"].get("generation")
    extra_env: dict[str, Any] = {}
    ray = ray_settings(spec)
    if ray:
        ray_cluster = None
        if status.get("rayClusterName") and status.get("state") != "Suspended":
            ray_cluster = _child(cluster, seen_ray, run, "ray.io/v1", "RayCluster", ray_cluster_name(name))
        if ray_cluster is None:
            _ensure_access(cluster, run, spec, settings)
            cluster.create(build_ray_token_secret(run, secrets.token_hex(32)), read_back=False)
            cluster.create(build_network_policy(run))
            ray_cluster, _ = cluster.create(build_ray_cluster(run, spec, settings))
        if not is_ready(ray_cluster):
            if age_seconds(status.get("startTime"), now) >= settings.ray_ready_timeout:
                outcome = st.ray_not_ready(status, generation, ray_cluster, settings.ray_ready_timeout, now)
                return _end(cluster, original, outcome, spec, run, warnings)
            outcome = st.created(status, generation, now, job_name=None,
                                 ray_cluster_name=ray_cluster_name(name), waiting_for_ray=True)
            return _finish(original, outcome, spec, warnings)
        extra_env = driver_env(run, ray_cluster)

    first = st.created(status, generation, now, job_name=job_name(name),
                       ray_cluster_name=ray_cluster_name(name) if ray else None)
    job: dict[str, Any] | None = None
    created = False
    if status.get("jobName") and status.get("state") != "Suspended":  # seen before: it must still be there
        job = _child(cluster, seen_job, run, "batch/v1", "Job", job_name(name))
        if job is None:  # gone: the trainer's own report, if it reached the status, still stands
            outcome = st.job_lost(status, generation, job_name(name), now)
            return _end(cluster, original, outcome, spec, run, warnings)
    if job is None:
        component = "tuning-driver" if ray else "trainer"
        _ensure_access(cluster, run, spec, settings)
        cluster.create(build_spec_configmap(run, spec))  # before the Job: its pod mounts it
        job, created = cluster.create(build_job(run, spec, settings, extra_env=extra_env, component=component))
    if (job.get("metadata") or {}).get("deletionTimestamp"):  # the pre-suspension Job is still going away
        return _finish(original, first, spec, warnings, job_created=created)
    second = st.observe(first.status, generation, job, _pods_if_finished(cluster, namespace, job), now)
    outcome = st.Outcome(second.status, first.transitions + second.transitions,
                         second.failure, second.regression, second.promoted)
    if outcome.state not in ("Succeeded", "Failed") and may_be_stuck(job, now):
        waiting = st.pod_waiting(job, cluster.list_job_pods(namespace, job["metadata"]["name"]))
        if waiting is not None:
            outcome = st.pod_not_starting(status, outcome, waiting, age_seconds(waiting.since, now),
                                          settings.pod_start_timeout, generation, now)
            if outcome.state == "Failed":
                _delete_children(cluster, run)  # else its pod would wait for ever
    return _end(cluster, original, outcome, spec, run, warnings, job_created=created)


POD_CHECK_GRACE = 10.0  # seconds a new Job's pods get before the operator looks at why they wait


def age_seconds(iso: str | None, now: str) -> float:
    """Seconds from `iso` to `now` (0 when unknown)."""
    then, current = parse_time(iso), parse_time(now)
    return (current - then).total_seconds() if then and current else 0.0


def may_be_stuck(job: dict[str, Any], now: str) -> bool:
    """An unsuspended Job past the grace period with a pod that is not ready, or with no pod: only
    then are its pods read (one request), so a healthy run costs nothing more."""
    counts = job.get("status") or {}
    if (job.get("spec") or {}).get("suspend") or age_seconds(job["metadata"].get("creationTimestamp"), now) < POD_CHECK_GRACE:
        return False
    active, ready = int(counts.get("active") or 0), int(counts.get("ready") or 0)
    nothing = not any(int(counts.get(k) or 0) for k in ("active", "failed", "succeeded"))
    return active > ready or nothing


def _end(cluster: Cluster, original: dict, outcome: st.Outcome, spec: dict, run: RunRef,
         warnings: list[tuple[str, str]], job_created: bool = False) -> Result:
    """_finish, and once the run has ended its RayCluster goes (whichever way it ended)."""
    if outcome.state in ("Succeeded", "Failed") and ray_settings(spec):
        cluster.delete("ray.io/v1", "RayCluster", run.namespace, ray_cluster_name(run.name))
    return _finish(original, outcome, spec, warnings, job_created=job_created)


def _pods_if_finished(cluster: Cluster, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Pods are read only once the Job ended: their termination message is the result."""
    conditions = (job.get("status") or {}).get("conditions") or []
    ended = any(c.get("type") in ("Complete", "Failed", "SuccessCriteriaMet") and c.get("status") == "True"
                for c in conditions)
    return cluster.list_job_pods(namespace, job["metadata"]["name"]) if ended else []


def _delete_children(cluster: Cluster, run: RunRef) -> None:
    """Stop the run's pods; its spec ConfigMap goes too, so a spec edited meanwhile is the one
    that starts again (the access objects stay: they hold no state)."""
    cluster.delete("batch/v1", "Job", run.namespace, job_name(run.name))
    cluster.delete("ray.io/v1", "RayCluster", run.namespace, ray_cluster_name(run.name))
    cluster.delete("v1", "ConfigMap", run.namespace, spec_configmap_name(run.name))


def delete_children(body: dict[str, Any], cluster: Cluster = k8s) -> None:
    """A run being deleted: stop its children now (garbage collection would, a little later)."""
    _delete_children(cluster, RunRef.from_body(body))


def _finish(original: dict, outcome: st.Outcome, spec: dict, warnings: list[tuple[str, str]] | None = None,
            job_created: bool = False) -> Result:
    """The status patch (only what changed) and what to announce once it is written."""
    return Result(outcome.state, st.status_patch(original, outcome.status), outcome, spec, list(warnings or []),
                  job_created)
