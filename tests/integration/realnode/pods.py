"""Small helpers the real-node tests share: create a Pod, wait for its phase, read it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from jobqueue_devkit.realnode import RealNode
from jobqueue_devkit.waiting import NotReachedError


def new_namespace(node: RealNode) -> str:
    name = f"rn-{uuid.uuid4().hex[:8]}"
    node.create_namespace(name)
    return name


def apply(node: RealNode, manifest: dict[str, Any], workdir: Path) -> None:
    path = workdir / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    assert node.plane is not None
    node.plane.kubectl("apply", "-f", str(path))


def pod(node: RealNode, namespace: str, name: str) -> dict[str, Any]:
    assert node.plane is not None
    out = node.plane.kubectl("get", "pod", name, "-n", namespace, "-o", "json", timeout_s=15)
    result: dict[str, Any] = json.loads(out)
    return result


def wait_phase(
    node: RealNode, namespace: str, name: str, phases: set[str], timeout_s: float = 120.0
) -> dict[str, Any]:
    """Poll until the Pod reaches one of `phases`; fail with its last status."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = pod(node, namespace, name)
        if last.get("status", {}).get("phase") in phases:
            return last
        time.sleep(0.5)
    raise NotReachedError(f"pod {name} not in {phases} after {timeout_s}s: {last.get('status')}")


def exec_in(
    node: RealNode, namespace: str, name: str, *argv: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl exec` (through the API server and the kubelet), not raising on a non-zero exit."""
    return subprocess.run(
        ["kubectl", f"--kubeconfig={node.kubeconfig}", "exec", "-n", namespace, name, "--", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def python_pod(
    namespace: str, name: str, image: str, script: str, *, restart: str = "Never", **spec: Any
) -> dict[str, Any]:
    """A one-container Pod running `python3 -u -c script` from `image` (already on the node)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-u", "-c", script],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"restartPolicy": restart, "containers": [container], **spec},
    }
