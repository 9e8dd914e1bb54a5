"""The worker image as the shipped manifests run it, under a real kubelet.

The example worker Deployment from `manifests/` (its securityContext, /tmp
emptyDir, probes and limits untouched) runs the image built by `make images`;
only the Redis address, the queue and the pull policy change. The kubelet's
readiness probe, the container's user and memory cgroup, and the jobs completed
in a Redis on the host's bridge address are what is asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobqueue_devkit.realnode import RealNode
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.waiting import eventually
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer

from .pods import apply, exec_in, new_namespace

pytestmark = [pytest.mark.realnode, pytest.mark.slow, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[3]
WORKERS = REPO / "manifests" / "examples" / "workers.yaml"
QUEUE = "realnode"


@pytest.fixture(scope="module")
def worker_redis(real_node: RealNode) -> Iterator[RedisServer]:
    server = RedisServer(host=real_node.address).start()
    yield server
    server.cleanup()


def example_worker(namespace: str, image: str, redis_url: str) -> dict[str, Any]:
    """The first example worker Deployment, pointed at our Redis, queue and image."""
    deployment = next(
        d for d in yaml.safe_load_all(WORKERS.read_text()) if d and d["kind"] == "Deployment"
    )
    deployment["metadata"]["namespace"] = namespace
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    container["args"] = ["worker", "--queues", QUEUE]
    env = [e for e in container["env"] if e["name"] not in ("REDIS_PASSWORD", "JQW_REDIS_URL")]
    container["env"] = [*env, {"name": "JQW_REDIS_URL", "value": redis_url}]
    return dict(deployment)


def ready_pods(node: RealNode, ns: str, name: str) -> list[dict[str, Any]]:
    assert node.plane is not None
    selector = f"app.kubernetes.io/name={name}"
    pods = json.loads(node.plane.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json"))
    return [
        p
        for p in pods["items"]
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]


async def test_the_worker_image_runs_as_a_pod_and_processes_jobs(
    real_node: RealNode, project_images: Any, worker_redis: RedisServer, tmp_path: Path
) -> None:
    image = real_node.import_image(project_images.worker)
    ns = new_namespace(real_node)
    deployment = example_worker(ns, image, worker_redis.url)
    name = deployment["metadata"]["name"]
    apply(real_node, deployment, tmp_path)

    async def ready() -> list[dict[str, Any]]:
        return await asyncio.to_thread(ready_pods, real_node, ns, name)

    # Ready comes from the kubelet running the manifests' httpGet probe.
    pods = await eventually(ready, timeout_s=120, interval_s=1)
    pod = pods[0]["metadata"]["name"]

    ident = exec_in(real_node, ns, pod, "id", "-u")
    assert ident.stdout.strip() == "10001", ident.stderr
    limit = exec_in(real_node, ns, pod, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    spec_limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert spec_limit["memory"].endswith("Mi")
    assert int(limit.stdout) == int(spec_limit["memory"][:-2]) * 1024 * 1024
    root_write = exec_in(real_node, ns, pod, "sh", "-c", "echo x > /opt/venv/probe")
    assert "Read-only file system" in root_write.stderr

    async with Producer(worker_redis.url, default_queue=QUEUE) as producer:
        ids = [await producer.enqueue("noop") for _ in range(10)]
        # Isolated jobs need the manifests' writable /tmp under the read-only root.
        ids.append(await producer.enqueue("spin_isolated", {"seconds": 0.05}))
        pending = set(ids)
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                record = await producer.status(job_id)
                if record is not None and record.status is JobStatus.COMPLETED:
                    pending.discard(job_id)
            await asyncio.sleep(0.2)
    assert not pending, f"{len(pending)} of {len(ids)} jobs did not complete in the Pod"
