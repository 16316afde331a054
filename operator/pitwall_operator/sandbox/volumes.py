"""Pod volumes as local folders, and mount paths rewritten to them.

Processes run on the host, so a container path like `/data` cannot exist as such. Each mount is
materialised as a host folder, and every occurrence of a mount path (as a path prefix) in the
container's command, args, env values and workingDir is replaced by that folder:
`--data-dir /data/f1` becomes `--data-dir /home/.../pitwall-data/f1`. Paths a program builds
by itself at runtime from a hard-coded constant are not rewritten.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from .store import Obj


class VolumeError(RuntimeError):
    """A volume or mount that cannot be materialised (the pod fails, as CreateContainerConfigError)."""


def materialise(pod: Obj, pod_dir: Path, claim_dirs: dict[str, Path], lookup: Any) -> dict[str, Path]:
    """Volume name → host folder. `lookup(kind_plural, namespace, name)` reads Secrets and ConfigMaps."""
    namespace = pod["metadata"]["namespace"]
    folders: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        target = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            folders[name] = claim_dirs.get(claim) or claim_dirs["__provisioner__"] / namespace / claim
        elif "configMap" in volume or "secret" in volume:
            source = volume.get("configMap") or volume.get("secret")
            plural = "configmaps" if "configMap" in volume else "secrets"
            obj = lookup(plural, namespace, source.get("name") or source.get("secretName"))
            if obj is None and not source.get("optional"):
                raise VolumeError(f'{plural[:-1]} "{source.get("name") or source.get("secretName")}" not found')
            _write_items(target, _data(obj) if obj else {}, source.get("items"))
            folders[name] = target
        elif "hostPath" in volume:
            folders[name] = Path(volume["hostPath"]["path"])
        else:  # emptyDir and anything else: an empty folder of the pod
            folders[name] = target
        folders[name].mkdir(parents=True, exist_ok=True)
    return folders


def mounts_for(container: dict[str, Any], folders: dict[str, Path]) -> dict[str, Path]:
    """Container mount path → host path (subPath honoured)."""
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in folders:
            raise VolumeError(f'volume "{mount["name"]}" is not declared in the pod')
        host = folders[mount["name"]] / mount.get("subPath", "")
        mounts[mount["mountPath"].rstrip("/") or "/"] = host
    return mounts


def substitute(text: str, mounts: dict[str, Path]) -> str:
    """Rewrite container paths under any mount path to the host folder (longest mount first)."""
    for mount in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(r"(?<![\w.-])" + re.escape(mount) + r"(?=/|$|[^\w.-])")
        text = pattern.sub(lambda _m, m=mount: str(mounts[m]), text)
    return text


def _data(obj: Obj) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()} if obj["kind"] == "ConfigMap" else {
        k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    return out


def _write_items(target: Path, data: dict[str, bytes], items: list[dict[str, str]] | None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = {item["key"]: item["path"] for item in items} if items else {k: k for k in data}
    for key, rel in chosen.items():
        if key in data:
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[key])
