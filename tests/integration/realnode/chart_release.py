"""What the API server says of the chart's release on the real node."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from jobqueue_devkit.realnode import RealNode


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
    """The operator's Ready Pods, and the one that acts as the API server records it.

    The one place that knows how the replicas elect their writer, so the one place
    to change when that changes. A coordination Lease names the actor in its
    holderIdentity. With kopf peering every replica writes itself into the
    KopfPeering object's status (`<id>@<hostname>/...` with a random priority)
    and only the highest priority one acts, the others pause; a Pod's hostname is
    its name. None when neither names a Ready Pod of the release.
    """
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/name=jobqueue-operator"
    names = sorted(p["metadata"]["name"] for p in pods(node, release_ns, selector) if is_ready(p))

    def pod_of(identity: str) -> str | None:
        return next((n for n in names if n in identity), None)

    for ns in (release_ns, watched):
        for lease in kubectl_json(node, "get", "leases", "-n", ns).get("items", []):
            holder = pod_of(str(lease.get("spec", {}).get("holderIdentity") or ""))
            if holder is not None:
                return names, holder
    peers: list[tuple[int, str]] = []
    for peering in kubectl_json(node, "get", "kopfpeerings", "-n", watched).get("items", []):
        for identity, peer in (peering.get("status") or {}).items():
            pod = pod_of(identity)
            if pod is not None and isinstance(peer, dict):
                peers.append((int(peer.get("priority", 0)), pod))
    return names, (max(peers)[1] if peers else None)
