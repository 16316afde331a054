"""One pod on the process kubelet: its volumes, its containers as local processes, its status.

What a kubelet does, in the order it does it: network (the pod's IP), volumes (ConfigMaps,
Secrets, projected service-account tokens from the TokenRequest API, PersistentVolumeClaims bound
to a host path, emptyDirs), init containers one by one, then the containers, each restarted as
`restartPolicy` says with the kubelet's back-off (10 s doubling to 5 min, CrashLoopBackOff);
readiness and liveness probes (exec, httpGet, tcpSocket); the termination message file (at most
4096 bytes, FallbackToLogsOnError); and on deletion SIGTERM, the grace period, SIGKILL.

The image is not used: `command` + `args` run on the host, with this Python environment's `bin`
first on PATH. Container paths are rewritten to host folders (volumes.py); in-pod Kubernetes
clients get `KUBECONFIG`, a kubeconfig whose `tokenFile` is the pod's projected token.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .apiclient import ApiError
from .processes import die_with_parent
from .volumes import SERVICE_ACCOUNT_DIR, VolumeError, decoded, mounts_for, substitute, write_items

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger("pitwall.sandbox.pods")
_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
TERMINATION_ENV = "PITWALL_TERMINATION_LOG"
MESSAGE_LIMIT = 4096  # the kubelet's cap on a termination message
LOG_FALLBACK_LINES = 80
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion (unknown references stay as written, `$$` escapes)."""
    return _VAR_RE.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


class Container:
    """The state of one container as the pod status reports it."""

    def __init__(self, spec: dict[str, Any], init: bool = False) -> None:
        self.spec, self.init = spec, init
        self.name: str = spec["name"]
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restarts = 0
        self.ready = False
        self.proc: asyncio.subprocess.Process | None = None
        self.started = False

    def status(self) -> dict[str, Any]:
        image = self.spec.get("image") or "sandbox/none"
        return {"name": self.name, "image": image, "imageID": "", "ready": self.ready,
                "restartCount": self.restarts, "started": self.started and "running" in self.state,
                "state": self.state, "lastState": self.last_state,
                **({"containerID": f"process://{self.proc.pid}"} if self.proc else {})}

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")


class PodRunner:
    """Runs one pod until it ends or is deleted; `status()` is what the kubelet writes."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet, self.pod = kubelet, pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = kubelet.pods_dir / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.tmp = kubelet.short_tmp / self.uid[:12]  # Ray's socket paths must stay short
        spec = pod["spec"]
        self.init = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c) for c in spec.get("containers") or []]
        self.policy = spec.get("restartPolicy", "Always")
        self.ip = ""
        self.phase = "Pending"
        self.initialized = False
        self.stopping = asyncio.Event()
        self.done = asyncio.Event()
        self.start_time = now()
        self.folders: dict[str, Path] = {}
        self.kubeconfig: Path | None = None

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        ready = self.phase == "Running" and all(c.ready for c in self.containers)
        stamp = self.start_time

        def cond(ctype: str, value: bool, reason: str | None = None) -> dict[str, Any]:
            out = {"type": ctype, "status": "True" if value else "False", "lastProbeTime": None,
                   "lastTransitionTime": stamp}
            if reason and not value:
                out["reason"] = reason
            return out

        status: dict[str, Any] = {
            "phase": self.phase, "hostIP": self.kubelet.node_ip, "hostIPs": [{"ip": self.kubelet.node_ip}],
            "startTime": self.start_time, "qosClass": self.pod.get("status", {}).get("qosClass", "BestEffort"),
            "conditions": [cond("PodReadyToStartContainers", bool(self.ip)),
                           cond("Initialized", self.initialized, "ContainersNotInitialized"),
                           cond("Ready", ready, "ContainersNotReady"),
                           cond("ContainersReady", ready, "ContainersNotReady"),
                           {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": stamp}],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        return status

    async def report(self) -> None:
        await self.kubelet.write_status(self, self.status())

    # -- the pod's life ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a kubelet bug must not leave the pod silent
            log.exception("pod %s/%s: kubelet error", self.namespace, self.name)
            for c in self.containers:
                if not c.terminated:
                    c.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(error)[:1024],
                                              "startedAt": self.start_time, "finishedAt": now()}}
            self.phase = "Failed"
            with contextlib.suppress(Exception):
                await self.report()
        finally:
            self.kubelet.network.detach(self.uid)  # a pod that has ended keeps no address
            self.done.set()

    async def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.ip = self.kubelet.network.attach(self.uid)
        await self.kubelet.refresh_hosts(self)
        await self.report()
        await self._prepare_volumes()
        for container in self.init:
            while not self.stopping.is_set():
                code = await self._run_once(container)
                if code == 0:
                    break
                if self.policy == "Never":
                    self.phase = "Failed"
                    self._fail_waiting("Init container failed")
                    await self.report()
                    return
                await self._backoff(container)
            if self.stopping.is_set():
                return
        self.initialized = True
        self.phase = "Running"
        await asyncio.gather(*(self._keep_running(c) for c in self.containers))
        if not self.stopping.is_set():
            codes = [c.terminated.get("exitCode", 1) for c in self.containers if c.terminated]
            self.phase = "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"
            await self.report()

    def _fail_waiting(self, message: str) -> None:
        for c in self.containers:
            if "waiting" in c.state:
                c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                          "message": message, "startedAt": self.start_time, "finishedAt": now()}}

    async def _prepare_volumes(self) -> None:
        """Retry (as the kubelet does) until every volume can be made; report why meanwhile."""
        delay = 1.0
        while not self.stopping.is_set():
            try:
                self.folders = await self._volumes()
                return
            except VolumeError as error:
                await self.kubelet.event(self.pod, "Warning", "FailedMount", str(error))
                for c in self.init + self.containers:
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": str(error)}}
                await self.report()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, 30)

    async def _volumes(self) -> dict[str, Path]:
        api, namespace = self.kubelet.api, self.namespace
        folders: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            target = self.dir / "volumes" / name
            if "persistentVolumeClaim" in volume:
                folders[name] = await self.kubelet.claim_path(namespace, volume["persistentVolumeClaim"]["claimName"])
                continue
            if "hostPath" in volume:
                folders[name] = Path(volume["hostPath"]["path"])
                continue
            if "configMap" in volume or "secret" in volume:
                await self._write_source(volume, target)
            elif "projected" in volume:
                for source in volume["projected"].get("sources") or []:
                    await self._write_source(source, target)
            elif "downwardAPI" in volume:
                await self._write_source(volume, target)
            target.mkdir(parents=True, exist_ok=True)
            folders[name] = target
        del api
        return folders

    async def _write_source(self, source: dict[str, Any], target: Path) -> None:
        api, namespace = self.kubelet.api, self.namespace
        if "configMap" in source or "secret" in source:
            ref = source.get("configMap") or source.get("secret") or {}
            plural = "configmaps" if "configMap" in source else "secrets"
            obj_name = ref.get("name") or ref.get("secretName")
            obj = await api.get(f"/api/v1/namespaces/{namespace}/{plural}/{obj_name}")
            if obj is None and not ref.get("optional"):
                raise VolumeError("FailedMount", f'MountVolume.SetUp failed: {plural[:-1]} "{obj_name}" not found')
            write_items(target, decoded(obj) if obj else {}, ref.get("items"), f'{plural[:-1]} "{obj_name}"')
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            account = self.pod["spec"].get("serviceAccountName") or "default"
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": int(token.get("expirationSeconds", 3607)),
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}}}
            if token.get("audience"):
                body["spec"]["audiences"] = [token["audience"]]
            try:
                answer = await api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body)
            except ApiError as error:
                raise VolumeError("FailedMount", f"failed to fetch token for service account {account}: {error}") from None
            target.mkdir(parents=True, exist_ok=True)
            (target / token.get("path", "token")).write_text(answer["status"]["token"])
        elif "downwardAPI" in source:
            target.mkdir(parents=True, exist_ok=True)
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    (target / item["path"]).write_text(self.field(item["fieldRef"]["fieldPath"]))

    # -- containers ----------------------------------------------------------------------------

    async def _keep_running(self, container: Container) -> None:
        while not self.stopping.is_set():
            code = await self._run_once(container)
            if self.stopping.is_set():
                return
            if self.policy == "Never" or (self.policy == "OnFailure" and code == 0):
                return
            await self._backoff(container)

    async def _backoff(self, container: Container) -> None:
        delay = min(BACKOFF_START * 2 ** max(container.restarts - 1, 0), BACKOFF_MAX)
        container.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off {delay:.0f}s restarting failed container={container.name} pod={self.name}")}}
        await self.kubelet.event(self.pod, "Warning", "BackOff", "Back-off restarting failed container "
                                 f"{container.name} in pod {self.name}")
        await self.report()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)

    def log_path(self, name: str, previous: bool = False) -> Path:
        return self.dir / f"{name}{'.previous' if previous else ''}.log"

    async def _run_once(self, container: Container) -> int:
        """Start the container's process, wait for it, record its end; returns the exit code."""
        spec = container.spec
        started = now()
        term_file = self.dir / f"{container.name}.termination-log"
        term_file.write_text("")
        delay = 1.0
        while True:  # as the kubelet: a missing Secret or ConfigMap keeps the container waiting, retried
            try:
                argv, env, workdir = await self._command(container, term_file)
                break
            except VolumeError as error:
                container.state = {"waiting": {"reason": error.reason, "message": str(error)}}
                await self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {error}")
                await self.report()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                if self.stopping.is_set():
                    return 1
                delay = min(delay * 2, 30)
        log_file = self.log_path(container.name)
        if log_file.exists() and log_file.stat().st_size:
            shutil.move(log_file, self.log_path(container.name, previous=True))
        with log_file.open("ab") as out:
            try:
                container.proc = await asyncio.create_subprocess_exec(
                    *self.kubelet.network.wrap(self.uid, argv), cwd=workdir, env=env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True, preexec_fn=die_with_parent)
            except OSError as error:
                container.state = {"terminated": {"exitCode": 128, "reason": "StartError",
                                                  "message": f"failed to start {argv[0]!r}: {error}",
                                                  "startedAt": started, "finishedAt": now()}}
                await self.report()
                return 128
        container.started = True
        container.ready = not spec.get("readinessProbe") and not container.init
        container.state = {"running": {"startedAt": started}}
        await self.kubelet.event(self.pod, "Normal", "Started", f"Started container {container.name}")
        await self.report()
        probes = [] if container.init else [asyncio.create_task(self._probe_loop(container, kind))
                                            for kind in ("readinessProbe", "livenessProbe") if spec.get(kind)]
        code = await container.proc.wait()
        for task in probes:
            task.cancel()
        code = 128 - code if code < 0 else code  # killed by signal N: 128 + N
        message = term_file.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
        if not message and code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = log_file.read_bytes().decode(errors="replace").splitlines()[-LOG_FALLBACK_LINES:]
            message = "\n".join(lines)[-2048:]
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": started, "finishedAt": now()}
        if message:
            terminated["message"] = message
        if container.terminated is None and container.restarts:
            pass
        container.ready = False
        if self.stopping.is_set() or self.policy == "Never" or (self.policy == "OnFailure" and code == 0) \
                or container.init and code == 0:
            container.state = {"terminated": terminated}
        else:
            container.last_state = {"terminated": terminated}
            container.restarts += 1
            container.state = {"terminated": terminated}
        await self.report()
        return code

    async def _command(self, container: Container, term_file: Path) -> tuple[list[str], dict[str, str], Path]:
        spec = container.spec
        mounts = mounts_for(spec, self.folders)
        mounts[spec.get("terminationMessagePath", "/dev/termination-log")] = term_file
        env = await self._env(spec, mounts)
        env[TERMINATION_ENV] = str(term_file)
        if not spec.get("command"):
            raise VolumeError("CreateContainerConfigError", "the sandbox runs `command` (+ `args`) only; image "
                              f"entrypoints are unknown: give container {container.name!r} a command")
        argv = [substitute(expand(a, env), mounts) for a in (spec.get("command") or []) + (spec.get("args") or [])]
        workdir = Path(substitute(spec["workingDir"], mounts)) if spec.get("workingDir") else \
            self.dir / "work" / container.name
        workdir.mkdir(parents=True, exist_ok=True)
        return argv, env, workdir

    async def _env(self, spec: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
               "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8"), "HOSTNAME": self.name,
               "TMPDIR": str(self.tmp), **self.kubelet.network.pod_env(), **self.kubelet.extra_env}
        if SERVICE_ACCOUNT_DIR in mounts:
            env["KUBECONFIG"] = str(self._pod_kubeconfig(mounts[SERVICE_ACCOUNT_DIR]))
        api, namespace = self.kubelet.api, self.namespace
        for source in spec.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            plural = "configmaps" if "configMapRef" in source else "secrets"
            obj = await api.get(f"/api/v1/namespaces/{namespace}/{plural}/{ref.get('name')}")
            if obj is None and not ref.get("optional"):
                raise VolumeError("CreateContainerConfigError", f'{plural[:-1]} "{ref.get("name")}" not found')
            for key, value in (decoded(obj) if obj else {}).items():
                env[source.get("prefix", "") + key] = value.decode(errors="replace")
        for item in spec.get("env") or []:
            value = await self._env_value(item, env, spec)
            if value is not None:
                env[item["name"]] = substitute(value, mounts)
        return env

    async def _env_value(self, item: dict[str, Any], env: dict[str, str], spec: dict[str, Any]) -> str | None:
        if "valueFrom" not in item:
            return expand(item.get("value", ""), env)
        source = item["valueFrom"]
        for key, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in source:
                ref = source[key]
                obj = await self.kubelet.api.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{ref['name']}")
                value = decoded(obj).get(ref["key"]) if obj else None
                if value is None and not ref.get("optional"):
                    what = f'{plural[:-1]} "{ref["name"]}"'
                    raise VolumeError("CreateContainerConfigError",
                                      f'couldn\'t find key {ref["key"]} in {what}' if obj else f"{what} not found")
                return None if value is None else value.decode(errors="replace")
        if "fieldRef" in source:
            return self.field(source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            group, _, resource = ref["resource"].partition(".")
            value = ((spec.get("resources") or {}).get(group) or {}).get(resource)
            return str(value or self.kubelet.capacity.get(resource, "0"))
        return None

    def field(self, path: str) -> str:
        pod = self.pod
        if m := _FIELD_RE.match(path):
            return str((pod["metadata"].get(m[1]) or {}).get(m[2], ""))
        return {"metadata.name": self.name, "metadata.namespace": self.namespace, "metadata.uid": self.uid,
                "spec.nodeName": self.kubelet.node_name,
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                "status.podIP": self.ip, "status.podIPs": self.ip, "status.hostIP": self.kubelet.node_ip,
                "status.hostIPs": self.kubelet.node_ip}.get(path, "")

    def _pod_kubeconfig(self, account_dir: Path) -> Path:
        """What in-cluster config would give: the API server, its CA, the pod's own token."""
        path = self.dir / "kubeconfig"
        cluster = {"server": self.kubelet.api_server, "certificate-authority": str(account_dir / "ca.crt")}
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": "pod", "user": {"tokenFile": str(account_dir / "token")}}],
            "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "pod",
                                                           "namespace": self.namespace}}],
            "current-context": "in-cluster"}))
        return path

    # -- probes --------------------------------------------------------------------------------

    async def _probe_loop(self, container: Container, kind: str) -> None:
        probe = container.spec[kind]
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        period = float(probe.get("periodSeconds", 10))
        failures, successes = 0, 0
        while container.proc is not None and container.proc.returncode is None:
            ok = await self._probe(container, probe)
            failures, successes = (0, successes + 1) if ok else (failures + 1, 0)
            if kind == "readinessProbe":
                ready = container.ready
                if ok and successes >= int(probe.get("successThreshold", 1)):
                    ready = True
                elif not ok and failures >= int(probe.get("failureThreshold", 3)):
                    ready = False
                if ready != container.ready:
                    container.ready = ready
                    await self.report()
                if not ready:  # probe faster until ready, as startup matters most here
                    await asyncio.sleep(min(period, 1.0))
                    continue
            elif not ok and failures >= int(probe.get("failureThreshold", 3)):
                await self.kubelet.event(self.pod, "Warning", "Unhealthy",
                                         f"Liveness probe failed; container {container.name} will be restarted")
                self._signal(container, signal.SIGKILL)
                return
            await asyncio.sleep(period)

    async def _probe(self, container: Container, probe: dict[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "exec" in probe:
                env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                       "HOME": str(self.dir / "home"), "TMPDIR": str(self.tmp), **self.kubelet.network.pod_env()}
                proc = await asyncio.create_subprocess_exec(
                    *self.kubelet.network.wrap(self.uid, probe["exec"]["command"]), env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
                try:
                    return await asyncio.wait_for(proc.wait(), timeout) == 0
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    return False
            action = probe.get("httpGet") or probe.get("tcpSocket") or {}
            port = self._port(container, action.get("port"))
            host = action.get("host") or self.ip
            if "tcpSocket" in probe:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True
            import aiohttp

            url = f"{action.get('scheme', 'HTTP').lower()}://{host}:{port}{action.get('path', '/')}"
            async with aiohttp.ClientSession() as session, session.get(
                    url, timeout=aiohttp.ClientTimeout(total=timeout), ssl=False) as response:
                return 200 <= response.status < 400
        except (OSError, TimeoutError, ValueError):
            return False
        except Exception:  # noqa: BLE001 - any probe error is a failed probe
            return False

    @staticmethod
    def _port(container: Container, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for item in container.spec.get("ports") or []:
            if item.get("name") == port:
                return int(item["containerPort"])
        raise ValueError(f"no port named {port!r}")

    # -- stopping ------------------------------------------------------------------------------

    @staticmethod
    def _signal(container: Container, sig: int) -> None:
        if container.proc is not None and container.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(container.proc.pid, sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM every container, SIGKILL what is left after `grace` seconds."""
        self.stopping.set()
        running = [c for c in self.init + self.containers if c.proc is not None and c.proc.returncode is None]
        for c in running:
            await self.kubelet.event(self.pod, "Normal", "Killing", f"Stopping container {c.name}")
            self._signal(c, signal.SIGTERM)
        if running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.proc.wait() for c in running)), max(grace, 0.1))
            for c in running:
                self._signal(c, signal.SIGKILL)
            await asyncio.gather(*(c.proc.wait() for c in running))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), 5)
        if self.phase not in ("Succeeded", "Failed"):  # as the kubelet does for a deleted pod: a
            # terminal phase, so the Job controller counts it, drops its finalizer and replaces it
            codes = [c.terminated.get("exitCode", 1) for c in self.containers if c.terminated]
            self.phase = "Succeeded" if codes and len(codes) == len(self.containers) and not any(codes) else "Failed"

    def cleanup(self) -> None:
        self.kubelet.network.detach(self.uid)
        shutil.rmtree(self.tmp, ignore_errors=True)
