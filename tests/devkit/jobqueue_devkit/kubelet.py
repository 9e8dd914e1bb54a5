"""The real node's kubelet: its configuration and its process.

The settings that differ from a kubelet's defaults are the ones these machines
need: cgroup v1 is still in use (newer kubelets refuse it unless told), there
is no systemd, no swap check matters, and the disks are shared with other work,
so eviction and image garbage collection must not act on a busy disk.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jobqueue_devkit.certs import Pki
from jobqueue_devkit.procs import ManagedProcess

NODE_NAME = "jq-node"


def kubelet_configuration(
    *,
    address: str,
    port: int,
    healthz_port: int,
    runtime_endpoint: str,
    client_ca: Path,
    workdir: Path,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        # Our machines run cgroup v1; without this the kubelet refuses to start.
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": runtime_endpoint,
        "staticPodPath": str(workdir / "manifests"),
        # The default is under /usr/libexec, outside anything we clean up.
        "volumePluginDir": str(workdir / "volume-plugins"),
        "address": address,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "x509": {"clientCAFile": str(client_ca)},
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
        },
        # Only the API server (with its kubelet client certificate) can reach the port.
        "authorization": {"mode": "AlwaysAllow"},
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
    }


def node_kubeconfig(server: str, pki: Pki) -> dict[str, Any]:
    """The kubelet's credentials: the cluster admin (a dev node; no Node authorizer runs)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "node",
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "node"}}],
        "current-context": "local",
    }


@dataclass
class Kubelet:
    binary: Path
    workdir: Path
    address: str
    process: ManagedProcess | None = None

    @property
    def root_dir(self) -> Path:
        return self.workdir / "root"

    def start(self, configuration: dict[str, Any], kubeconfig: dict[str, Any]) -> ManagedProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "manifests").mkdir(exist_ok=True)
        config_path = self.workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(configuration, sort_keys=False))
        kubeconfig_path = self.workdir / "kubeconfig"
        kubeconfig_path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        kubeconfig_path.chmod(0o600)
        self.process = ManagedProcess(
            "kubelet",
            [
                str(self.binary),
                f"--config={config_path}",
                f"--kubeconfig={kubeconfig_path}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.address}",
                f"--root-dir={self.root_dir}",
                f"--cert-dir={self.workdir / 'pki'}",
                "--v=1",
            ],
            self.workdir / "kubelet.log",
        )
        self.process.start()
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=15)
