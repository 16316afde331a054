"""Run one Pod's containers as local processes: env, volumes, logs, termination message.

Contract for programs in a sandbox pod (documented in the README of the sandbox, cli.py):
- `KUBECONFIG` points at the sandbox kubeconfig (no in-cluster service account exists), so
  `config.load_kube_config()` reaches the sandbox API; `KUBERNETES_SERVICE_HOST` is unset.
- `PITWALL_TERMINATION_LOG` is the local file standing for `terminationMessagePath`
  (that path is also rewritten wherever it appears in command, args and env values).
- Mount paths are rewritten to host folders (see volumes.py); the working directory is the
  container's `workingDir` rewritten, else a fresh folder of the pod.
- `PATH` starts with the sandbox's Python environment, so `python` and `pitwall-train` resolve there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import volumes
from .store import Obj, now

_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
TERMINATION_ENV = "PITWALL_TERMINATION_LOG"
LOG_TAIL = 2048  # bytes of the log used as the message with FallbackToLogsOnError


@dataclass
class PodContext:
    """What a pod needs from the sandbox."""

    kubeconfig: Path
    claim_dirs: dict[str, Path]
    lookup: Any  # (plural, namespace, name) -> Obj | None, for Secrets and ConfigMaps
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerResult:
    name: str
    exit_code: int
    reason: str
    message: str
    started: str
    finished: str


class PodProcess:
    """The processes of one pod; `run()` returns the containers' results, `kill()` stops them."""

    def __init__(self, pod: Obj, pod_dir: Path, ctx: PodContext) -> None:
        self.pod, self.dir, self.ctx = pod, pod_dir, ctx
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.killed = False

    def log_path(self, container: str | None = None) -> Path:
        name = container or self.pod["spec"]["containers"][0]["name"]
        return self.dir / f"{name}.log"

    async def run(self) -> list[ContainerResult]:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            folders = volumes.materialise(self.pod, self.dir, self.ctx.claim_dirs, self.ctx.lookup)
        except (volumes.VolumeError, OSError) as error:
            stamp = now()
            return [ContainerResult(c["name"], 128, "CreateContainerConfigError", str(error), stamp, stamp)
                    for c in self.pod["spec"]["containers"]]
        for init in self.pod["spec"].get("initContainers") or []:
            result = await self._run_container(init, folders)
            if result.exit_code != 0 or self.killed:
                return [result]
        return list(await asyncio.gather(*(self._run_container(c, folders) for c in self.pod["spec"]["containers"])))

    async def _run_container(self, container: dict[str, Any], folders: dict[str, Path]) -> ContainerResult:
        started = now()
        name = container["name"]
        term_file = self.dir / f"{name}.termination-log"
        term_file.write_text("")
        try:
            mounts = volumes.mounts_for(container, folders)
            mounts[container.get("terminationMessagePath", "/dev/termination-log")] = term_file
            env = self._env(container, mounts)
            env[TERMINATION_ENV] = str(term_file)
            argv = [volumes.substitute(_expand(a, env), mounts)
                    for a in (container.get("command") or []) + (container.get("args") or [])]
            if not container.get("command"):
                raise volumes.VolumeError("the sandbox runs `command` (+ `args`) only; image entrypoints "
                                          f"are unknown, give container {name!r} a command")
            workdir = Path(volumes.substitute(container["workingDir"], mounts)) if container.get(
                "workingDir") else self.dir / "work" / name
            workdir.mkdir(parents=True, exist_ok=True)
        except (volumes.VolumeError, KeyError) as error:
            return ContainerResult(name, 128, "CreateContainerConfigError", str(error), started, now())
        with self.log_path(name).open("ab") as log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, cwd=workdir, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
            except OSError as error:
                return ContainerResult(name, 128, "StartError", f"failed to start {argv[0]!r}: {error}",
                                       started, now())
            self.procs[name] = proc
            code = await proc.wait()
        message = term_file.read_text(errors="replace")[:4096]
        if not message and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = self.log_path(name).read_bytes()[-LOG_TAIL:].decode(errors="replace")
        code = 128 + (-code) if code < 0 else code
        reason = "Completed" if code == 0 else ("Error" if not self.killed else "Killed")
        return ContainerResult(name, code, reason, message, started, now())

    def _env(self, container: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
               "HOME": os.environ.get("HOME", str(self.dir)), "LANG": os.environ.get("LANG", "C.UTF-8"),
               "KUBECONFIG": str(self.ctx.kubeconfig), "HOSTNAME": self.pod["metadata"]["name"],
               **self.ctx.extra_env}
        namespace = self.pod["metadata"]["namespace"]
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            plural = "configmaps" if "configMapRef" in source else "secrets"
            obj = self.ctx.lookup(plural, namespace, ref.get("name"))
            if obj is None and not ref.get("optional"):
                raise volumes.VolumeError(f'{plural[:-1]} "{ref.get("name")}" not found')
            for key, value in (_values(obj) if obj else {}).items():
                env[source.get("prefix", "") + key] = value
        for item in container.get("env") or []:
            value = self._env_value(item, env)
            if value is not None:
                env[item["name"]] = volumes.substitute(value, mounts)
        return env

    def _env_value(self, item: dict[str, Any], env: dict[str, str]) -> str | None:
        if "valueFrom" not in item:
            return _expand(item.get("value", ""), env)
        source = item["valueFrom"]
        namespace = self.pod["metadata"]["namespace"]
        for key, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in source:
                ref = source[key]
                obj = self.ctx.lookup(plural, namespace, ref["name"])
                value = _values(obj).get(ref["key"]) if obj else None
                if value is None and not ref.get("optional"):
                    raise volumes.VolumeError(f'{key}: key "{ref["key"]}" of {plural[:-1]} "{ref["name"]}" not found')
                return value
        if "fieldRef" in source:
            return _field(self.pod, source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            return "1"
        return None

    async def kill(self, grace: float = 3.0) -> None:
        """SIGTERM each container's process group, SIGKILL after `grace` seconds."""
        self.killed = True
        for proc in self.procs.values():
            _signal(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                _signal(proc, signal.SIGKILL)
                await proc.wait()


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def _values(obj: Obj) -> dict[str, str]:
    if obj["kind"] == "Secret":
        out = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return out | dict(obj.get("stringData") or {})
    return dict(obj.get("data") or {})


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion (unknown references stay as written, `$$` escapes)."""
    return _VAR_RE.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def _field(pod: Obj, path: str) -> str:
    if m := _FIELD_RE.match(path):
        return str((pod["metadata"].get(m[1]) or {}).get(m[2], ""))
    simple = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"]["namespace"],
              "metadata.uid": pod["metadata"]["uid"], "spec.nodeName": "sandbox",
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
              "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
    return simple.get(path, "")
