"""The operator image, run by Docker, scales a Deployment on the local API server.

The container runs as its non-root user with a read-only root filesystem and a
/tmp volume (as the chart runs it), with the ServiceAccount's kubeconfig mounted
read-only, on the host's network so it reaches the loopback API server and Redis.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Kubectl, deployment, fill, jobqueue, wait_for

from jobqueue_devkit.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.k8s, pytest.mark.redis]


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def operator_container(
    project_images: Any, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[str]:
    # The container's user is not the file's owner: a readable copy, for this test only.
    mounted = tmp_path / "mounted" / "kubeconfig"
    mounted.parent.mkdir()
    mounted.write_text(operator_kubeconfig.read_text())
    mounted.chmod(0o644)
    name = f"jq-operator-{uuid.uuid4().hex[:8]}"
    started = docker(
        "run", "-d", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp:rw,size=16m", "--user", "10001:10001",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-v", f"{mounted.parent}:/etc/jobqueue:ro",
        "-e", "KUBECONFIG=/etc/jobqueue/kubeconfig",
        "-e", f"JQO_METRICS_PORT={free_port()}",
        project_images.operator,
        "--standalone", f"--namespace={namespace}",
        f"--liveness=http://127.0.0.1:{free_port()}/healthz",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        logs = docker("logs", "--tail", "60", name)
        print(f"--- {name} logs\n{logs.stdout}{logs.stderr}")
        docker("rm", "-f", name)


def test_the_operator_image_scales_a_deployment(
    operator_container: str, kubectl: Kubectl, namespace: str, redis_url: str
) -> None:
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue(
            "emails",
            namespace,
            "worker",
            redis_url,
            pollingIntervalSeconds=1,
            minReplicas=1,
            maxReplicas=10,
            scaleUp={"queueDepth": 10, "cooldownSeconds": 5, "maxStep": 3},
            scaleDown={"queueDepth": 2, "cooldownSeconds": 600},
        ),
    )
    fill(redis_url, "emails:jobs", 25)
    wait_for(lambda: kubectl.replicas("worker", namespace) > 1, 60, "a scale-up by the image")
    status = wait_for(
        lambda: kubectl.scaled_to(
            "worker", "emails", namespace, kubectl.replicas("worker", namespace)
        ),
        15,
        "the decision recorded in status",
    )
    assert status["desiredReplicas"] == kubectl.replicas("worker", namespace)
    user = docker("exec", operator_container, "id", "-u").stdout.strip()
    assert user == "10001"
