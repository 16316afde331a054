"""The real control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KubeRay's operator, as processes of the binaries `build.py` made.

The API server runs as a cluster's does: TLS with generated certificates, RBAC (and Node)
authorization, service-account token signing, the default admission plugins (which include
ValidatingAdmissionPolicy and PodSecurity). The controller manager runs every default controller
with per-controller service-account credentials; the real Job controller, garbage collector and
TTL controller decide what happens to Jobs and their pods.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .build import ensure_binaries, kuberay_crds
from .certs import PKI
from .processes import Process, free_port

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_NAME = "pitwall-sandbox"


def kubeconfig(server: str, ca: Path, user: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority": str(ca)}}],
            "users": [{"name": CLUSTER_NAME, "user": user}],
            "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": CLUSTER_NAME,
                                                            "namespace": namespace}}],
            "current-context": CLUSTER_NAME}


class ControlPlane:
    """`start()` brings every component up (waiting for the API server's /readyz); `stop()` ends all."""

    def __init__(self, state_dir: Path, *, address: str = "127.0.0.1", port: int = 0, kuberay: bool = True) -> None:
        self.state_dir, self.address = state_dir, address
        self.logs = state_dir / "logs"
        self.pki = PKI(state_dir / "pki")
        self.port = port
        self.url = ""  # known once started (the node's address may not exist before)
        self.kubeconfig = state_dir / "admin.kubeconfig"
        self.with_kuberay = kuberay
        self.processes: list[Process] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        bins = ensure_binaries()
        self.port = self.port or free_port(self.address)
        self.url = f"https://{self.address}:{self.port}"
        self.pki.ensure(KUBERNETES_SERVICE_IP, self.address)
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig(
            self.url, self.pki.ca.cert, {"client-certificate": str(self.pki.admin.cert),
                                         "client-key": str(self.pki.admin.key)})))
        etcd_port, peer_port = free_port(), free_port()
        etcd = f"http://127.0.0.1:{etcd_port}"
        self._run("etcd", [
            str(bins / "etcd"), "--name=sandbox", f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={etcd}", f"--advertise-client-urls={etcd}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=sandbox=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true", "--log-level=warn"])
        self._run("kube-apiserver", [
            str(bins / "kube-apiserver"), f"--etcd-servers={etcd}",
            f"--bind-address={self.address}", f"--advertise-address={self.address}", f"--secure-port={self.port}",
            f"--tls-cert-file={self.pki.serving.cert}", f"--tls-private-key-file={self.pki.serving.key}",
            f"--client-ca-file={self.pki.ca.cert}",
            f"--service-account-key-file={self.pki.sa_pub}",
            f"--service-account-signing-key-file={self.pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            f"--kubelet-client-certificate={self.pki.kubelet_client.cert}",
            f"--kubelet-client-key={self.pki.kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP", "--endpoint-reconciler-type=none",
            "--v=1"])
        self._wait_ready(timeout)
        manager_config = self._component_kubeconfig("kube-controller-manager")
        self._run("kube-controller-manager", [
            str(bins / "kube-controller-manager"), f"--kubeconfig={manager_config}",
            "--controllers=*", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca.cert}",
            f"--cluster-signing-cert-file={self.pki.ca.cert}", f"--cluster-signing-key-file={self.pki.ca.key}",
            "--leader-elect=false", "--secure-port=0", "--concurrent-job-syncs=10",
            "--concurrent-gc-syncs=10", "--v=1"])
        self._run("kube-scheduler", [
            str(bins / "kube-scheduler"), f"--kubeconfig={self._component_kubeconfig('kube-scheduler')}",
            "--leader-elect=false", "--secure-port=0", "--v=1"])
        if self.with_kuberay:
            self.kubectl("apply", "--server-side", "--force-conflicts",
                         *[arg for path in kuberay_crds() for arg in ("-f", str(path))])
            self._run("kuberay-operator", [
                str(bins / "kuberay-operator"), f"--kubeconfig={self.kubeconfig}",
                "--enable-leader-election=false", f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}", "--log-stdout-encoder=console"])

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def restart(self, name: str, timeout: float = 120) -> None:
        """Stop one component and start it again with the same flags (tests: the API server going
        away drops every watch and connection, as an upgrade or a crash would)."""
        (old,) = [p for p in self.processes if p.name == name]
        old.stop()
        self.processes[self.processes.index(old)] = Process(old.name, old.argv, old.log, old.env).start()
        if name == "kube-apiserver":
            self._wait_ready(timeout)

    def check(self) -> None:
        """Raise with the log tail of a component that has exited."""
        for process in self.processes:
            process.check_running()

    # -- helpers ---------------------------------------------------------------------------------

    def _run(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.logs / f"{name}.log").start()
        self.processes.append(process)
        return process

    def _component_kubeconfig(self, name: str) -> Path:
        """Components log in with the admin certificate (the sandbox has one client CA)."""
        path = self.state_dir / f"{name}.kubeconfig"
        path.write_text(self.kubeconfig.read_text())
        return path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        context, last = self.ssl_context(), ""
        while time.monotonic() < deadline:
            self.check()
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError as error:
                last = str(error)
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver not ready after {timeout:.0f} s ({last}); see {self.logs}")

    def kubectl(self, *args: str, input: str | None = None) -> str:  # noqa: A002
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=input,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout
