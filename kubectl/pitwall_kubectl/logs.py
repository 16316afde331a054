"""`kubectl pitwall logs RUN`: the run's current pod (the newest pod of status.jobName, or with
--head the Ray head of status.rayClusterName), its log printed or followed."""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

from kubernetes.client.rest import ApiException

from pitwall_kubectl.kube import Kube, PluginError, _api_message

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
START_TIMEOUT = 300  # with --follow, how long to wait for a pending pod's container to start


def _newest(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]), default=None)


def _why_no_pod(run: dict[str, Any], where: str) -> str:
    status = run.get("status") or {}
    parts = [f"state {status.get('state') or 'Pending'}", where]
    for condition in reversed(status.get("conditions") or []):
        if condition.get("status") == "True" and (condition.get("message") or condition.get("reason")):
            parts.append(f"{condition['type']}: {condition.get('message') or condition.get('reason')}")
            break
    return ", ".join(parts)


def find_pod(kube: Kube, run: dict[str, Any], head: bool = False) -> dict[str, Any]:
    """The pod whose log is the run's: the newest of its Job (the driver Job for Ray runs), or the Ray head."""
    name, status = run["metadata"]["name"], run.get("status") or {}
    if head:
        cluster = status.get("rayClusterName")
        if not cluster:
            raise PluginError(f"TrainingRun {name} has no Ray cluster (--head is for engine ray with workers > 0): "
                              + _why_no_pod(run, "no status.rayClusterName"))
        pod = _newest(kube.pods(f"ray.io/cluster={cluster},ray.io/node-type=head"))
        if pod is None:
            raise PluginError(f"TrainingRun {name} has no Ray head pod yet: " + _why_no_pod(run, f"RayCluster {cluster}"))
        return pod
    job = status.get("jobName")
    if not job:
        raise PluginError(f"TrainingRun {name} has no pod yet: " + _why_no_pod(run, "no Job created yet"))
    pod = _newest(kube.pods(f"batch.kubernetes.io/job-name={job}")) or _newest(kube.pods(f"job-name={job}"))
    if pod is None:
        raise PluginError(f"TrainingRun {name} has no pod yet: " + _why_no_pod(run, f"Job {job} has no pods"))
    return pod


def pick_container(pod: dict[str, Any], wanted: str | None) -> str:
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    if wanted:
        if wanted not in names:
            raise PluginError(f"pod {pod['metadata']['name']} has no container {wanted} (it has {', '.join(names)})")
        return wanted
    default = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    for candidate in (default, "trainer"):
        if candidate in names:
            return candidate
    return names[0]


def _started(pod: dict[str, Any], container: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            state = status.get("state") or {}
            return bool(state.get("running") or state.get("terminated") or status.get("lastState", {}).get("terminated"))
    return (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")


def _wait_started(kube: Kube, pod: dict[str, Any], container: str) -> None:
    """Watch the pod (no polling) until the container has started; say so on stderr meanwhile."""
    if _started(pod, container):
        return
    name = pod["metadata"]["name"]
    print(f"waiting for container {container} of pod {name} to start ...", file=sys.stderr, flush=True)
    from kubernetes import watch

    w = watch.Watch()
    try:
        for event in w.stream(kube.core.list_namespaced_pod, kube.namespace, field_selector=f"metadata.name={name}",
                              timeout_seconds=START_TIMEOUT):
            if event["type"] == "DELETED":
                raise PluginError(f"pod {name} was deleted before {container} started")
            if _started(event["raw_object"], container):
                return
    finally:
        w.stop()
    raise PluginError(f"container {container} of pod {name} did not start within {START_TIMEOUT}s")


def stream_logs(kube: Kube, run_name: str, follow: bool = False, container: str | None = None, head: bool = False,
                tail: int | None = None, out: BinaryIO | None = None) -> None:
    run = kube.get_run(run_name)
    pod = find_pod(kube, run, head=head)
    name = pod["metadata"]["name"]
    chosen = pick_container(pod, container)
    if follow:
        kube.call(lambda: _wait_started(kube, pod, chosen), what="pods")
    out = out or sys.stdout.buffer
    kwargs: dict[str, Any] = {"container": chosen, "follow": follow, "_preload_content": False}
    if tail is not None:
        kwargs["tail_lines"] = tail
    try:
        response = kube.call(lambda: kube.core.read_namespaced_pod_log(name, kube.namespace, **kwargs), what="pods")
    except ApiException as exc:
        raise PluginError(f"TrainingRun {run_name}: no log from pod {name} ({chosen}): {_api_message(exc)}") from None
    try:
        for chunk in response.stream(amt=None, decode_content=True):
            out.write(chunk)
            out.flush()
    finally:
        response.release_conn()
