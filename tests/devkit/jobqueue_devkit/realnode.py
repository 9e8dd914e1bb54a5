"""A real node beside the local control plane: kubelet + containerd (CRI) + a CNI bridge.

Start order: bridge, etcd, API server (bound on the bridge address, so Pods
reach it), controller manager, scheduler, containerd, the pause image, kubelet.
Stop order: kubelet, every sandbox (shims outlive containerd), containerd, the
plane, then what the kubelet leaves outside its directories: mounts under its
root, its iptables chains, the bridge, /var/lib/cni and the device-plugins dir.
Only one real node fits on a machine (one bridge, fixed paths); a second start
waits for the first to finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue_devkit import docker_engine, node_network
from jobqueue_devkit.binaries import ControlPlaneBinaries, cache_root
from jobqueue_devkit.controlplane import ControlPlane, NodeAccess
from jobqueue_devkit.controlplane import stop_from_state as stop_plane
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.kubelet import NODE_NAME, Kubelet, kubelet_configuration, node_kubeconfig
from jobqueue_devkit.node_binaries import NodeBinaries
from jobqueue_devkit.node_network import Bridge
from jobqueue_devkit.node_runtime import NodeRuntime
from jobqueue_devkit.pause_image import PAUSE_IMAGE, ensure_pause_image
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.procs import pid_alive, terminate_group

READY_TIMEOUT_S = 120.0
CLAIM_WAIT_S = 10 * 60.0
STATE = "node-state.json"


def claim_dir() -> Path:
    return cache_root() / "realnode"


@contextlib.contextmanager
def _claim_lock() -> Iterator[None]:
    claim_dir().mkdir(parents=True, exist_ok=True)
    with (claim_dir() / "claim.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict[str, object]:
    try:
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _claim_alive(claim: dict[str, object]) -> bool:
    pids = claim.get("owners")
    return isinstance(pids, list) and any(pid_alive(int(p)) for p in pids)


@dataclass
class RealNode:
    """Everything of one real node, owned by this object and removed by stop()."""

    control_binaries: ControlPlaneBinaries
    node_binaries: NodeBinaries
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-node-")))
    bridge: Bridge = field(default_factory=Bridge)
    plane: ControlPlane | None = None
    runtime: NodeRuntime | None = None
    kubelet: Kubelet | None = None
    imported: set[str] = field(default_factory=set)

    @property
    def kubeconfig(self) -> Path:
        assert self.plane is not None
        return self.plane.kubeconfig

    @property
    def address(self) -> str:
        """The host's address on the Pods' bridge: bind here whatever Pods must reach."""
        return self.bridge.address

    # ------------------------------------------------------------------ start
    def start(self, owner_pid: int | None = None, crds_dir: Path | None = None) -> RealNode:
        """Start the node; `owner_pid` (say, the test run) keeps the machine claimed while alive."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._claim(owner_pid)
            self._write_state(owner_pid)  # from here on, stop() knows to remove the bridge
            self.plane = ControlPlane(
                self.control_binaries,
                workdir=self.workdir / "plane",
                node_access=NodeAccess(self.bridge.address, self.node_binaries.kube_scheduler),
            )
            self.plane.start(crds_dir)
            self._write_state(owner_pid)
            conf_dir = self.workdir / "cni" / "net.d"
            node_network.write_cni_config(self.bridge, conf_dir, self.workdir / "cni" / "ipam")
            self.runtime = NodeRuntime(self.node_binaries, self.workdir / "containerd", conf_dir)
            self.runtime.start()
            self._write_state(owner_pid)
            ensure_pause_image()
            self.import_image(PAUSE_IMAGE)
            self._start_kubelet()
            self._write_state(owner_pid)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _claim(self, owner_pid: int | None) -> None:
        """Take the machine's one bridge, waiting while another live node holds it."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        waiting_said = False
        while True:
            with _claim_lock():
                claim_file = claim_dir() / "claim.json"
                claim = _read_json(claim_file)
                if not (node_network.bridge_exists(self.bridge) and _claim_alive(claim)):
                    stale = claim.get("workdir")
                    if isinstance(stale, str) and Path(stale).exists():
                        stop_from_state(Path(stale), release_claim=False)
                    node_network.delete_bridge(self.bridge)
                    node_network.create_bridge(self.bridge)
                    owners = [owner_pid] if owner_pid else []
                    claim_file.write_text(
                        json.dumps({"workdir": str(self.workdir), "owners": owners})
                    )
                    return
            if not waiting_said:
                print(
                    f"waiting for the real node in {claim.get('workdir')} to stop "
                    f"(one per machine; up to {CLAIM_WAIT_S / 60:.0f} min)",
                    file=sys.stderr,
                    flush=True,
                )
                waiting_said = True
            if time.monotonic() > deadline:
                raise DevkitError(
                    f"another real node ({claim.get('workdir')}) holds bridge {self.bridge.name} "
                    f"on this machine for over {CLAIM_WAIT_S / 60:.0f} min"
                )
            time.sleep(2)

    def _start_kubelet(self) -> None:
        assert self.plane is not None
        assert self.plane.pki is not None
        assert self.runtime is not None
        self.kubelet = Kubelet(self.node_binaries.kubelet, self.workdir / "kubelet", self.address)
        configuration = kubelet_configuration(
            address=self.address,
            port=free_port(self.address),
            healthz_port=free_port(),
            runtime_endpoint=self.runtime.endpoint,
            client_ca=self.plane.pki.ca_cert,
            workdir=self.kubelet.workdir,
        )
        self.kubelet.start(configuration, node_kubeconfig(self.plane.server, self.plane.pki))

    def _wait_ready(self) -> None:
        assert self.plane is not None
        assert self.kubelet is not None
        assert self.kubelet.process is not None
        plane = self.plane

        def ready() -> bool:
            out = plane.kubectl("get", "node", NODE_NAME, "-o", "json", timeout_s=10)
            node = json.loads(out)
            conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            taints = node["spec"].get("taints") or []
            return conditions.get("Ready") == "True" and not taints

        self.kubelet.process.wait_ready(ready, READY_TIMEOUT_S, f"node {NODE_NAME} Ready")

    def _write_state(self, owner_pid: int | None) -> None:
        pids: dict[str, int] = {}
        if self.kubelet is not None and self.kubelet.process is not None:
            pids["kubelet"] = self.kubelet.process.pid
        if self.runtime is not None and self.runtime.process is not None:
            pids["containerd"] = self.runtime.process.pid
        state = {
            "plane": str(self.workdir / "plane"),
            "bridge": self.bridge.name,
            "crictl": str(self.node_binaries.crictl),
            "runtime_endpoint": self.runtime.endpoint if self.runtime else None,
            "pids": pids,
        }
        (self.workdir / STATE).write_text(json.dumps(state, indent=2))
        # A test run owns its node: if it dies, the node is a leftover to clean up.
        # Started from the CLI, the node's own processes keep it claimed.
        owners = [owner_pid] if owner_pid else list(pids.values())
        with _claim_lock():
            (claim_dir() / "claim.json").write_text(
                json.dumps({"workdir": str(self.workdir), "owners": owners})
            )

    # ------------------------------------------------------------------ use
    def import_image(self, name: str) -> str:
        """`docker save NAME | ctr image import -` once per node; the name Pods use."""
        assert self.runtime is not None
        if name not in self.imported:
            self.runtime.import_image(name)
            self.imported.add(name)
        return name

    def create_namespace(self, name: str, timeout_s: float = 30.0) -> None:
        """A namespace Pods can be created in: its `default` ServiceAccount must exist first."""
        assert self.plane is not None
        self.plane.kubectl("create", "namespace", name)
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(DevkitError):
                self.plane.kubectl("get", "serviceaccount", "default", "-n", name, timeout_s=10)
                self.plane.kubectl("get", "configmap", "kube-root-ca.crt", "-n", name, timeout_s=10)
                return
            if time.monotonic() > deadline:
                raise DevkitError(f"namespace {name} got no default ServiceAccount in {timeout_s}s")
            time.sleep(0.2)

    def api_env(self) -> list[dict[str, str]]:
        """Pod env that points in-cluster clients at the API server (no kube-proxy runs)."""
        assert self.plane is not None
        return [
            {"name": "KUBERNETES_SERVICE_HOST", "value": self.address},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.plane.apiserver_port)},
        ]

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        # The processes this object started first: a failed start has not written them down.
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.runtime is not None:
            self.runtime.remove_all_pods()
            self.runtime.stop()
        stop_from_state(self.workdir)
        self.plane = self.runtime = self.kubelet = None
        self.imported.clear()  # a restarted node has an empty containerd


def _unmount_under(root: Path) -> None:
    """Unmount everything mounted at or below `root`, deepest first."""
    prefix = str(root.resolve())
    with contextlib.suppress(OSError):
        for _ in range(3):  # a bind mount of the root hides mounts made before it
            mounts = []
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix + "/"):
                    mounts.append(point)
            if not mounts:
                return
            for point in sorted(mounts, key=lambda p: p.count("/"), reverse=True):
                if subprocess.run(
                    ["umount", point], capture_output=True, timeout=30, check=False
                ).returncode:
                    subprocess.run(
                        ["umount", "-l", point], capture_output=True, timeout=30, check=False
                    )


def stop_from_state(workdir: Path, release_claim: bool = True) -> list[str]:
    """Stop a node started in `workdir` (by this process or another) and remove its traces.

    `release_claim=False` is for a caller that already holds the claim lock.
    """
    state = _read_json(workdir / STATE)
    stopped: list[str] = []
    pids = state.get("pids")
    pids = pids if isinstance(pids, dict) else {}
    if "kubelet" in pids and pid_alive(int(pids["kubelet"])):
        terminate_group(int(pids["kubelet"]), grace_s=15)
        stopped.append("kubelet")
    endpoint, crictl = state.get("runtime_endpoint"), state.get("crictl")
    if "containerd" in pids and pid_alive(int(pids["containerd"])):
        if isinstance(endpoint, str) and isinstance(crictl, str):
            subprocess.run(
                [crictl, f"--runtime-endpoint={endpoint}", "rmp", "--force", "--all"],
                capture_output=True,
                timeout=120,
                check=False,
            )
        terminate_group(int(pids["containerd"]), grace_s=10)
        stopped.append("containerd")
    plane = state.get("plane")
    if isinstance(plane, str):
        stopped += stop_plane(Path(plane))
    _unmount_under(workdir)
    if state:
        node_network.delete_bridge(Bridge(name=str(state.get("bridge", Bridge().name))))
        node_network.remove_kubelet_chains()
        node_network.remove_host_leftovers()
    shutil.rmtree(workdir, ignore_errors=True)
    if not release_claim:
        return stopped
    with _claim_lock():
        claim_file = claim_dir() / "claim.json"
        if _read_json(claim_file).get("workdir") == str(workdir):
            claim_file.unlink(missing_ok=True)
    return stopped


def node_available() -> str | None:
    """Why a real node cannot start on this machine, or None when it can be tried."""
    if os.geteuid() != 0:
        return "a real node needs root (cgroups, mounts, a bridge)"
    if (
        not Path("/sys/fs/cgroup/memory").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        return "no memory cgroup is mounted"
    if shutil.which("docker") is None:
        return "no docker client to build and import images"
    if not docker_engine.engine_answers():
        return "no Docker engine answers"
    return None
