"""The KubeRay operator of the sandbox: a RayCluster becomes a real local Ray cluster.

The head is `ray start --head --block` on free ports (RAY_AUTH_MODE=disabled, its temp dir under
the sandbox state dir, or a short /tmp folder when that path is too long for Ray's sockets);
each worker replica is one more `ray start --address=... --block` node on this machine. Status is
KubeRay's: state `ready`, head podIP/serviceIP 127.0.0.1, endpoints with the local ports
(`gcs-server`, `dashboard`, `client` when ray[client] is installed), worker replica counts,
HeadPodReady and RayClusterProvisioned conditions. The head Pod, worker Pods and the
`<name>-head-svc` Service exist as objects (owned by the RayCluster) but are not processes
themselves. Connect with `ray.init(address=f"{status.head.serviceIP}:{endpoints['gcs-server']}")`;
`<name>-head-svc` does not resolve on this machine. Deleting or suspending stops every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
from kmock import KubernetesError

from .controllers import Controller
from .store import Obj, now

log = logging.getLogger("pitwall.sandbox.raycluster")
RAYCLUSTERS, PODS, SERVICES = ("ray.io", "rayclusters"), ("", "pods"), ("", "services")
_SOCKET_BUDGET = 40  # Ray's unix socket paths must stay under 107 characters


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayNodes:
    """The local Ray processes of one RayCluster (head + workers) and their temp folder."""

    def __init__(self, temp_dir: Path, num_cpus: int) -> None:
        self.temp_dir, self.num_cpus = temp_dir, num_cpus
        self.ports: dict[str, int] = {}
        self.head: asyncio.subprocess.Process | None = None
        self.workers: list[asyncio.subprocess.Process] = []
        self.head_pod = ""

    @staticmethod
    def env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        return env | {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    async def _spawn(self, *args: str, log_name: str) -> asyncio.subprocess.Process:
        ray = str(Path(sys.executable).parent / "ray")
        with (self.temp_dir / log_name).open("ab") as out:
            return await asyncio.create_subprocess_exec(
                ray, "start", *args, "--block", "--disable-usage-stats", env=self.env(),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)

    async def start_head(self, timeout: float) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"gcs-server": free_port(), "dashboard": free_port()}
        extra = []
        if importlib.util.find_spec("grpc") is not None:  # the client server needs ray[client]
            self.ports["client"] = free_port()
            extra = [f"--ray-client-server-port={self.ports['client']}"]
        self.head = await self._spawn(
            "--head", f"--port={self.ports['gcs-server']}", f"--dashboard-port={self.ports['dashboard']}",
            "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", f"--num-cpus={self.num_cpus}",
            "--object-store-memory=100000000", f"--temp-dir={self.temp_dir}", *extra, log_name="head.log")
        await self._wait_started(self.head, self.temp_dir / "head.log", timeout)

    async def scale_workers(self, replicas: int, timeout: float) -> None:
        """Add or remove worker nodes; wait until the added ones have joined the head."""
        while len(self.workers) > replicas:
            await _terminate(self.workers.pop())
        added = []
        while len(self.workers) < replicas:
            log_path = self.temp_dir / f"worker-{len(self.workers)}.log"
            log_path.unlink(missing_ok=True)
            self.workers.append(await self._spawn(
                f"--address=127.0.0.1:{self.ports['gcs-server']}", f"--num-cpus={self.num_cpus}",
                "--object-store-memory=100000000", log_name=log_path.name))
            added.append(self._wait_started(self.workers[-1], log_path, timeout))
        await asyncio.gather(*added)

    @staticmethod
    async def _wait_started(proc: asyncio.subprocess.Process, log_path: Path, timeout: float) -> None:
        """`ray start --block` prints "Ray runtime started." once the node is fully up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}; see {log_path}")
            if log_path.exists() and "Ray runtime started" in log_path.read_text(errors="replace"):
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"the Ray node did not start within {timeout:.0f}s; see {log_path}")

    async def stop(self) -> None:
        """Stop every process of this cluster: the `ray start` groups, their trees, stragglers."""
        procs = [p for p in [self.head, *self.workers] if p is not None]
        pids = [p.pid for p in procs]
        tree = await asyncio.to_thread(_tree, pids, str(self.temp_dir))
        await asyncio.gather(*(_terminate(p) for p in procs))
        await asyncio.to_thread(_kill_all, tree)
        self.head, self.workers = None, []


def _tree(pids: list[int], marker: str) -> list[psutil.Process]:
    """The processes started for a cluster: descendants of its `ray start` and any naming its folder."""
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                found[proc.pid] = proc
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
    found.pop(os.getpid(), None)
    return list(found.values())


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


async def _terminate(proc: asyncio.subprocess.Process, grace: float = 10) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class RayClusterRunner(Controller):
    """Watches RayClusters in the store (on the API loop); one controller task per cluster."""

    kind_key = RAYCLUSTERS

    def __init__(self, sandbox: Any, *, num_cpus: int = 1, startup_timeout: float = 120) -> None:
        super().__init__(sandbox)
        self.num_cpus, self.startup_timeout = num_cpus, startup_timeout
        self.nodes: dict[tuple[str, str], RayNodes] = {}

    def start(self) -> None:
        if RAYCLUSTERS not in self.store.kinds:
            log.warning("no RayCluster CRD loaded: the RayCluster runner is idle")
        super().start()

    async def _teardown(self) -> None:
        await asyncio.gather(*self.controllers.values(), return_exceptions=True)
        await asyncio.gather(*(nodes.stop() for nodes in self.nodes.values()), return_exceptions=True)
        self.nodes.clear()

    def _temp_dir(self, key: tuple[str, str]) -> Path:
        preferred = self.sb.state_dir / "ray" / f"{key[0]}-{key[1]}"
        if len(str(preferred)) <= _SOCKET_BUDGET:
            return preferred
        return Path(tempfile.mkdtemp(prefix=f"pwray-{key[1][:12]}-"))

    async def _control(self, key: tuple[str, str], uid: str) -> None:
        event = self.wakeups[key]
        try:
            while True:
                event.clear()
                obj = self.store.find(self.store.kinds[RAYCLUSTERS], *key)
                if obj is None or obj["metadata"]["uid"] != uid:
                    break
                if obj["spec"].get("suspend"):
                    await self._shutdown(key)
                    self._write(obj, {"state": "suspended", "readyWorkerReplicas": 0,
                                      "availableWorkerReplicas": 0})
                elif not await self._ensure(key, obj):
                    return  # failed: stays failed until deleted
                await event.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("RayCluster controller for %s/%s crashed", *key)
        await self._shutdown(key)

    async def _ensure(self, key: tuple[str, str], obj: Obj) -> bool:
        nodes = self.nodes.get(key)
        if nodes is None:
            nodes = self.nodes[key] = RayNodes(self._temp_dir(key), self.num_cpus)
            suffix = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
            nodes.head_pod = f"{obj['metadata']['name']}-head-{suffix}"
        groups = obj["spec"].get("workerGroupSpecs") or []
        replicas = sum(0 if g.get("suspend") else int(g.get("replicas", g.get("minReplicas", 0)) or 0) for g in groups)
        try:
            if nodes.head is None:
                await nodes.start_head(self.startup_timeout)
                self._objects(obj, nodes)
                self._write(obj, self._ready_status(obj, nodes, replicas, groups, ready=0))
            await nodes.scale_workers(replicas, self.startup_timeout)
        except RuntimeError as error:
            self._write(obj, {"state": "failed", "reason": str(error)})
            await self._shutdown(key)
            return False
        obj = self.store.find(self.store.kinds[RAYCLUSTERS], *key) or obj
        self._write(obj, self._ready_status(obj, nodes, replicas, groups, ready=replicas))
        return True

    async def _shutdown(self, key: tuple[str, str]) -> None:
        nodes = self.nodes.pop(key, None)
        if nodes is not None:
            await nodes.stop()
            if not str(nodes.temp_dir).startswith(str(self.sb.state_dir)):
                shutil.rmtree(nodes.temp_dir, ignore_errors=True)

    def _ready_status(self, obj: Obj, nodes: RayNodes, replicas: int, groups: list[dict[str, Any]],
                      ready: int) -> dict[str, Any]:
        """KubeRay's status: `ready` once the head and every desired worker are up (else no state yet)."""
        name, stamp = obj["metadata"]["name"], now()
        cond = {"status": "True", "lastTransitionTime": stamp, "message": ""}
        return {
            "state": "ready" if ready >= replicas else "", "reason": "",
            "head": {"podIP": "127.0.0.1", "serviceIP": "127.0.0.1", "podName": nodes.head_pod,
                     "serviceName": f"{name}-head-svc"},
            "endpoints": {k: str(v) for k, v in nodes.ports.items()},
            "desiredWorkerReplicas": replicas, "readyWorkerReplicas": ready, "availableWorkerReplicas": ready,
            "minWorkerReplicas": sum(int(g.get("minReplicas", 0) or 0) for g in groups),
            "maxWorkerReplicas": sum(int(g.get("maxReplicas", 0) or 0) for g in groups),
            "desiredCPU": str(self.num_cpus * (1 + replicas)), "desiredMemory": "0", "desiredGPU": "0",
            "desiredTPU": "0", "lastUpdateTime": stamp, "observedGeneration": obj["metadata"].get("generation", 1),
            "stateTransitionTimes": {"ready": stamp} if ready >= replicas else {},
            "conditions": [{**cond, "type": "HeadPodReady", "reason": "HeadPodRunningAndReady"}] + (
                [{**cond, "type": "RayClusterProvisioned", "reason": "AllPodRunningAndReadyFirstTime"}]
                if ready >= replicas else []),
        }

    def _write(self, obj: Obj, status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        current = self.store.find(self.store.kinds[RAYCLUSTERS], meta["namespace"], meta["name"])
        if current is None:
            return
        old = dict(current.get("status") or {})
        if "stateTransitionTimes" in status and old.get("state") == status.get("state"):
            status["stateTransitionTimes"] = old.get("stateTransitionTimes", status["stateTransitionTimes"])
            status["lastUpdateTime"] = old.get("lastUpdateTime", status["lastUpdateTime"])
            for new_c, old_c in zip(status.get("conditions", []), old.get("conditions", []), strict=False):
                new_c["lastTransitionTime"] = old_c.get("lastTransitionTime", new_c["lastTransitionTime"])
        with contextlib.suppress(KubernetesError):
            self.store.update(self.store.kinds[RAYCLUSTERS], meta["namespace"], meta["name"],
                              {"status": {**old, **status}}, subresource="status", internal=True)

    def _objects(self, obj: Obj, nodes: RayNodes) -> None:
        """The head Service and Pod objects KubeRay would create (owned by the RayCluster)."""
        meta = obj["metadata"]
        owner = [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": meta["name"], "uid": meta["uid"],
                  "controller": True, "blockOwnerDeletion": True}]
        labels = {"ray.io/cluster": meta["name"], "ray.io/node-type": "head", "ray.io/group": "headgroup",
                  "app.kubernetes.io/created-by": "kuberay-operator"}
        template = (obj["spec"].get("headGroupSpec") or {}).get("template") or {}
        for kind, body in ((SERVICES, {"metadata": {"name": f"{meta['name']}-head-svc", "labels": labels,
                                                    "ownerReferences": owner},
                                       "spec": {"type": "ClusterIP", "selector": labels,
                                                "ports": [{"name": k, "port": v, "targetPort": v}
                                                          for k, v in nodes.ports.items()]}}),
                           (PODS, {"metadata": {"name": nodes.head_pod, "labels": labels,
                                                "ownerReferences": owner},
                                   "spec": {**(template.get("spec") or {}), "nodeName": "sandbox"},
                                   "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
                                              "startTime": now()}})):
            with contextlib.suppress(KubernetesError):
                self.store.create(self.store.kinds[kind], meta["namespace"], body, internal=True)
