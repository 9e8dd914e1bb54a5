"""Two operator replicas with kopf peering: exactly one acts; a clean exit hands over."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from operator_harness import Kubectl, OperatorProcess, deployment, fill, jobqueue, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
PEERING = "jobqueue-operator"


@pytest.fixture
def peering(kubectl: Kubectl, namespace: str) -> str:
    kubectl("apply", "-f", str(ROOT / "manifests" / "peering" / "crd.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=30s",
            "crd/kopfpeerings.kopf.dev")  # fmt: skip
    wait_for(lambda: "kopfpeerings" in kubectl("api-resources", "-o", "name"), 30, "discovery")
    kubectl.apply(
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": PEERING, "namespace": namespace},
        }
    )
    return PEERING


def test_only_the_highest_priority_replica_acts_and_hands_over(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    peering: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue("emails", namespace, "worker", redis_url, pollingIntervalSeconds=1,
                 maxReplicas=10, scaleUp={"queueDepth": 10, "cooldownSeconds": 3},
                 scaleDown={"queueDepth": 2}),
    )  # fmt: skip
    low = start_operator(peering=peering, priority=10)
    high = start_operator(peering=peering, priority=20)

    wait_for(lambda: high.loops() == 1, 60, "the high-priority replica runs the loop")
    wait_for(lambda: low.loops() == 0, 30, "the low-priority replica pauses")
    fill(redis_url, "emails:jobs", 15)
    wait_for(lambda: kubectl.replicas("worker", namespace) >= 2, 10, "a scale-up")
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert (high.loops(), low.loops()) == (1, 0), "both replicas active"
        time.sleep(0.3)
    assert "Scaled Deployment" in high.output()
    assert "Scaled Deployment" not in low.output()

    before = kubectl.replicas("worker", namespace)
    high.stop()  # clean exit: kopf removes its peering record
    wait_for(lambda: low.loops() == 1, 30, "the standby takes over")
    wait_for(lambda: kubectl.replicas("worker", namespace) > before, 15, "the standby scales")
    assert "Scaled Deployment" in low.output()
