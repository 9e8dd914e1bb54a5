"""The operator cut from its Redis by a half-open partition: it holds, says why, recovers.

A stopped Redis refuses connections at once (test_failures.py); a partition
answers nothing, so only the operator's own timeouts can notice. The JobQueue
reaches Redis through the tests' fault proxy, which drops every byte until healed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from operator_harness import Kubectl, OperatorProcess, deployment, drain, fill, jobqueue, wait_for

from jobqueue_devkit.fault_proxy import FaultProxy
from jobqueue_devkit.redis_server import RedisServer

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[FaultProxy]:
    fault = FaultProxy(redis_server.host, redis_server.port).start()
    yield fault
    fault.stop()


def test_partitioned_redis_holds_replicas_then_recovers_without_restart(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    proxy: FaultProxy,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        deployment("part-worker", namespace, replicas=3),
        jobqueue(
            "part", namespace, "part-worker", f"redis://{proxy.address}/0",
            pollingIntervalSeconds=1, minReplicas=1, maxReplicas=10,
            scaleUp={"queueDepth": 50}, scaleDown={"queueDepth": 5, "cooldownSeconds": 0},
        ),
    )  # fmt: skip
    fill(redis_url, "part:jobs", 20)  # in the band: hold at 3
    operator = start_operator()
    wait_for(
        lambda: kubectl.condition("part", namespace, "Ready").get("status") == "True", 30, "Ready"
    )

    proxy.blackhole()
    try:
        wait_for(
            lambda: (
                kubectl.condition("part", namespace, "MetricsAvailable").get("status") == "False"
            ),
            20,
            "MetricsAvailable=False during the partition",
        )
        ready = kubectl.condition("part", namespace, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "MetricsUnavailable")
        assert f"Redis at redis://{proxy.address}" in ready["message"], ready["message"]
        drain(redis_url, "part:jobs")  # an empty queue it cannot see must not scale it down
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert kubectl.replicas("part-worker", namespace) == 3, "scaled on missing data"
            time.sleep(0.25)
    finally:
        proxy.heal()

    wait_for(
        lambda: kubectl.condition("part", namespace, "MetricsAvailable").get("status") == "True",
        30,
        "MetricsAvailable=True after the partition heals",
    )
    # The same operator process (no restart) sees the drained queue and scales down.
    wait_for(lambda: kubectl.replicas("part-worker", namespace) < 3, 20, "scale-down after healing")
    assert operator.proc.poll() is None
