"""The process kubelet: the one part of the sandbox that stands in for a real one.

It registers the Node `sandbox-node`, keeps its Lease and Ready condition fresh, runs every pod
the scheduler binds to it (pods.py) and writes their status the way a kubelet does, confirms
deletions after the grace period, serves `kubectl logs` (the API server calls its
/containerLogs endpoint, TLS), keeps each pod's /etc/hosts in step with the Services (network.py),
and provisions PersistentVolumes for claims of the sandbox's default StorageClass.
Everything else (Jobs, retries, garbage collection, TTLs, scheduling) is the real controllers'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from .apiclient import ApiError, AsyncApi
from .network import PodNetwork
from .pods import PodRunner, now

log = logging.getLogger("pitwall.sandbox.kubelet")
NODE_NAME = "sandbox-node"
STORAGE_CLASS = "sandbox-hostpath"
PROVISIONER = "pitwall.io/sandbox-hostpath"
HEARTBEAT = 10.0
STATUS_ATTEMPTS = 60  # ~5 minutes of retries at most (0.5 s doubling to 5 s)


class Kubelet:
    """Runs on its own asyncio loop in a thread; `start()` returns once the Node is registered."""

    def __init__(self, *, api_server: str, ssl_context: ssl.SSLContext, serving: tuple[Path, Path],
                 state_dir: Path, network: PodNetwork, version: str, extra_env: dict[str, str] | None = None,
                 cpus: int = 16) -> None:
        self.api_server, self.ssl_context, self.serving = api_server, ssl_context, serving
        self.state_dir, self.network, self.version = state_dir, network, version
        self.node_name, self.node_ip = NODE_NAME, network.node_ip
        self.pods_dir = state_dir / "pods"
        self.volumes_dir = state_dir / "volumes"
        self.short_tmp = Path("/tmp") / f"pw{os.getpid()}"
        self.extra_env = dict(extra_env or {})
        memory = psutil.virtual_memory().total
        self.capacity = {"cpu": str(cpus), "memory": f"{memory // 1024}Ki", "pods": "110",
                         "ephemeral-storage": "100Gi"}
        self.api = AsyncApi(api_server, ssl_context)
        self.runners: dict[str, PodRunner] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sandbox-kubelet", daemon=True)
        self.tasks: list[asyncio.Task[Any]] = []
        self.log_port = 0
        self._site: web.AppRunner | None = None
        self._services: dict[tuple[str, str], dict[str, Any]] = {}

    # -- lifecycle (called from the sandbox's thread) -------------------------------------------

    def start(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.short_tmp.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    def stop(self, grace: float = 10) -> None:
        if not self.thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(grace), self.loop).result(grace + 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        import shutil

        shutil.rmtree(self.short_tmp, ignore_errors=True)

    async def _start(self) -> None:
        await self.api.open()
        await self._serve_logs()
        await self._register()
        for coro in (self._heartbeat(), self._watch_pods(), self._watch_services(), self._provision()):
            self.tasks.append(asyncio.create_task(coro))

    async def _stop(self, grace: float) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(r.terminate(grace) for r in self.runners.values()), return_exceptions=True)
        for runner in self.runners.values():
            runner.cleanup()
        if self._site is not None:
            await self._site.cleanup()
        await self.api.close()

    # -- the node ------------------------------------------------------------------------------

    async def _register(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": {
                    "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "sandbox"}},
                "spec": {}}
        with contextlib.suppress(ApiError):
            await self.api.request("POST", "/api/v1/nodes", node)
        await self._node_status()
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40}}
        with contextlib.suppress(ApiError):
            await self.api.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)

    async def _node_status(self) -> None:
        stamp = now()

        def cond(ctype: str, value: str, reason: str, message: str) -> dict[str, str]:
            return {"type": ctype, "status": value, "reason": reason, "message": message,
                    "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}

        status = {
            "capacity": self.capacity, "allocatable": self.capacity,
            "conditions": [cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                           cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                           cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
                           cond("Ready", "True", "KubeletReady", "process kubelet is posting ready status")],
            "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_port}},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": self.version,
                         "kubeProxyVersion": "", "containerRuntimeVersion": "process://sandbox",
                         "kernelVersion": os.uname().release, "osImage": "pitwall sandbox (processes)",
                         "machineID": "", "systemUUID": "", "bootID": ""},
        }
        await self.api.request("PATCH", f"/api/v1/nodes/{self.node_name}/status", {"status": status},
                               content_type="application/strategic-merge-patch+json")

    async def _heartbeat(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                stamp = now().replace("Z", ".000000Z")
                await self.api.patch(path, {"spec": {"renewTime": stamp, "holderIdentity": self.node_name}})
                await self._node_status()
            except (ApiError, OSError) as error:
                log.warning("node heartbeat failed: %s", error)

    # -- pods ----------------------------------------------------------------------------------

    async def _watch_pods(self) -> None:
        async for etype, pod in self.api.watch("/api/v1/pods", fieldSelector=f"spec.nodeName={self.node_name}"):
            try:
                await self._on_pod(etype, pod)
            except Exception:  # noqa: BLE001 - one pod must not stop the kubelet
                log.exception("kubelet: handling pod %s", pod["metadata"].get("name"))

    async def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        runner = self.runners.get(uid)
        if etype == "DELETED":
            if runner is not None:
                await runner.terminate(0)
                self._forget(uid)
            return
        if runner is not None:
            runner.pod = pod
        deleting = pod["metadata"].get("deletionTimestamp")
        phase = (pod.get("status") or {}).get("phase")
        if deleting:
            if uid not in getattr(self, "_finishing", set()):
                self._finishing = getattr(self, "_finishing", set()) | {uid}
                asyncio.create_task(self._finish_deletion(pod, runner))
            return
        if runner is None and phase not in ("Succeeded", "Failed"):
            runner = PodRunner(self, pod)
            self.runners[uid] = runner
            asyncio.create_task(runner.run())

    async def _finish_deletion(self, pod: dict[str, Any], runner: PodRunner | None) -> None:
        meta = pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        if runner is not None:
            await runner.terminate(grace)
            with contextlib.suppress(ApiError):
                await runner.report()
            self._forget(meta["uid"])
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        with contextlib.suppress(ApiError):
            await self.api.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1",
                                                    "gracePeriodSeconds": 0,
                                                    "preconditions": {"uid": meta["uid"]}})

    def _forget(self, uid: str) -> None:
        runner = self.runners.pop(uid, None)
        if runner is not None:
            runner.cleanup()

    async def write_status(self, runner: PodRunner, status: dict[str, Any]) -> None:
        """Write until the API server takes it, as a kubelet's status manager keeps syncing: a pod's
        end written while the API server restarts must not leave the pod Running for ever."""
        path = f"/api/v1/namespaces/{runner.namespace}/pods/{runner.name}/status"
        delay = 0.5
        for attempt in range(STATUS_ATTEMPTS):
            try:
                await self.api.patch(path, {"metadata": {"uid": runner.uid}, "status": status})
                return
            except ApiError as error:
                if error.status in (404, 409):  # the pod is gone, or is another pod of that name now
                    return
                problem: Exception = error
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                problem = error
            log.warning("pod %s/%s status (attempt %d): %s", runner.namespace, runner.name, attempt + 1, problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def event(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        stamp = now()
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]},
                "type": kind, "reason": reason, "message": message[:1024], "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp,
                "source": {"component": "kubelet", "host": self.node_name}, "reportingComponent": "kubelet",
                "reportingInstance": self.node_name}
        with contextlib.suppress(ApiError, OSError):
            await self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)

    async def claim_path(self, namespace: str, claim: str) -> Path:
        """The host folder behind a bound claim (its PersistentVolume's hostPath or local path)."""
        from .volumes import VolumeError

        pvc = await self.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
        if pvc is None:
            raise VolumeError("FailedMount", f'persistentvolumeclaim "{claim}" not found')
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = await self.api.get(f"/api/v1/persistentvolumes/{volume}") if volume else None
        if pv is None or (pvc.get("status") or {}).get("phase") != "Bound":
            raise VolumeError("FailedMount", f'persistentvolumeclaim "{claim}" is not bound yet')
        source = pv["spec"].get("hostPath") or pv["spec"].get("local") or {}
        if not source.get("path"):
            raise VolumeError("FailedMount", f'persistentvolume "{volume}" has no hostPath or local path')
        return Path(source["path"])

    # -- Service names -------------------------------------------------------------------------

    async def _watch_services(self) -> None:
        async for etype, service in self.api.watch("/api/v1/services"):
            key = (service["metadata"]["namespace"], service["metadata"]["name"])
            if etype == "DELETED":
                self._services.pop(key, None)
            else:
                self._services[key] = service
            for runner in list(self.runners.values()):
                await self.refresh_hosts(runner)

    async def refresh_hosts(self, changed: PodRunner | None = None) -> None:
        """Every pod's /etc/hosts: each Service name -> the IP of the first running pod it selects.

        Services here are the names pods dial (a headless KubeRay head, the chart's MLflow);
        there is no kube-proxy, so a name points at a pod, not at a virtual ClusterIP.
        """
        names: dict[str, str] = {}
        for (namespace, name), service in self._services.items():
            selector = (service.get("spec") or {}).get("selector") or {}
            if not selector:
                continue
            for runner in self.runners.values():
                labels = runner.pod["metadata"].get("labels") or {}
                if runner.namespace == namespace and runner.ip and runner.phase in ("Pending", "Running") and all(labels.get(k) == v for k, v in selector.items()):
                    for alias in (f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}.svc",
                                  f"{name}.{namespace}"):
                        names[alias] = runner.ip
                    break
        for runner in self.runners.values():
            local = dict(names)
            for (namespace, name), _ in self._services.items():
                alias = f"{name}.{namespace}.svc.cluster.local"
                if namespace == runner.namespace and alias in names:
                    local[name] = names[alias]
            self.network.write_hosts(runner.uid, local)
        del changed

    # -- storage -------------------------------------------------------------------------------

    async def _provision(self) -> None:
        """A minimal external provisioner: a claim of STORAGE_CLASS gets a hostPath volume."""
        async for etype, pvc in self.api.watch("/api/v1/persistentvolumeclaims"):
            spec, meta = pvc.get("spec") or {}, pvc["metadata"]
            if etype == "DELETED" or spec.get("volumeName") or spec.get("storageClassName") != STORAGE_CLASS:
                continue
            name = f"pvc-{meta['uid']}"
            folder = self.volumes_dir / f"{meta['namespace']}-{meta['name']}"
            folder.mkdir(parents=True, exist_ok=True)
            pv = {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                  "spec": {"capacity": {"storage": (spec.get("resources") or {}).get("requests", {}).get(
                      "storage", "1Gi")}, "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                      "persistentVolumeReclaimPolicy": "Delete", "storageClassName": STORAGE_CLASS,
                      "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
                      "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                                   "name": meta["name"], "uid": meta["uid"]}}}
            with contextlib.suppress(ApiError):
                await self.api.request("POST", "/api/v1/persistentvolumes", pv)

    # -- kubectl logs --------------------------------------------------------------------------

    async def _serve_logs(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", lambda _request: web.Response(text="ok"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.serving[0]), str(self.serving[1]))
        from .processes import free_port

        self.log_port = free_port(self.node_ip)
        site = web.TCPSite(runner, self.node_ip, self.log_port, ssl_context=context)
        await site.start()
        self._site = runner

    def _runner_named(self, namespace: str, name: str) -> PodRunner | None:
        for runner in self.runners.values():
            if runner.namespace == namespace and runner.name == name:
                return runner
        return None

    def _log_file(self, namespace: str, name: str, container: str, previous: bool) -> Path | None:
        runner = self._runner_named(namespace, name)
        if runner is not None:
            return runner.log_path(container, previous)
        matches = sorted(self.pods_dir.glob(f"{namespace}_{name}_*"), key=lambda p: p.stat().st_mtime)
        if matches:
            return matches[-1] / f"{container}{'.previous' if previous else ''}.log"
        return None

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        namespace, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        previous = request.query.get("previous") == "true"
        path = self._log_file(namespace, name, container, previous)
        if path is None or not path.exists():
            return web.Response(status=404, text=f"no logs for container {container} of pod {namespace}/{name}")
        data = path.read_bytes()
        tail = request.query.get("tailLines")
        if tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-int(tail):])
        limit = request.query.get("limitBytes")
        if limit is not None:
            data = data[:int(limit)]
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(data)
        if request.query.get("follow") == "true":
            offset = path.stat().st_size
            while True:
                runner = self._runner_named(namespace, name)
                chunk = b""
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                if chunk:
                    offset += len(chunk)
                    await response.write(chunk)
                alive = runner is not None and any(c.name == container and c.proc is not None
                                                   and c.proc.returncode is None for c in runner.containers + runner.init)
                if not alive and not chunk:
                    break
                await asyncio.sleep(0.3)
        await response.write_eof()
        return response
