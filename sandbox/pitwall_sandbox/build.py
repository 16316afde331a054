"""Build the control plane from the pinned Go module (controlplane/go.mod) into a cache folder.

The versions live in go.mod only; the cache folder is named after them and the go.sum digest, so
a changed pin builds anew and an unchanged one is reused. `python -m pitwall_sandbox.build` builds
(or reuses) and prints where the binaries are.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent.parent / "controlplane"
KUBERNETES, ETCD, KUBERAY = "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "github.com/ray-project/kuberay/ray-operator"

#: binary name -> the Go package that builds it
PACKAGES = {
    "etcd": "./cmd/etcd",
    "kube-apiserver": f"{KUBERNETES}/cmd/kube-apiserver",
    "kube-controller-manager": f"{KUBERNETES}/cmd/kube-controller-manager",
    "kube-scheduler": f"{KUBERNETES}/cmd/kube-scheduler",
    "kuberay-operator": KUBERAY,
}


class BuildError(RuntimeError):
    """`go build` failed or Go is missing; the message says which command and what it printed."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    kuberay: str

    @classmethod
    def from_go_mod(cls, module_dir: Path = MODULE_DIR) -> Versions:
        text = (module_dir / "go.mod").read_text()

        def pinned(module: str) -> str:
            match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", text, re.MULTILINE)
            if not match:
                raise BuildError(f"{module_dir / 'go.mod'}: no version of {module}")
            return match[1]

        return cls(pinned(KUBERNETES), pinned(ETCD), pinned(KUBERAY))


def cache_root() -> Path:
    base = os.environ.get("PITWALL_CACHE_DIR") or Path.home() / ".cache" / "pitwall"
    return Path(base) / "controlplane"


def bin_dir(versions: Versions, module_dir: Path = MODULE_DIR) -> Path:
    digest = hashlib.sha256((module_dir / "go.sum").read_bytes() + (module_dir / "go.mod").read_bytes())
    return cache_root() / f"k8s-{versions.kubernetes}_etcd-{versions.etcd}_kuberay-{versions.kuberay}_{digest.hexdigest()[:10]}"


def _ldflags(versions: Versions) -> str:
    """What Kubernetes' own build stamps, so `/version` reports the real release."""
    major, minor = versions.kubernetes.lstrip("v").split(".")[:2]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = [f"-X k8s.io/component-base/version.{k}={v}" for k, v in (
        ("gitVersion", versions.kubernetes), ("gitMajor", major), ("gitMinor", minor),
        ("gitTreeState", "clean"), ("buildDate", stamp))]
    flags += [f"-X k8s.io/client-go/pkg/version.{k}={v}" for k, v in (
        ("gitVersion", versions.kubernetes), ("gitMajor", major), ("gitMinor", minor))]
    return " ".join(["-s", "-w", *flags])


def ensure_binaries(module_dir: Path = MODULE_DIR, out=sys.stderr) -> Path:
    """The folder holding every binary of PACKAGES, building what is missing (with progress)."""
    versions = Versions.from_go_mod(module_dir)
    target = bin_dir(versions, module_dir)
    missing = [name for name in PACKAGES if not (target / name).is_file()]
    if not missing:
        return target
    go = shutil.which("go")
    if go is None:
        raise BuildError("the sandbox builds Kubernetes from source and needs Go (https://go.dev/dl), "
                         "but `go` is not on PATH")
    target.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"building the control plane ({versions.kubernetes}, etcd {versions.etcd}, KubeRay {versions.kuberay}) "
          f"into {target}; a first build downloads ~300 MB of modules and takes 10-25 minutes on 2 cores",
          file=out, flush=True)
    for index, name in enumerate(missing, 1):
        step = time.monotonic()
        print(f"  [{index}/{len(missing)}] go build {PACKAGES[name]} ...", file=out, flush=True)
        partial = target / f".{name}.partial"
        command = [go, "build", "-trimpath", "-ldflags", _ldflags(versions), "-o", str(partial), PACKAGES[name]]
        result = subprocess.run(command, cwd=module_dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"`{' '.join(command)}` (in {module_dir}) failed with exit code "
                             f"{result.returncode}:\n{result.stderr[-4000:]}")
        partial.rename(target / name)  # atomic: a half-built binary is never taken for a built one
        print(f"  [{index}/{len(missing)}] {name} built in {time.monotonic() - step:.0f} s", file=out, flush=True)
    print(f"control plane built in {time.monotonic() - started:.0f} s", file=out, flush=True)
    return target


def kuberay_crds(module_dir: Path = MODULE_DIR) -> list[Path]:
    """KubeRay's CRD files, from its module in the Go module cache (downloaded if needed)."""
    versions = Versions.from_go_mod(module_dir)
    result = subprocess.run(["go", "mod", "download", "-json", f"{KUBERAY}@{versions.kuberay}"], cwd=module_dir,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"go mod download {KUBERAY}@{versions.kuberay} failed: {result.stderr[-2000:]}")
    folder = Path(re.search(r'"Dir":\s*"([^"]+)"', result.stdout)[1]) / "config" / "crd" / "bases"
    return sorted(folder.glob("ray.io_*.yaml"))


def main() -> int:
    try:
        print(ensure_binaries())
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
