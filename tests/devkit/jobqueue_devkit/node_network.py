"""The real node's Pod network: one Linux bridge, a CNI config for it, and the cleanup
of what the kubelet leaves on the host outside its own directories.

Pods cannot reach the host's loopback, so whatever they must talk to (the API
server, Redis) binds on the address the host holds on this bridge. Nothing is
masqueraded and no route leads further than the bridge: Pods see the host's
bridge address and each other, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jobqueue_devkit.errors import DevkitError

CNI_BIN_DIR = Path("/usr/lib/cni")
# Chains the kubelet creates for itself on start; nothing else of ours uses them.
KUBELET_CHAINS = (
    ("filter", "KUBE-FIREWALL"),
    ("filter", "KUBE-KUBELET-CANARY"),
    ("nat", "KUBE-KUBELET-CANARY"),
    ("mangle", "KUBE-KUBELET-CANARY"),
    ("mangle", "KUBE-IPTABLES-HINT"),
    ("nat", "KUBE-IPTABLES-HINT"),
    ("filter", "KUBE-IPTABLES-HINT"),
)
# Written by the kubelet and by libcni at fixed paths whatever their root dirs are.
HOST_LEFTOVERS = (Path("/var/lib/kubelet/device-plugins"), Path("/var/lib/cni"))
# Shim sockets go under /run/containerd/s whatever the state dir is; Docker's own
# containerd may use the same directories, so they go only once empty.
SHARED_WHEN_EMPTY = (
    Path("/run/containerd/s"),
    Path("/run/containerd/runc/k8s.io"),
    Path("/run/containerd/runc"),
    Path("/run/containerd"),
    Path("/var/lib/kubelet"),
)


@dataclass(frozen=True)
class Bridge:
    name: str = "jqbr0"
    address: str = "10.244.0.1"
    prefix: int = 24

    @property
    def subnet(self) -> str:
        network = ".".join(self.address.split(".")[:3]) + ".0"
        return f"{network}/{self.prefix}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and out.returncode != 0:
        raise DevkitError(f"`ip {' '.join(args)}` failed: {out.stderr.strip()}")
    return out


def bridge_exists(bridge: Bridge) -> bool:
    return _ip("link", "show", bridge.name, check=False).returncode == 0


def create_bridge(bridge: Bridge) -> None:
    if shutil.which("ip") is None:
        raise DevkitError("the `ip` command is missing: install iproute2")
    if bridge_exists(bridge):
        raise DevkitError(
            f"bridge {bridge.name} already exists: another real node runs here, "
            "or a crashed one left it (`make cluster-down NODE=real` removes it)"
        )
    _ip("link", "add", bridge.name, "type", "bridge")
    _ip("addr", "add", f"{bridge.address}/{bridge.prefix}", "dev", bridge.name)
    _ip("link", "set", bridge.name, "up")


def delete_bridge(bridge: Bridge) -> None:
    if bridge_exists(bridge):
        _ip("link", "delete", bridge.name)


def write_cni_config(bridge: Bridge, conf_dir: Path, ipam_dir: Path) -> Path:
    """A bridge network with host-local addresses, the bridge's host address as gateway."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": "jobqueue-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge.name,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": bridge.subnet, "gateway": bridge.address}]],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "loopback"},
        ],
    }
    path = conf_dir / "10-jobqueue.conflist"
    path.write_text(json.dumps(config, indent=2))
    return path


def remove_kubelet_chains() -> list[str]:
    """Flush and delete the chains the kubelet made; return the ones removed."""
    iptables = shutil.which("iptables")
    if iptables is None:
        return []
    removed = []
    for table, chain in KUBELET_CHAINS:
        listed = subprocess.run(
            [iptables, "-w", "-t", table, "-S"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        for rule in listed.stdout.splitlines():
            # Jumps into the chain go first, or the chain cannot be deleted.
            tokens = shlex.split(rule)
            jumps = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "-j"]
            if tokens[:1] == ["-A"] and jumps == [chain]:
                subprocess.run(
                    [iptables, "-w", "-t", table, "-D", *tokens[1:]],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        if f"-N {chain}" in listed.stdout.splitlines():
            subprocess.run(
                [iptables, "-w", "-t", table, "-F", chain],
                capture_output=True,
                timeout=30,
                check=False,
            )
            gone = subprocess.run(
                [iptables, "-w", "-t", table, "-X", chain],
                capture_output=True,
                timeout=30,
                check=False,
            )
            if gone.returncode == 0:
                removed.append(f"{table}/{chain}")
    return removed


def remove_host_leftovers() -> None:
    for path in HOST_LEFTOVERS:
        shutil.rmtree(path, ignore_errors=True)
    for path in SHARED_WHEN_EMPTY:
        with contextlib.suppress(OSError):
            path.rmdir()
