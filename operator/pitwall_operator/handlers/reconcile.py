"""One idempotent, level-triggered reconcile of a TrainingRun: parse, ensure children, fold status.

Called by the create/resume/update handlers and by the timer alike, so an operator restart, a
lost event or a conflict all converge to the same place: deterministic child names make create
idempotent (409 = already there), and terminal states are never left.

Runs of one TrainingRun are serialised by a lock, and each starts from the freshest status
(a body that shows our last status write, else a GET), so two triggers (a Job event and the
timer) never write stale conditions over each other or post an Event twice.

A kopf handler's status write rides on kopf's own patch (one PATCH after the handler, with
kopf's bookkeeping) instead of a PATCH of its own: creating a run costs the Job's POST and that
one PATCH. Until that patch is visible, other triggers wait for it (or retry), never write over it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from pitwall_api import SpecError, is_terminal, parse_training_run_spec

from pitwall_operator import alerts, k8s, metrics
from pitwall_operator.builders import alerts as payloads
from pitwall_operator.builders import status as st
from pitwall_operator.builders.configmap import SPEC_KEY, build_spec_configmap
from pitwall_operator.builders.events import build_event
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
from pitwall_operator.builders.retrain import parse_time
from pitwall_operator.builders.trainer_access import build_promotion_lease, build_trainer_access
from pitwall_operator.config import Settings

log = logging.getLogger(__name__)
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()
# Events go out in the background, in order: a slow API never holds a kopf worker for an Event.
_events = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events")
# Creation first: while runs are being created (a burst: creations in flight, or one ended less
# than CREATION_QUIET ago), observation work (Job events, Events) waits a little, so a burst of
# finishing Jobs never slows down starting new ones; Job events that pile up meanwhile are
# folded into one reconcile per run.
_creating = 0
_last_creation = 0.0  # time.monotonic() when the last creation ended
_creating_cond = threading.Condition()
CREATION_PRIORITY_WAIT = 2.0  # seconds at most; observation is never starved for long
CREATION_QUIET = 0.25  # seconds without a creation that end a burst


class creating:  # noqa: N801 - used as `with creating():`
    """Mark a creation in flight (the create handler)."""

    def __enter__(self) -> None:
        global _creating
        with _creating_cond:
            _creating += 1

    def __exit__(self, *exc: object) -> None:
        global _creating, _last_creation
        with _creating_cond:
            _creating -= 1
            _last_creation = time.monotonic()
            _creating_cond.notify_all()


def yield_to_creations() -> None:
    """Called from background threads only (never a kopf handler): wait while a burst of
    creations goes on, CREATION_PRIORITY_WAIT at most."""
    deadline = time.monotonic() + CREATION_PRIORITY_WAIT
    with _creating_cond:
        while True:
            now = time.monotonic()
            quiet = _last_creation + CREATION_QUIET - now
            if (_creating == 0 and quiet <= 0) or now >= deadline:
                return
            _creating_cond.wait(min(deadline - now, quiet if _creating == 0 else deadline - now))


def _post_event(event: dict[str, Any]) -> None:
    yield_to_creations()
    k8s.post_event(event)


@dataclass
class Result:
    state: str
    patch: dict[str, Any] = field(default_factory=dict)  # status keys written (None deleted)
    announce: Callable[[], None] | None = None  # Events/alerts, run once the patch is written (or handed to kopf)


@dataclass(frozen=True)
class Written:
    """Our last status write to a run: the keys written (None = deleted); `deferred` while it
    waits in kopf's patch, which kopf sends only after the handler returned."""

    patch: dict[str, Any]
    deferred: bool = False
    at: float = field(default_factory=time.monotonic)

    def lost(self) -> bool:
        """A deferred write kopf never sent (its patch failed): after a while it is given up, so
        the run goes on from what the server has instead of waiting for it for ever."""
        return self.deferred and time.monotonic() - self.at > DEFERRED_LOST

    def shown_by(self, body: dict[str, Any]) -> bool:
        """Whether `body` is at least as new as this write (content, not resourceVersion: kopf
        writes its own bookkeeping after ours, so the newest body never has our version)."""
        status = body.get("status") or {}
        return all(status.get(k) == v if v is not None else k not in status for k, v in self.patch.items())


_written: dict[str, Written] = {}  # "namespace/name" -> our last status write
_seen: dict[str, dict[str, Any]] = {}  # "namespace/name" -> newest body from the watch
_seen_cond = threading.Condition()
DEFERRED_WAIT = 5.0  # seconds a background trigger waits for kopf to send a handler's status write
DEFERRED_LOST = 15.0  # seconds after which a deferred write that never showed up is given up
WATCH_WAIT = 1.0  # seconds it waits for the watch to show a write of its own, before a GET


def remember(kind: str | None, body: dict[str, Any]) -> None:
    meta = body.get("metadata") or {}
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    with _seen_cond:
        if kind == "DELETED":
            _seen.pop(key, None)
        elif meta.get("name"):
            _seen[key] = body
        _seen_cond.notify_all()


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks[key]


def forget(namespace: str, name: str, uid: str) -> None:
    key = f"{namespace}/{name}"
    with _locks_guard:
        _locks.pop(key, None)
        _written.pop(key, None)
        _seen.pop(key, None)
    metrics.observe_state(uid, None)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reconcile(
    namespace: str,
    name: str,
    settings: Settings,
    *,
    body: dict[str, Any] | None = None,
    job: dict[str, Any] | None = None,
    patch: Any = None,
) -> Result:
    """Bring one run's children and status in line with its spec.

    `body`: the run as kopf delivered it, else the newest the watch delivered (read again when
    it does not show our last status write, or when absent); `job`: the Job as a watch event
    just delivered it (saves a GET); `patch`: kopf's patch object of a kopf handler, which then
    carries the status write (kopf sends it after the handler, with its own bookkeeping).
    """
    key = f"{namespace}/{name}"
    with _lock_for(key):
        body = _fresh_body(key, namespace, name, body)
        if body is None:
            return Result("Gone")
        result = _reconcile(body, settings, job)
        if result.patch:
            if patch is not None:
                for k, v in result.patch.items():
                    patch.status[k] = v
                _written[key] = Written(result.patch, deferred=True)
            else:
                k8s.patch_status(namespace, name, result.patch)
                _written[key] = Written(result.patch)
            if result.announce is not None:
                result.announce()
    metrics.observe_state(body["metadata"].get("uid") or key, result.state)
    return result


def _fresh_body(key: str, namespace: str, name: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
    """A body that shows our last status write: the given one, the watch's newest, else a GET.

    A write still waiting in kopf's patch is waited for (briefly; background triggers only, a
    kopf handler's body always shows its predecessors' patches) and never written over.
    """
    last = _written.get(key)
    if body is not None and (last is None or last.shown_by(body)):
        return body
    # A background trigger: the watch brings our write soon, and waiting is cheaper than a GET. A
    # kopf handler never waits (the watch events of its own run queue behind it).
    background = body is None
    with _seen_cond:
        body = _seen.get(key)
        if background and last is not None and not (body is not None and last.shown_by(body)):
            _seen_cond.wait_for(lambda: key not in _seen or last.shown_by(_seen[key]),
                                timeout=DEFERRED_WAIT if last.deferred else WATCH_WAIT)
            body = _seen.get(key)
    if body is not None and (last is None or last.shown_by(body)):
        return body
    body = k8s.get_training_run(namespace, name)
    if body is not None and last is not None and last.deferred and not last.shown_by(body):
        if last.lost():
            log.warning("the status write of %s by an earlier handler never arrived; going on from the server's", key)
            _written.pop(key, None)
            return body
        raise k8s.ApiError(409, f"the status write of {key} by the last handler is not visible yet")
    return body


def report_error(namespace: str, name: str, body: dict[str, Any] | None, message: str) -> None:
    """Make an unexpected failure visible on the run (`kubectl describe`): a Warning Event."""
    meta = (body or {}).get("metadata") or {"name": name, "namespace": namespace}
    event = build_event({**meta, "namespace": namespace}, "Warning", "ReconcileError", message, now_iso())
    _events.submit(_post_event, event)


def _started_spec(namespace: str, name: str, uid: str) -> dict[str, Any] | None:
    """The spec this run's children were created with (its `<run>-spec` ConfigMap), if any."""
    configmap = k8s.get("v1", "ConfigMap", namespace, spec_configmap_name(name))
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


def _reconcile(body: dict[str, Any], settings: Settings, seen_job: dict[str, Any] | None = None) -> Result:
    meta = body["metadata"]
    name, namespace, generation = meta["name"], meta.get("namespace") or "default", meta.get("generation")
    if meta.get("deletionTimestamp"):  # going away: children follow by owner references
        return Result((body.get("status") or {}).get("state") or "Pending")
    original = {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}
    status = original
    now = now_iso()
    if is_terminal(status.get("conditions")):
        if not _revalidate(status, generation):
            return Result(status.get("state") or "Failed")
        status = {k: v for k, v in status.items() if k not in ("conditions", "completionTime", "state")}
    try:
        spec = parse_training_run_spec(body.get("spec"), name).to_dict()
    except SpecError as exc:
        started = _started_spec(namespace, name, meta.get("uid") or "") if status.get("jobName") else None
        if started is None:
            outcome = st.validation_failed(status, generation, exc.messages, now)
            return _finish(body, original, outcome, settings, body.get("spec") or {})
        # A running run keeps the spec its Job started with: failing it would hide the result it
        # is about to produce. The rejected update is said on the run as a Warning Event.
        if generation != status.get("observedGeneration"):
            message = "spec update ignored, it is not valid: " + "; ".join(exc.messages)
            event = build_event({**meta, "namespace": namespace}, "Warning", "InvalidSpecUpdate",
                                message + "; the running Job keeps the spec it started with", now)
            _events.submit(_post_event, event)
        spec = started
    run = RunRef.from_body(body)

    if spec.get("suspend"):
        if status.get("state") != "Suspended":  # already stopped: the timer's ticks cost nothing
            _delete_children(run)
        return _finish(body, original, st.suspended(status, generation, now), settings, spec)

    try:
        return _ensure_children(body, original, status, spec, run, settings, seen_job, now)
    except k8s.StaleChild as exc:
        if _remove_stale(run, exc.existing):
            raise  # retried (kopf's delay) once the predecessor's object is gone
        message = f"{exc}: it was not made by the operator for this run; delete or rename it"
        return _finish(body, original, st.child_refused(status, generation, message, now), settings, spec)
    except k8s.ApiError as exc:
        if exc.status not in REFUSED:
            raise
        # The server will refuse the same object every time: fail once, saying why, not every 30 s.
        _delete_children(run)
        return _finish(body, original, st.child_refused(status, generation, str(exc), now), settings, spec)


REFUSED = (400, 422)  # a child the API server rejects as invalid: retrying cannot help


def _remove_stale(run: RunRef, existing: dict[str, Any]) -> bool:
    """Delete a predecessor's child of the same name (the operator made it for an earlier run of
    this name: its labels say so); False for anything else, which is never touched."""
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") != "pitwall-operator" or labels.get(RUN_LABEL) != run.name:
        return False
    meta = existing["metadata"]
    log.info("removing %s %s/%s of a previous run of the same name", existing["kind"], run.namespace, meta["name"])
    k8s.delete(existing["apiVersion"], existing["kind"], run.namespace, meta["name"])
    return True


def _ours(obj: dict[str, Any] | None, run: RunRef) -> dict[str, Any] | None:
    """The object if this run owns it; a predecessor's (same name, other uid) or a forged one is not."""
    return obj if obj is not None and k8s.owned_by(obj, run.uid) else None


def _ensure_access(run: RunRef, spec: dict[str, Any], settings: Settings) -> None:
    """The namespace's promotion Lease and the run's own ServiceAccount, Role and RoleBinding,
    before any pod that uses them."""
    for obj in [build_promotion_lease(run.namespace), *build_trainer_access(run, spec, settings)]:
        k8s.create(obj)


def _ensure_children(body: dict[str, Any], original: dict[str, Any], status: dict[str, Any], spec: dict[str, Any],
                     run: RunRef, settings: Settings, seen_job: dict[str, Any] | None, now: str) -> Result:
    """Create what is missing (idempotent), then fold the Job's state into the status."""
    name, namespace, generation = run.name, run.namespace, body["metadata"].get("generation")
    extra_env: dict[str, Any] = {}
    ray = ray_settings(spec)
    if ray:
        cluster = None
        if status.get("rayClusterName") and status.get("state") != "Suspended":
            cluster = _ours(k8s.get("ray.io/v1", "RayCluster", namespace, ray_cluster_name(name)), run)
        if cluster is None:
            _ensure_access(run, spec, settings)
            k8s.create(build_ray_token_secret(run, secrets.token_hex(32)), read_back=False)
            k8s.create(build_network_policy(run))
            cluster, _ = k8s.create(build_ray_cluster(run, spec, settings))
        if not is_ready(cluster):
            if _age(status.get("startTime"), now) >= settings.ray_ready_timeout:
                outcome = st.ray_not_ready(status, generation, cluster, settings.ray_ready_timeout, now)
                return _end(body, original, outcome, settings, spec, run)
            outcome = st.created(status, generation, now, job_name=None,
                                 ray_cluster_name=ray_cluster_name(name), waiting_for_ray=True)
            return _finish(body, original, outcome, settings, spec)
        extra_env = driver_env(run, cluster)

    first = st.created(status, generation, now, job_name=job_name(name),
                       ray_cluster_name=ray_cluster_name(name) if ray else None)
    job: dict[str, Any] | None = None
    if status.get("jobName") and status.get("state") != "Suspended":  # seen before: it must still be there
        job = _ours(seen_job, run) or _ours(k8s.get("batch/v1", "Job", namespace, job_name(name)), run)
        if job is None:  # gone: the trainer's own report, if it reached the status, still stands
            return _end(body, original, st.job_lost(status, generation, job_name(name), now), settings, spec, run)
    if job is None:
        component = "tuning-driver" if ray else "trainer"
        _ensure_access(run, spec, settings)
        k8s.create(build_spec_configmap(run, spec))  # before the Job: its pod mounts it
        job, created = k8s.create(build_job(run, spec, settings, extra_env=extra_env, component=component))
        if created:
            metrics.job_created(body["metadata"].get("creationTimestamp"))
    if (job.get("metadata") or {}).get("deletionTimestamp"):  # the pre-suspension Job is still going away
        return _finish(body, original, first, settings, spec)
    second = st.observe(first.status, generation, job, _pods_if_finished(namespace, job), now)
    outcome = st.Outcome(second.status, first.transitions + second.transitions,
                         second.failure, second.regression, second.promoted)
    if outcome.state not in ("Succeeded", "Failed") and _may_be_stuck(job, now):
        waiting = st.pod_waiting(job, k8s.list_job_pods(namespace, job["metadata"]["name"]))
        if waiting is not None:
            outcome = st.pod_not_starting(status, outcome, waiting, _age(waiting.since, now),
                                          settings.pod_start_timeout, generation, now)
            if outcome.state == "Failed":
                _delete_children(run)  # else its pod would wait for ever
    return _end(body, original, outcome, settings, spec, run)


POD_CHECK_GRACE = 10.0  # seconds a new Job's pods get before the operator looks at why they wait


def _age(iso: str | None, now: str) -> float:
    """Seconds from `iso` to `now` (0 when unknown)."""
    then, current = parse_time(iso), parse_time(now)
    return (current - then).total_seconds() if then and current else 0.0


def _may_be_stuck(job: dict[str, Any], now: str) -> bool:
    """An unsuspended Job past the grace period with a pod that is not ready, or with no pod: only
    then are its pods read (one request), so a healthy run costs nothing more."""
    counts = job.get("status") or {}
    if (job.get("spec") or {}).get("suspend") or _age(job["metadata"].get("creationTimestamp"), now) < POD_CHECK_GRACE:
        return False
    active, ready = int(counts.get("active") or 0), int(counts.get("ready") or 0)
    nothing = not any(int(counts.get(k) or 0) for k in ("active", "failed", "succeeded"))
    return active > ready or nothing


def _end(body: dict, original: dict, outcome: st.Outcome, settings: Settings, spec: dict, run: RunRef) -> Result:
    """_finish, and once the run has ended its RayCluster goes (whichever way it ended)."""
    if outcome.state in ("Succeeded", "Failed") and ray_settings(spec):
        k8s.delete("ray.io/v1", "RayCluster", run.namespace, ray_cluster_name(run.name))
    return _finish(body, original, outcome, settings, spec)


def _pods_if_finished(namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Pods are read only once the Job ended: their termination message is the result."""
    conditions = (job.get("status") or {}).get("conditions") or []
    ended = any(c.get("type") in ("Complete", "Failed", "SuccessCriteriaMet") and c.get("status") == "True"
                for c in conditions)
    return k8s.list_job_pods(namespace, job["metadata"]["name"]) if ended else []


def _delete_children(run: RunRef) -> None:
    """Stop the run's pods; its spec ConfigMap goes too, so a spec edited meanwhile is the one
    that starts again (the access objects stay: they hold no state)."""
    k8s.delete("batch/v1", "Job", run.namespace, job_name(run.name))
    k8s.delete("ray.io/v1", "RayCluster", run.namespace, ray_cluster_name(run.name))
    k8s.delete("v1", "ConfigMap", run.namespace, spec_configmap_name(run.name))


def delete_children(body: dict[str, Any]) -> None:
    """A run being deleted: stop its children now (garbage collection would, a little later)."""
    _delete_children(RunRef.from_body(body))


def _finish(body: dict, original: dict, outcome: st.Outcome, settings: Settings, spec: dict) -> Result:
    """The status patch (only what changed); Events and alerts go out once it is written."""
    patch = st.status_patch(original, outcome.status)
    if not patch:
        return Result(outcome.state)
    return Result(outcome.state, patch, lambda: _announce(body["metadata"], outcome, settings, spec))


def _announce(meta: dict, outcome: st.Outcome, settings: Settings, spec: dict) -> None:
    """Events for transitions, Slack for failures and regressions, counters."""
    namespace, name = meta.get("namespace") or "default", meta["name"]
    now = now_iso()
    for transition in outcome.transitions:
        event = build_event(meta, transition.type, transition.reason, transition.message, now, settings.instance)
        _events.submit(_post_event, event)

    def alert(kind: str, payload: dict[str, Any]) -> None:
        """Slack, when the run asks for this kind; a Warning Event on the run when it cannot be sent."""
        def warn(message: str) -> None:
            _events.submit(_post_event, build_event(meta, "Warning", "AlertNotSent", message, now_iso(),
                                                    settings.instance))
        alerts.send(namespace, spec, kind, payload, on_problem=warn)

    if outcome.promoted:
        metrics.PROMOTIONS.inc()
    if outcome.failure:
        job = outcome.status.get("jobName") or name
        alert("Failed", payloads.failure_payload(job, outcome.failure["type"], outcome.failure["message"],
                                                 f"{namespace}/{name}"))
    if outcome.state == "Succeeded":
        _success_alerts(namespace, name, outcome.status, spec, alert)
    if outcome.regression:
        metrics.REGRESSIONS.inc()
        _regression_alert(namespace, name, outcome.regression, spec, alert)


def _regression_alert(namespace: str, name: str, reg: dict[str, Any], spec: dict[str, Any],
                      alert: Callable[[str, dict[str, Any]], None]) -> None:
    try:
        payload = payloads.regression_payload(str(spec.get("model", name)), str(reg.get("metric", "metric")),
                                              float(reg["previous"]), float(reg["new"]), f"{namespace}/{name}")
    except (KeyError, TypeError, ValueError):
        log.warning("regression record without numbers: %r", reg)
        return
    alert("Regression", payload)


def _success_alerts(namespace: str, name: str, status: dict[str, Any], spec: dict[str, Any],
                    alert: Callable[[str, dict[str, Any]], None]) -> None:
    """Opt-in alerts (notifications.events Succeeded / Promoted)."""
    model = str(spec.get("model", name))
    mlflow = status.get("mlflow") or {}
    job = status.get("jobName") or name
    alert("Succeeded", payloads.succeeded_payload(
        job, model, mlflow.get("modelVersion"), status.get("metrics") or {}, f"{namespace}/{name}"))
    promotion = status.get("promotion") or {}
    if promotion.get("promoted"):
        alert("Promoted", payloads.promoted_payload(
            model, promotion.get("alias", "champion"), promotion.get("version") or mlflow.get("modelVersion"),
            promotion.get("previousVersion"), promotion.get("reason") or ""))
