"""A pod's volumes as host folders, and container paths rewritten to them.

Processes run on the host's filesystem, so a container path like `/data` cannot exist as such.
Each volume is a folder of the pod (or the bound PersistentVolume's host path), and every
occurrence of a mount path as a path prefix in a container's command, args, env values and
workingDir is replaced by that folder: `--data-dir /data/f1` becomes `--data-dir <pod>/volumes/data/f1`.
Paths a program builds at run time from a constant of its own are not rewritten.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class VolumeError(RuntimeError):
    """A volume or reference that cannot be resolved yet (the kubelet reports it and retries)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def decoded(obj: dict[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's or Secret's keys as bytes."""
    if obj.get("kind") == "Secret":
        out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        out |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
    return out


def write_items(target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, what: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = {item["key"]: item["path"] for item in items} if items else {k: k for k in data}
    for key, rel in chosen.items():
        if key not in data:
            raise VolumeError("FailedMount", f'{what}: key "{key}" not found')
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])


def mounts_for(container: dict[str, Any], folders: dict[str, Path]) -> dict[str, Path]:
    """Container mount path -> host path (subPath honoured)."""
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in folders:
            raise VolumeError("CreateContainerConfigError", f'volume "{mount["name"]}" is not declared in the pod')
        host = folders[mount["name"]] / mount.get("subPath", "")
        host.mkdir(parents=True, exist_ok=True) if not mount.get("subPath") else None
        mounts[mount["mountPath"].rstrip("/") or "/"] = host
    return mounts


def substitute(text: str, mounts: dict[str, Path]) -> str:
    """Rewrite container paths under any mount path to the host folder (longest mount first)."""
    for mount in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(r"(?<![\w.-])" + re.escape(mount) + r"(?=/|$|[^\w.-])")
        text = pattern.sub(lambda _m, m=mount: str(mounts[m]), text)
    return text
