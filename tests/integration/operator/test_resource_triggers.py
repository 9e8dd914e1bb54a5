"""The memory trigger on a real control plane and a real Redis: requests from the Pod template.

The heartbeat is written the way a worker writes it (the shared JSON format,
``seen_at`` on Redis's clock), so the operator's whole path is real: the
Deployment read for the container's memory request, the heartbeat read, the
decision, the /scale write. CPU is not tested end to end because the heartbeat
does not carry it yet (docs/operator.md, CPU and memory triggers).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis
from operator_harness import Kubectl, OperatorProcess, deployment, jobqueue, wait_for

from jobqueue_protocol import keys

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

MIB = 2**20


def heartbeat(redis_url: str, queue: str, worker: str, rss_bytes: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        secs, _ = client.time()
        payload = {
            "seen_at": float(secs),
            "worker_id": worker,
            "state": "idle",
            "active_jobs": 0,
            "jobs": [],
            "rss_bytes": rss_bytes,
            "pod_name": worker,
        }
        client.hset(keys.workers_key(queue), worker, json.dumps(payload))
    finally:
        client.close()


def test_memory_past_its_target_adds_workers(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    dep = deployment("worker", namespace, replicas=2)
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"memory": "100Mi", "cpu": "250m"}
    }
    kubectl.apply(
        dep,
        jobqueue(
            "mem",
            namespace,
            "worker",
            redis_url,
            pollingIntervalSeconds=1,
            minReplicas=1,
            maxReplicas=10,
            scaleUp={"memoryPercent": 80, "cooldownSeconds": 600, "maxStep": 3},
            scaleDown={"memoryPercent": 50, "queueDepth": 2, "cooldownSeconds": 0},
        ),
    )
    # Two workers at 60 MiB (60 %): between the thresholds, so no scale-down either way.
    for worker in ("w-a", "w-b"):
        heartbeat(redis_url, "mem:jobs", worker, 60 * MIB)
    start_operator()
    wait_for(
        lambda: "memory 60%" in (kubectl.status("mem", namespace).get("lastMessage") or ""),
        20,
        "the memory use in the decision",
    )
    assert kubectl.replicas("worker", namespace) == 2, "60 % is not below the 50 % down mark"
    # Now 150 MiB each: 150 % of the request, target 80 %: ceil(2 x 150 / 80) = 4.
    for worker in ("w-a", "w-b"):
        heartbeat(redis_url, "mem:jobs", worker, 150 * MIB)
    status = wait_for(
        lambda: kubectl.scaled_to("worker", "mem", namespace, 4), 10, "memory scale-up"
    )
    assert status["lastReason"] == "MemoryHigh"
