"""Desired TrainingRun status from what is observed: the state machine, as pure functions.

Pending -> Running -> Succeeded | Failed, plus Suspended. Terminal states are sticky: once
Succeeded or Failed is True, `observe` returns the status unchanged. Handlers diff the result
against the current status (`status_patch`) and write only what changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pitwall_api.common import derive_state, get_condition, is_terminal, set_condition
from pitwall_api.redact import redact_text, redact_uri
from pitwall_api.result import TrainerResult

from pitwall_operator.builders.job import CONTAINER

# status keys the operator owns (TRAINER_KEYS belong to the trainer; kopf to kopf)
TRAINER_KEYS = ("progress", "resources")  # the trainer's live reports: never written nor removed here
OPERATOR_KEYS = (
    "state", "conditions", "observedGeneration", "startTime", "completionTime", "jobName",
    "rayClusterName", "attempts", "metrics", "baselines", "bestParams", "mlflow", "promotion",
)
RESULT_KEYS = ("metrics", "baselines", "bestParams", "mlflow", "promotion")
MAX_METRICS = 64
MAX_MESSAGE = 1024
JOB_FAILURE_REASONS = {
    "BackoffLimitExceeded": "BackoffLimitExceeded",
    "DeadlineExceeded": "DeadlineExceeded",
    "PodFailurePolicy": "TrainerFailed",
}


@dataclass
class Termination:
    """The trainer container's last termination: exit code and its JSON result when it wrote one."""

    exit_code: int | None
    reason: str | None
    message: str
    result: dict[str, Any] | None

    @property
    def trainer(self) -> TrainerResult | None:
        """The result as the trainer's TrainerResult (every valid field of it), if it wrote one."""
        return TrainerResult.salvage(self.result)


@dataclass
class Transition:
    """One state change, posted as a Kubernetes Event."""

    reason: str
    message: str
    type: str = "Normal"


@dataclass
class Outcome:
    status: dict[str, Any]
    transitions: list[Transition] = field(default_factory=list)
    failure: dict[str, str] | None = None  # {"type", "message"} when the run just failed
    regression: dict[str, Any] | None = None  # the trainer's regression record, when just succeeded
    promoted: bool | None = None  # set when the run just succeeded

    @property
    def state(self) -> str:
        return self.status.get("state", "Pending")


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """Bounded and with credentials masked: conditions and Events are read by anyone who can get the run."""
    text = redact_text(text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite_numbers(values: Any) -> dict[str, float] | None:
    """A bounded name -> number map; NaN, infinities and non-numbers are dropped."""
    if not isinstance(values, dict):
        return None
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value != value or value in (float("inf"), float("-inf")):
            continue
        out[str(key)] = value
        if len(out) >= MAX_METRICS:
            break
    return out


def parse_termination(pods: list[dict[str, Any]], container: str = CONTAINER) -> Termination | None:
    """The newest terminated trainer container among the Job's pods (retries create new pods)."""
    found: list[tuple[str, Termination]] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != container:
                continue
            term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            if not term:
                continue
            message = term.get("message") or ""
            result = None
            try:
                parsed = json.loads(message) if message.strip().startswith("{") else None
                result = parsed if isinstance(parsed, dict) else None
            except ValueError:
                result = None
            when = term.get("finishedAt") or (pod.get("metadata") or {}).get("creationTimestamp") or ""
            found.append((when, Termination(term.get("exitCode"), term.get("reason"), message, result)))
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]


def _base(current: dict[str, Any], generation: int | None) -> dict[str, Any]:
    desired = {k: current[k] for k in OPERATOR_KEYS if k in current}
    if generation is not None:
        desired["observedGeneration"] = generation
    return desired


def _set(desired: dict, type_: str, status: bool, reason: str, message: str, gen: int | None, now: str) -> None:
    desired["conditions"] = set_condition(desired.get("conditions"), type_, status, reason, _clip(message, 32768), gen, now)


def validation_failed(current: dict[str, Any], generation: int | None, messages: list[str], now: str) -> Outcome:
    """Invalid spec: Failed/ValidationFailed naming each bad field; nothing is created."""
    desired = _base(current, generation)
    message = "; ".join(messages) or "invalid spec"
    _set(desired, "Failed", True, "ValidationFailed", message, generation, now)
    if get_condition(desired.get("conditions"), "Running"):
        _set(desired, "Running", False, "ValidationFailed", "not started: invalid spec", generation, now)
    desired.setdefault("completionTime", now)
    desired["state"] = derive_state(desired["conditions"])
    changed = current.get("state") != "Failed" or _cond_msg(current, "Failed") != _cond_msg(desired, "Failed")
    transitions = [Transition("ValidationFailed", _clip(message), "Warning")] if changed else []
    return Outcome(desired, transitions, failure={"type": "ValidationFailed", "message": message} if changed else None)


def _cond_msg(status: dict[str, Any], type_: str) -> str | None:
    cond = get_condition(status.get("conditions"), type_)
    return cond.get("message") if cond else None


def suspended(current: dict[str, Any], generation: int | None, now: str) -> Outcome:
    """spec.suspend: children stopped, Suspended True, Running False."""
    desired = _base(current, generation)
    was = derive_state(current.get("conditions"))
    _set(desired, "Suspended", True, "Suspended", "spec.suspend is true: children stopped", generation, now)
    if get_condition(desired.get("conditions"), "Running"):
        _set(desired, "Running", False, "Suspended", "suspended", generation, now)
    desired["state"] = derive_state(desired["conditions"])
    transitions = [] if was == "Suspended" else [Transition("Suspended", "children stopped (spec.suspend)")]
    return Outcome(desired, transitions)


def created(
    current: dict[str, Any],
    generation: int | None,
    now: str,
    *,
    job_name: str | None,
    ray_cluster_name: str | None = None,
    waiting_for_ray: bool = False,
) -> Outcome:
    """Children just created (or found): Pending, with names and startTime recorded."""
    desired = _base(current, generation)
    was = derive_state(current.get("conditions"))
    transitions: list[Transition] = []
    if was == "Suspended":
        _set(desired, "Suspended", False, "Resumed", "spec.suspend is false: children started", generation, now)
        transitions.append(Transition("Resumed", "spec.suspend is false: children started again"))
    if ray_cluster_name:
        desired["rayClusterName"] = ray_cluster_name
    if waiting_for_ray:
        reason, message = "WaitingForRayCluster", f"RayCluster {ray_cluster_name} is starting"
    else:
        desired["jobName"] = job_name
        reason, message = "Created", f"Job {job_name} created; waiting for its pod"
    previous = get_condition(desired.get("conditions"), "Running")
    if previous is None or previous.get("reason") not in (reason, "Running", "PodWaiting"):
        _set(desired, "Running", False, reason, message, generation, now)
        transitions.append(Transition(reason, message))
    desired.setdefault("startTime", now)
    desired["state"] = derive_state(desired["conditions"])
    return Outcome(desired, transitions)


def trainer_reported_success(current: dict[str, Any]) -> bool:
    """The trainer's final status report arrived: it writes `promotion` only after a model was
    trained, evaluated and registered (a failure writes at most the figures)."""
    return isinstance(current.get("promotion"), dict) and current["promotion"].get("promoted") is not None


def job_lost(current: dict[str, Any], generation: int | None, job_name: str, now: str) -> Outcome:
    """The Job vanished before it was seen to finish (deleted by hand, by a TTL shorter than our
    observation, or while the operator was down).

    When the trainer's own final report reached the status, that is the result: the run
    Succeeded whatever happened to the Job afterwards. Otherwise fail loudly rather than silently
    train again and register a second version.
    """
    desired = _base(current, generation)
    if trainer_reported_success(current):
        desired["jobName"] = job_name
        return succeeded(current, desired, None, generation, now)
    message = f"Job {job_name} was deleted before it finished; the run is not retried"
    return _failed(desired, "JobDeleted", "JobDeleted", message, generation, now)


def child_refused(current: dict[str, Any], generation: int | None, message: str, now: str) -> Outcome:
    """The API server rejected a child as invalid (400/422): the same request would fail again."""
    desired = _base(current, generation)
    text = f"the API server refused a child of this run: {message}"
    return _failed(desired, "ChildRefused", "ChildRefused", text, generation, now)


# Why a pod is not running yet, and the spec field that fixes it when it does not clear by itself.
POD_WAITING_FIXES = {
    "ErrImagePull": "spec.image or spec.imagePullSecrets",
    "ImagePullBackOff": "spec.image or spec.imagePullSecrets",
    "InvalidImageName": "spec.image",
    "CreateContainerConfigError": "spec.env (a Secret or ConfigMap it names) or spec.serviceAccountName",
    "CreateContainerError": "spec.image or spec.env",
    "Unschedulable": "spec.resources, spec.nodeSelector or spec.tolerations (or the cluster's capacity)",
    "ContainerCreating": "spec.data.source (a volume that cannot be mounted) or spec.imagePullSecrets",
    "NoPodCreated": "spec.serviceAccountName (it must exist), or the namespace's ResourceQuota",
}


TRANSIENT_WAITING = ("Pending", "ContainerCreating", "PodInitializing")


@dataclass(frozen=True)
class PodWaiting:
    """A run's pod that is not running: why, the kubelet's or scheduler's words, and since when."""

    reason: str
    message: str
    since: str  # the pod's (or, with no pod, the Job's) creation time


def pod_waiting(job: dict[str, Any], pods: list[dict[str, Any]]) -> PodWaiting | None:
    """The first pod of an unfinished Job that is not running, or the Job that has no pod."""
    for pod in pods:
        status, created = pod.get("status") or {}, (pod.get("metadata") or {}).get("creationTimestamp") or ""
        if status.get("phase") not in (None, "Pending", "Running") or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return PodWaiting(cond.get("reason") or "Unschedulable", cond.get("message") or "", created)
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason"):  # (restartPolicy Never: a Running pod only while others start)
                return PodWaiting(waiting["reason"], waiting.get("message") or "", created)
        if status.get("phase") != "Running":
            return PodWaiting("Pending", "the pod has not started", created)
    counts = job.get("status") or {}
    if not pods and not any(int(counts.get(k) or 0) for k in ("active", "failed", "succeeded")):
        name = (job.get("metadata") or {}).get("name")
        return PodWaiting("NoPodCreated", f"the Job controller created no pod (see `kubectl describe job {name}`)",
                          (job.get("metadata") or {}).get("creationTimestamp") or "")
    return None


def pod_not_starting(current: dict[str, Any], outcome: Outcome, waiting: PodWaiting, waited: float, timeout: float,
                     generation: int | None, now: str) -> Outcome:
    """Said in the Running condition while it may still clear; after `timeout` the run fails.

    `current`: the status before this pass (a Warning Event goes out once per waiting reason).
    """
    desired = dict(outcome.status)
    fix = POD_WAITING_FIXES.get(waiting.reason, "the run's pod settings")
    text = f"{waiting.reason}: {waiting.message}".rstrip(": ")
    if waited >= timeout:
        return _failed(desired, "PodNotStarting", waiting.reason,
                       f"the pod did not start within {timeout:.0f}s: {text}; check {fix}", generation, now)
    message = f"pod not running for {waited:.0f}s: {text} (check {fix}; the run fails after {timeout:.0f}s)"
    _set(desired, "Running", False, "PodWaiting", message, generation, now)
    desired["state"] = derive_state(desired["conditions"])
    # not "Running" (observe says so whenever the Job has an active pod); a Warning once per
    # reason that will not clear by itself (pulling an image or mounting takes a while anyway)
    transitions = [t for t in outcome.transitions if t.reason not in ("Running", "Created")]
    said = (get_condition(current.get("conditions"), "Running") or {}).get("message") or ""
    if waiting.reason not in TRANSIENT_WAITING and f"{waiting.reason}:" not in said:
        transitions.append(Transition("PodWaiting", _clip(message), "Warning"))
    return Outcome(desired, transitions)


def ray_not_ready(current: dict[str, Any], generation: int | None, cluster: dict[str, Any] | None, timeout: float,
                  now: str) -> Outcome:
    """The RayCluster did not become ready in time (its head pod never ran, KubeRay missing...)."""
    state = ((cluster or {}).get("status") or {})
    said = "; ".join(str(state[k]) for k in ("state", "reason") if state.get(k)) or "no status from KubeRay"
    message = (f"RayCluster {(cluster or {}).get('metadata', {}).get('name')} was not ready within {timeout:.0f}s "
               f"({said}); check spec.tuning.rayCluster resources and that KubeRay runs")
    return _failed(_base(current, generation), "RayClusterNotReady", "RayClusterNotReady", message, generation, now)


def _failed(desired: dict[str, Any], reason: str, err_type: str, message: str, generation: int | None,
            now: str) -> Outcome:
    """Running False, Failed True with `reason`, a Warning Event and the failure for alerts."""
    message = redact_text(message)
    _set(desired, "Running", False, reason, "training stopped", generation, now)
    _set(desired, "Failed", True, reason, message, generation, now)
    desired["completionTime"] = now
    desired["state"] = derive_state(desired["conditions"])
    return Outcome(desired, [Transition(reason, _clip(message), "Warning")],
                   failure={"type": err_type, "message": message})


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def _attempts(job: dict[str, Any]) -> int:
    st = job.get("status") or {}
    return int(st.get("failed") or 0) + int(st.get("succeeded") or 0) + int(st.get("active") or 0)


def _failure(job_cond: dict[str, Any], term: Termination | None, attempts: int) -> tuple[str, str, str]:
    """(condition reason, error type, message), preferring the trainer's own words."""
    reason = JOB_FAILURE_REASONS.get(job_cond.get("reason") or "", "TrainerFailed")
    error = term.trainer.error if term and term.trainer else None
    if term and term.reason == "OOMKilled":  # the kubelet killed it: the trainer wrote nothing
        err_type = "OOMKilled"
        message = (f"the trainer was killed for exceeding its memory limit (exit {term.exit_code}); "
                   "raise spec.resources.limits.memory")
    elif error is not None and error.message:
        err_type = error.type or "TrainerError"
        message = f"{err_type}: {error.message}"
    elif term and term.message.strip():
        err_type = "TrainerError"
        message = f"trainer exited {term.exit_code}: {term.message.strip()[-800:]}"
    else:
        err_type = reason
        message = job_cond.get("message") or job_cond.get("reason") or "Job failed"
    if reason == "BackoffLimitExceeded":
        message = f"failed after {attempts} attempt(s): {message}"
    elif reason == "DeadlineExceeded":
        message = f"activeDeadlineSeconds exceeded: {message}"
    return reason, err_type, redact_text(message)  # the message also goes to Slack


def _merge_result(desired: dict[str, Any], current: dict[str, Any], trainer: TrainerResult | None) -> None:
    """The trainer's status report wins; the termination message fills what it could not write."""
    result = trainer.status_fields() if trainer else {}
    for key in RESULT_KEYS:
        have = current.get(key)
        if have:
            desired[key] = have
            continue
        value = result.get(key)
        if key in ("metrics", "baselines"):
            value = _finite_numbers(value)
        if value:
            desired[key] = value
    mlflow = desired.get("mlflow")
    if isinstance(mlflow, dict) and isinstance(mlflow.get("runUrl"), str):  # built from the tracking URI
        desired["mlflow"] = {**mlflow, "runUrl": redact_uri(mlflow["runUrl"])}
    promotion = desired.get("promotion")
    version = (desired.get("mlflow") or {}).get("modelVersion")
    if isinstance(promotion, dict) and promotion.get("promoted") and not promotion.get("version") and version:
        desired["promotion"] = {**promotion, "version": str(version)}
    if isinstance(promotion, dict) and trainer and trainer.regression and promotion.get("regression") is None:
        desired["promotion"] = {**desired["promotion"], "regression": True}


def succeeded(current: dict[str, Any], desired: dict[str, Any], term: Termination | None, gen, now) -> Outcome:
    trainer = term.trainer if term else None
    _merge_result(desired, current, trainer)
    transitions: list[Transition] = []
    mlflow = desired.get("mlflow") or {}
    version = mlflow.get("modelVersion")
    _set(desired, "Running", False, "Completed", "training finished", gen, now)
    summary = f"model version {version} registered" if version else "finished"
    _set(desired, "Succeeded", True, "Succeeded", summary, gen, now)
    transitions.append(Transition("Succeeded", summary))
    if version:
        uri = mlflow.get("modelUri") or ""
        _set(desired, "ModelRegistered", True, "ModelRegistered", f"version {version} {uri}".strip(), gen, now)
        transitions.append(Transition("ModelRegistered", f"MLflow model version {version} {uri}".strip()))
    promotion = desired.get("promotion")
    promoted = None
    if isinstance(promotion, dict) and promotion.get("promoted") is not None:
        promoted = bool(promotion["promoted"])
        reason = "Promoted" if promoted else "NotPromoted"
        text = promotion.get("reason") or ("alias moved" if promoted else "alias kept")
        if promoted:
            text = f"{promotion.get('alias', 'champion')} -> version {promotion.get('version') or version}: {text}"
        _set(desired, "Promoted", promoted, reason, text, gen, now)
        transitions.append(Transition(reason, _clip(text)))
    regression = trainer.regression.model_dump(by_alias=True) if trainer and trainer.regression else None
    if regression:
        transitions.append(Transition("Regression", _clip(regression_text(regression)), "Warning"))
    desired["completionTime"] = now
    desired["state"] = derive_state(desired["conditions"])
    return Outcome(desired, transitions, regression=regression or None, promoted=promoted)


def regression_text(regression: dict[str, Any]) -> str:
    return (
        f"{regression.get('metric', 'metric')}: previous {regression.get('previous')}, "
        f"new {regression.get('new')}, delta {regression.get('delta')}"
    )


def observe(
    current: dict[str, Any],
    generation: int | None,
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    now: str,
) -> Outcome:
    """Fold the observed Job (and its pods' termination messages) into the desired status."""
    if is_terminal(current.get("conditions")):
        return Outcome(_base(current, None))  # sticky: nothing changes after the end
    desired = _base(current, generation)
    desired["jobName"] = (job.get("metadata") or {}).get("name") or desired.get("jobName")
    attempts = _attempts(job)
    if attempts:
        desired["attempts"] = max(attempts, int(desired.get("attempts") or 0))
    if _job_condition(job, "Complete") or _job_condition(job, "SuccessCriteriaMet"):
        return succeeded(current, desired, parse_termination(pods), generation, now)
    failed = _job_condition(job, "Failed")
    if failed:
        term = parse_termination(pods)
        reason, err_type, message = _failure(failed, term, desired.get("attempts") or attempts)
        if term and term.trainer:
            _merge_result(desired, current, term.trainer)
        return _failed(desired, reason, err_type, message, generation, now)
    transitions: list[Transition] = []
    status = job.get("status") or {}
    previous = get_condition(current.get("conditions"), "Running")
    if int(status.get("active") or 0) > 0:
        message = f"Job {desired['jobName']} running (attempt {desired.get('attempts') or 1})"
        _set(desired, "Running", True, "Running", message, generation, now)
        if not (previous and previous.get("status") == "True"):
            transitions.append(Transition("Running", message))
    elif (job.get("spec") or {}).get("suspend"):
        message = f"Job {desired['jobName']} is queued (suspended until admitted, e.g. by Kueue)"
        _set(desired, "Running", False, "Queued", message, generation, now)
        if not (previous and previous.get("reason") == "Queued"):
            transitions.append(Transition("Queued", message))
    desired.setdefault("startTime", now)
    desired["state"] = derive_state(desired.get("conditions"))
    return Outcome(desired, transitions)


def status_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Only the top-level keys whose value changed (None removes one): status is written only when it changed."""
    patch = {k: v for k, v in desired.items() if current.get(k) != v and k not in TRAINER_KEYS}
    patch.update({k: None for k in OPERATOR_KEYS if k in current and k not in desired})
    return patch
