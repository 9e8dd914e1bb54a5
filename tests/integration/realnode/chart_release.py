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
