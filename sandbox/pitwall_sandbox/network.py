"""Pod networking of the process kubelet.

As root (Linux), every pod gets a network namespace of its own, joined to a bridge by a veth pair:
its own IP, its own loopback and ports (two Ray nodes can both listen on 6379), and its own
/etc/hosts (`ip netns exec` mounts /etc/netns/<ns>/hosts over /etc/hosts) listing the cluster's
Service names, which stands in for cluster DNS. The node (the host side of the bridge) carries the
API server and whatever the tests serve to pods. Without root, pods share the host's network:
every pod IP is 127.0.0.1, Service names do not resolve and ports can collide (the sandbox README
says so).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("pitwall.sandbox.network")
NETNS_ETC = Path("/etc/netns")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def isolated_supported() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None and Path("/proc/self/ns/net").exists()


class PodNetwork:
    """Allocates pod IPs; with `isolated`, one namespace per pod on the bridge `pwb<pid>`."""

    def __init__(self, isolated: bool | None = None) -> None:
        self.isolated = isolated_supported() if isolated is None else isolated
        self.tag = f"{os.getpid()}"
        self.bridge = f"pwb{self.tag}"
        octet = 100 + os.getpid() % 150
        self.subnet = ipaddress.ip_network(f"10.{octet}.0.0/16")
        self.node_ip = str(self.subnet.network_address + 1) if self.isolated else "127.0.0.1"
        self._next = 10
        self.namespaces: dict[str, tuple[str, str]] = {}  # pod uid -> (netns, ip)

    def setup(self) -> None:
        if not self.isolated:
            return
        self.cleanup_stale()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.node_ip}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @staticmethod
    def cleanup_stale() -> None:
        """Remove bridges and namespaces left by a sandbox that was killed (its pid is gone)."""
        links = _ip("-o", "link", "show", "type", "bridge", check=False).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith("pwb") and name[3:].isdigit() and not _alive(int(name[3:])):
                _ip("link", "del", name, check=False)
        for line in _ip("netns", "list", check=False).stdout.splitlines():
            name = line.split()[0]
            if name.startswith("pw") and "-" in name and name[2:].split("-")[0].isdigit() \
                    and not _alive(int(name[2:].split("-")[0])):
                _ip("netns", "del", name, check=False)
                shutil.rmtree(NETNS_ETC / name, ignore_errors=True)

    def attach(self, uid: str) -> str:
        """The pod's IP (creating its namespace when isolated)."""
        if not self.isolated:
            return "127.0.0.1"
        if uid in self.namespaces:
            return self.namespaces[uid][1]
        self._next += 1
        ip = str(self.subnet.network_address + self._next)
        netns = f"pw{self.tag}-{self._next}"
        host_end, pod_end = f"pwh{self._next}x{self.tag}"[:15], f"pwp{self._next}x{self.tag}"[:15]
        _ip("netns", "add", netns)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", pod_end)
        _ip("link", "set", pod_end, "netns", netns)
        _ip("link", "set", host_end, "master", self.bridge, "up")
        _ip("netns", "exec", netns, "ip", "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", pod_end)
        _ip("netns", "exec", netns, "ip", "link", "set", pod_end, "up")
        _ip("netns", "exec", netns, "ip", "link", "set", "lo", "up")
        _ip("netns", "exec", netns, "ip", "route", "add", "default", "via", self.node_ip)
        (NETNS_ETC / netns).mkdir(parents=True, exist_ok=True)
        # No DNS server is reachable from a pod: answer "refused" at once instead of timing out, and
        # search the pod's namespace as cluster DNS would (Service names come from /etc/hosts).
        (NETNS_ETC / netns / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.namespaces[uid] = (netns, ip)
        self.write_hosts(uid, {})
        return ip

    def pod_env(self) -> dict[str, str]:
        """Environment every container gets: gRPC's default resolver (c-ares) asks DNS servers only and
        never reads /etc/hosts, so Ray's `--address=<service>:6379` needs the system resolver."""
        return {"GRPC_DNS_RESOLVER": "native"} if self.isolated else {}

    def wrap(self, uid: str, argv: list[str]) -> list[str]:
        """The command line that runs `argv` inside the pod's namespace."""
        if not self.isolated or uid not in self.namespaces:
            return argv
        return ["ip", "netns", "exec", self.namespaces[uid][0], *argv]

    def write_hosts(self, uid: str, names: dict[str, str]) -> None:
        """The pod's /etc/hosts: itself, localhost and the Service names (name -> IP)."""
        if not self.isolated or uid not in self.namespaces:
            return
        netns, ip = self.namespaces[uid]
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{ip}\t{netns}"]
        lines += [f"{address}\t{name}" for name, address in sorted(names.items())]
        path = NETNS_ETC / netns / "hosts"
        text = "\n".join(lines) + "\n"
        if not path.exists() or path.read_text() != text:
            with path.open("r+" if path.exists() else "w") as out:  # in place: running pods see it
                out.seek(0)
                out.write(text)
                out.truncate()

    def detach(self, uid: str) -> None:
        entry = self.namespaces.pop(uid, None)
        if entry is None:
            return
        netns, _ = entry
        _ip("netns", "del", netns, check=False)  # deletes the veth pair with it
        shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)

    def teardown(self) -> None:
        for uid in list(self.namespaces):
            self.detach(uid)
        if self.isolated:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", self.bridge, check=False)
