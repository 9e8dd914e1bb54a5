"""The chart installed on the real node: values, `helm install`, and what the API says of it.

The operator and worker images are imported into the node's containerd and never
pulled (pullPolicy Never). No kube-proxy runs on the node, so the operator Pods
get the API server's bridge address in KUBERNETES_SERVICE_HOST/PORT; Redis is
bound on the same bridge address.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jobqueue_devkit.realnode import RealNode

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "jobqueue-operator"


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


def kubectl_json(node: RealNode, *args: str) -> dict[str, Any]:
    """`kubectl get ... -o json`; {} when the object is not there (yet)."""
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={node.kubeconfig}", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        return {}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def pods(node: RealNode, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json(
        node, "get", "pods", "-n", namespace, "-l", selector
    ).get("items", [])
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def replicas(node: RealNode, namespace: str, deployment: str) -> int | None:
    dep = kubectl_json(node, "get", "deploy", deployment, "-n", namespace)
    value = dep.get("spec", {}).get("replicas")
    return int(value) if value is not None else None


def operator_pods_and_acting_replica(
    node: RealNode, release_ns: str, release: str, watched: str
) -> tuple[list[str], str | None]:
    """The operator's Pods (all Running and Ready) and the one that acts, if the API says.

    The one place that knows how the replicas elect their writer, so it is the
    one place to change when that changes. With kopf peering every replica writes
    its own entry into the KopfPeering object's status and only the highest
    priority one acts (the others pause), so the peers are listed but the actor
    is not named; with a coordination Lease its holderIdentity names the actor.
    Either way the caller asserts the observable result: both Pods Ready, and the
    worker Deployment scaled by exactly one decision stream.
    """
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/name=jobqueue-operator"
    found = pods(node, release_ns, selector)
    names = sorted(p["metadata"]["name"] for p in found if is_ready(p))
    acting: str | None = None
    for ns in (release_ns, watched):
        for lease in kubectl_json(node, "get", "leases", "-n", ns).get("items", []):
            holder = str(lease.get("spec", {}).get("holderIdentity") or "")
            matches = [n for n in names if holder.startswith(n)]
            if matches:
                acting = matches[0]
    return names, acting
