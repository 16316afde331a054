"""The Job controller and kubelet of the sandbox: Jobs become Pods become local processes.

Status follows the batch/v1 Job controller: startTime, active/ready/succeeded/failed counts,
conditions SuccessCriteriaMet + Complete, or FailureTarget + Failed with reason
BackoffLimitExceeded / DeadlineExceeded / PodFailurePolicy; Suspended while `suspend` is true.
Differences: the retry backoff is `backoff` seconds doubling (real: 10 s doubling, up to 6 min);
restartPolicy OnFailure is treated as Never (a new pod per retry); pods run at most `max_pods` at
a time (the rest stay Pending).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from pathlib import Path
from typing import Any

from kmock import KubernetesError

from .controllers import Controller
from .pods import ContainerResult, PodContext, PodProcess
from .store import Obj, now

log = logging.getLogger("pitwall.sandbox.jobs")
JOBS, PODS = ("batch", "jobs"), ("", "pods")


def condition(ctype: str, reason: str, message: str, status: str = "True") -> dict[str, str]:
    stamp = now()
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp}


def finished(job: Obj) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def failure_rule(job: Obj, results: list[ContainerResult]) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule matching a failed container's exit code."""
    rules = ((job["spec"].get("podFailurePolicy") or {}).get("rules")) or []
    for index, rule in enumerate(rules):
        codes = rule.get("onExitCodes")
        if not codes:
            continue
        for result in results:
            if result.exit_code == 0 or codes.get("containerName") not in (None, result.name):
                continue
            hit = result.exit_code in codes["values"]
            if hit if codes.get("operator", "In") == "In" else not hit:
                return rule["action"], (f"Container {result.name} for pod {{pod}} failed with exit code "
                                        f"{result.exit_code} matching {rule['action']} rule at index {index}")
    return None


class JobRunner(Controller):
    """Watches Jobs in the store (on the API loop) and runs one controller task per Job."""

    kind_key = JOBS

    def __init__(self, sandbox: Any, *, max_pods: int = 16, backoff: float = 0.2) -> None:
        super().__init__(sandbox)
        self.max_pods, self.backoff = max_pods, backoff
        self.pods: dict[tuple[str, str], PodProcess] = {}
        self.slots: asyncio.Semaphore | None = None

    def start(self) -> None:
        self.slots = asyncio.Semaphore(self.max_pods)
        self.sb.api.pod_log = self.pod_log
        super().start()

    async def _teardown(self) -> None:
        await asyncio.gather(*(pod.kill(grace=2) for pod in list(self.pods.values())), return_exceptions=True)

    def _idle(self, obj: Obj) -> bool:
        return finished(obj)

    def _on_event(self, etype: str, kind: Any, obj: Obj, old: Obj | None) -> None:
        super()._on_event(etype, kind, obj, old)
        if kind.key == PODS and etype == "DELETED":
            pod = self.pods.get((obj["metadata"]["namespace"], obj["metadata"]["name"]))
            if pod is not None:
                asyncio.get_running_loop().create_task(pod.kill())

    def pod_dir(self, namespace: str, name: str) -> Path:
        return self.sb.state_dir / "pods" / namespace / name

    def pod_log(self, namespace: str, name: str) -> Path | None:
        pod = self.store.find(self.store.kinds[PODS], namespace, name)
        if pod is None:
            return None
        return self.pod_dir(namespace, name) / f"{pod['spec']['containers'][0]['name']}.log"

    # -- the controller ----------------------------------------------------------------------------

    async def _control(self, key: tuple[str, str], uid: str) -> None:
        """Reconcile one Job until it is finished or gone."""
        event = self.wakeups[key]
        active: dict[str, asyncio.Task[list[ContainerResult]]] = {}
        try:
            while True:
                event.clear()
                job = self.store.find(self.store.kinds[JOBS], *key)
                if job is None or job["metadata"]["uid"] != uid or finished(job):
                    await self._kill(key[0], active)
                    return
                status = dict(job.get("status") or {})
                status.setdefault("succeeded", 0)
                status.setdefault("failed", 0)
                if job["spec"].get("suspend"):
                    await self._kill(key[0], active)
                    self._suspend(job, status)
                    await event.wait()
                    continue
                done = await self._reap(job, status, active)
                if done:
                    return
                timeout = self._deadline_left(job, status)
                if timeout is not None and timeout <= 0:
                    await self._kill(key[0], active)
                    self._finish(job, status, "Failed", "DeadlineExceeded",
                                 "Job was active longer than specified deadline")
                    return
                want = min(job["spec"].get("parallelism", 1), job["spec"].get("completions", 1) - status["succeeded"])
                if len(active) < want and status["failed"]:
                    await asyncio.sleep(min(self.backoff * 2 ** (status["failed"] - 1), 10))
                while len(active) < want:
                    name, task = self._start_pod(job)
                    active[name] = task
                status["active"] = len(active)
                status["ready"] = len(active)
                self._write(job, status)
                woken = asyncio.ensure_future(event.wait())
                try:
                    await asyncio.wait([woken, *active.values()], timeout=timeout,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
        except asyncio.CancelledError:
            await self._kill(key[0], active)
            raise
        except Exception:
            log.exception("job controller for %s/%s crashed", *key)

    async def _reap(self, job: Obj, status: dict[str, Any], active: dict[str, Any]) -> bool:
        """Account for finished pods; True when the Job reached a terminal state."""
        for name, task in list(active.items()):
            if not task.done():
                continue
            del active[name]
            results = task.result()
            if all(r.exit_code == 0 for r in results):
                status["succeeded"] += 1
                continue
            rule = failure_rule(job, results)
            namespace = job["metadata"]["namespace"]
            if rule and rule[0] == "FailJob":
                await self._kill(namespace, active)
                self._finish(job, status, "Failed", "PodFailurePolicy", rule[1].format(pod=f"{namespace}/{name}"),
                             failed=1)
                return True
            if not rule or rule[0] != "Ignore":
                status["failed"] += 1
        if status["succeeded"] >= job["spec"].get("completions", 1):
            self._finish(job, status, "Complete", "CompletionsReached", "Reached expected number of succeeded pods")
            return True
        if status["failed"] > job["spec"].get("backoffLimit", 6):
            await self._kill(job["metadata"]["namespace"], active)
            self._finish(job, status, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            return True
        return False

    def _deadline_left(self, job: Obj, status: dict[str, Any]) -> float | None:
        if not status.get("startTime"):
            status["startTime"] = now()
        limit = job["spec"].get("activeDeadlineSeconds")
        if limit is None:
            return None
        start = datetime.datetime.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        return limit - (datetime.datetime.now(datetime.UTC) - start).total_seconds()

    def _suspend(self, job: Obj, status: dict[str, Any]) -> None:
        conditions = [c for c in status.get("conditions") or [] if c["type"] != "Suspended"]
        status.update(active=0, ready=0, conditions=[*conditions, condition("Suspended", "JobSuspended",
                                                                             "Job suspended")])
        status.pop("startTime", None)
        self._write(job, status)

    def _finish(self, job: Obj, status: dict[str, Any], ctype: str, reason: str, message: str,
                failed: int = 0) -> None:
        conditions = [c for c in status.get("conditions") or [] if c["type"] != "Suspended"]
        if ctype == "Failed":
            conditions += [condition("FailureTarget", reason, message), condition("Failed", reason, message)]
            status["failed"] += failed
        else:
            conditions += [condition("SuccessCriteriaMet", reason, message), condition("Complete", reason, message)]
            status["completionTime"] = now()
        status.update(active=0, ready=0, conditions=conditions)
        self._write(job, status)
        if ctype == "Failed":
            self._event(job, reason, message, "Warning")
        else:
            self._event(job, "Completed", "Job completed")
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is not None:
            asyncio.get_running_loop().call_later(ttl, self._expire, job)

    def _expire(self, job: Obj) -> None:
        meta = job["metadata"]
        current = self.store.find(self.store.kinds[JOBS], meta["namespace"], meta["name"])
        if current is not None and current["metadata"]["uid"] == meta["uid"]:
            self.store.delete(self.store.kinds[JOBS], meta["namespace"], meta["name"])

    def _event(self, job: Obj, reason: str, message: str, etype: str = "Normal") -> None:
        """A core/v1 Event from the job-controller, as `kubectl describe job` shows them."""
        meta, stamp = job["metadata"], now()
        self.store.create(self.store.kinds["", "events"], meta["namespace"], {
            "metadata": {"name": f"{meta['name']}.{random.getrandbits(64):016x}"},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"],
                               "resourceVersion": meta["resourceVersion"]},
            "reason": reason, "message": message, "type": etype, "count": 1, "firstTimestamp": stamp,
            "lastTimestamp": stamp, "source": {"component": "job-controller"},
            "reportingComponent": "job-controller", "reportingInstance": ""}, internal=True)

    def _write(self, job: Obj, status: dict[str, Any]) -> None:
        resumed = [c for c in status.get("conditions") or [] if not (c["type"] == "Suspended" and
                                                                     not job["spec"].get("suspend"))]
        if len(resumed) != len(status.get("conditions") or []):
            status["conditions"] = [*resumed, condition("Suspended", "JobResumed", "Job resumed", "False")]
        try:
            meta = job["metadata"]
            self.store.update(self.store.kinds[JOBS], meta["namespace"], meta["name"], {"status": status},
                              subresource="status", internal=True)
        except KubernetesError:
            pass  # deleted meanwhile

    # -- pods --------------------------------------------------------------------------------------

    def _start_pod(self, job: Obj) -> tuple[str, asyncio.Task[list[ContainerResult]]]:
        meta, template = job["metadata"], job["spec"]["template"]
        name = f"{meta['name']}-{''.join(random.choices('bcdfghjklmnpqrstvwxz2456789', k=5))}"
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update({"controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid": meta["uid"],
                       "job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"]})
        pod = self.store.create(self.store.kinds[PODS], meta["namespace"], {
            "metadata": {"name": name, "labels": labels,
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {**template.get("spec", {}), "nodeName": "sandbox"}}, internal=True)
        self._event(job, "SuccessfulCreate", f"Created pod: {name}")
        return name, asyncio.get_running_loop().create_task(self._run_pod(pod))

    async def _run_pod(self, pod: Obj) -> list[ContainerResult]:
        """Kubelet: Pending until a slot is free, Running, then Succeeded/Failed with container states."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        ctx = PodContext(kubeconfig=self.sb.kubeconfig,
                         claim_dirs={**self.sb.claim_dirs(), "__provisioner__": self.sb.state_dir / "volumes"},
                         lookup=self._lookup, extra_env=dict(self.sb.pod_env))
        process = PodProcess(pod, self.pod_dir(namespace, name), ctx)
        assert self.slots is not None
        async with self.slots:
            self.pods[namespace, name] = process
            try:
                started = now()
                self._pod_status(pod, {"phase": "Running", "startTime": started, "podIP": "127.0.0.1",
                                       "hostIP": "127.0.0.1", "conditions": _pod_conditions("True"),
                                       "containerStatuses": [_cstatus(c, {"running": {"startedAt": started}})
                                                             for c in pod["spec"]["containers"]]})
                results = await process.run()
            finally:
                self.pods.pop((namespace, name), None)
        by_name = {r.name: r for r in results}
        statuses = []
        for container in pod["spec"]["containers"]:
            r = by_name.get(container["name"])
            state = {"terminated": {"exitCode": r.exit_code, "reason": r.reason, "message": r.message,
                                    "startedAt": r.started, "finishedAt": r.finished}} if r else {
                "waiting": {"reason": "PodInitializing"}}
            statuses.append(_cstatus(container, state, ready=False))
        for status in statuses:
            term = status["state"].get("terminated")
            if term is not None and not term["message"]:
                del term["message"]
        phase = "Succeeded" if all(r.exit_code == 0 for r in results) else "Failed"
        self._pod_status(pod, {"phase": phase, "conditions": _pod_conditions("False"),
                               "containerStatuses": statuses})
        return results

    def _pod_status(self, pod: Obj, status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        current = self.store.find(self.store.kinds[PODS], meta["namespace"], meta["name"])
        if current is None:
            return
        merged = {**(current.get("status") or {}), **status}
        self.store.update(self.store.kinds[PODS], meta["namespace"], meta["name"], {"status": merged},
                          subresource="status", internal=True)

    def _lookup(self, plural: str, namespace: str, name: str) -> Obj | None:
        return self.store.find(self.store.kinds["", plural], namespace, name)

    async def _kill(self, namespace: str, active: dict[str, asyncio.Task[Any]]) -> None:
        """Stop running pods of a Job (they end Failed), as the controller deletes them."""
        for name in list(active):
            process = self.pods.get((namespace, name))
            if process is not None:
                await process.kill()
        if active:
            await asyncio.gather(*active.values(), return_exceptions=True)
        active.clear()


def _cstatus(container: dict[str, Any], state: dict[str, Any], ready: bool = True) -> dict[str, Any]:
    return {"name": container["name"], "image": container.get("image", ""), "imageID": "",
            "containerID": f"sandbox://{container['name']}", "ready": ready and "running" in state,
            "started": "running" in state, "restartCount": 0, "state": state}


def _pod_conditions(ready: str) -> list[dict[str, str]]:
    stamp = now()
    return [{"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": stamp}
            for t, s in (("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", ready),
                         ("Ready", ready))]
