"""The real node's container runtime: a containerd 2.x of its own with the CRI plugin.

Docker's containerd has CRI disabled and belongs to Docker, so the node runs a
second containerd with its own root, state and sockets under the node's work
directory. Images reach it from the Docker engine (`docker save | ctr import`),
because no registry can be pulled from here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jobqueue_devkit import docker_engine
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.node_binaries import NodeBinaries
from jobqueue_devkit.node_network import CNI_BIN_DIR
from jobqueue_devkit.pause_image import PAUSE_REF
from jobqueue_devkit.procs import ManagedProcess

NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin serves
START_TIMEOUT_S = 30.0
IMPORT_TIMEOUT_S = 300.0
IMPORT = ("image", "import", "-")

CONFIG_TEMPLATE = """\
version = 4
root = "{root}"
state = "{state}"
# Nothing from /etc/containerd: this containerd is the node's alone.
imports = []
# NRI would open a socket under /var/run for everyone; nothing here uses it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[plugins."io.containerd.server.v1.grpc"]
  address = "{sock}"

[plugins."io.containerd.server.v1.ttrpc"]
  address = "{sock}.ttrpc"

[plugins."io.containerd.server.v1.debug"]
  address = "{debug_sock}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause}"

[plugins."io.containerd.cri.v1.runtime"]
  # Root here lacks CAP_SYS_RESOURCE: lowering an OOM score would fail every sandbox.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = "{state}/runc"
"""


def containerd_name(name: str) -> str:
    """The fully qualified name containerd (and the kubelet) use for a Docker image name."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if rest else f"docker.io/library/{name}"


@dataclass
class NodeRuntime:
    """containerd + the CRI plugin, with everything it owns under `workdir`."""

    binaries: NodeBinaries
    workdir: Path
    cni_conf_dir: Path
    process: ManagedProcess | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def _env(self) -> dict[str, str]:
        # containerd finds its shim on PATH; runc comes from Debian.
        path = f"{self.binaries.runtime_dir}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {**os.environ, "PATH": path}

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = CONFIG_TEMPLATE.format(
            root=self.workdir / "root",
            state=self.workdir / "state",
            sock=self.socket,
            debug_sock=self.workdir / "debug.sock",
            opt=self.workdir / "opt",
            pause=PAUSE_REF,
            cni_bin=CNI_BIN_DIR,
            cni_conf=self.cni_conf_dir,
        )
        path = self.workdir / "config.toml"
        path.write_text(config)
        return path

    def start(self) -> None:
        if shutil.which("runc", path=self._env()["PATH"]) is None:
            raise DevkitError("runc is missing: install Debian's runc (`make node-binaries`)")
        config = self.write_config()
        self.process = ManagedProcess(
            "containerd",
            [str(self.binaries.containerd), "--config", str(config), "--log-level", "warn"],
            self.workdir / "containerd.log",
            env=self._env(),
        )
        self.process.start()
        self.process.wait_ready(
            lambda: self.crictl("info", timeout_s=5, check=False).returncode == 0,
            START_TIMEOUT_S,
            "serving CRI",
        )

    def ctr(self, *args: str, timeout_s: float = 60.0) -> str:
        out = subprocess.run(
            [str(self.binaries.ctr), f"--address={self.socket}", "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if out.returncode != 0:
            raise DevkitError(f"ctr {' '.join(args[:2])} failed: {out.stderr.strip()}")
        return out.stdout

    def crictl(
        self, *args: str, timeout_s: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(self.binaries.crictl), f"--runtime-endpoint={self.endpoint}", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and out.returncode != 0:
            raise DevkitError(f"crictl {' '.join(args[:2])} failed: {out.stderr.strip()}")
        return out

    def import_image(self, name: str) -> str:
        """Copy an image from the Docker engine into this containerd; its containerd name."""
        exe = shutil.which("docker")
        if exe is None or not docker_engine.image_exists(name):
            raise DevkitError(f"image {name} is not in the Docker engine; build it first")
        save = subprocess.Popen([exe, "save", name], stdout=subprocess.PIPE)
        try:
            out = subprocess.run(
                [str(self.binaries.ctr), f"--address={self.socket}", "-n", NAMESPACE, *IMPORT],
                stdin=save.stdout,
                capture_output=True,
                text=True,
                timeout=IMPORT_TIMEOUT_S,
                check=False,
            )
        finally:
            if save.stdout is not None:
                save.stdout.close()
            save.wait(timeout=60)
        if out.returncode != 0 or save.returncode != 0:
            raise DevkitError(f"importing {name} into containerd failed: {out.stderr.strip()}")
        return containerd_name(name)

    def remove_all_pods(self) -> None:
        """Stop and remove every sandbox: the shims would outlive containerd otherwise."""
        if self.process is not None and self.process.alive():
            self.crictl("rmp", "--force", "--all", timeout_s=120, check=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=10)
