"""The chart installed on a real node: its values and `helm install` (tests and demo share it).

The operator and worker images are imported into the node's containerd and never
pulled (pullPolicy Never). No kube-proxy runs on the node, so the operator Pods
get the API server's bridge address in KUBERNETES_SERVICE_HOST/PORT; Redis is
bound on the same bridge address.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jobqueue_devkit.controlplane import REPO_ROOT
from jobqueue_devkit.realnode import RealNode

CHART = REPO_ROOT / "charts" / "jobqueue-operator"


@dataclass(frozen=True)
class HelmCli:
    """The helm binary with cache, config and data under a test directory (not ~)."""

    binary: Path
    home: Path
    kubeconfig: Path

    def run(self, *args: str, timeout_s: float = 180.0) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        return subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def image_ref(image: str) -> dict[str, str]:
    repository, _, tag = image.rpartition(":")
    return {"repository": repository, "tag": tag, "pullPolicy": "Never"}


def chart_values(
    node: RealNode,
    *,
    operator_image: str,
    worker_image: str,
    watched: str,
    redis_port: int,
    workers: list[dict[str, Any]],
) -> dict[str, Any]:
    """Two operator replicas, and the given `workers` entries, all on the node's bridge."""
    return {
        "replicaCount": 2,
        "image": image_ref(operator_image),
        "extraEnv": node.api_env(),
        "watchNamespaces": [watched],
        "workerDefaults": {
            "image": image_ref(worker_image),
            "handlers": "jobqueue_worker.examples",
            "redis": {"host": node.address, "port": redis_port, "db": 0, "passwordSecretRef": None},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        },
        "workers": workers,
    }


def install(
    helm: HelmCli, release: str, namespace: str, values: dict[str, Any], workdir: Path
) -> str:
    path = workdir / f"{release}-values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    out = helm.run("install", release, str(CHART), "--namespace", namespace, "--values", str(path))
    if out.returncode != 0:
        raise AssertionError(f"helm install: {out.stderr.strip()}")
    return out.stdout
