"""Pause at N (KEDA's paused-replicas): the target goes to N and stays there, whatever the queue."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from operator_harness import Kubectl, OperatorProcess, deployment, fill, jobqueue, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]


def test_paused_replicas_sets_the_count_then_holds_it_and_removing_it_resumes(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue("emails", namespace, "worker", redis_url, pollingIntervalSeconds=1,
                 minReplicas=1, maxReplicas=10, pausedReplicas=4,
                 scaleUp={"queueDepth": 10, "cooldownSeconds": 0},
                 scaleDown={"queueDepth": 2, "cooldownSeconds": 0}),
    )  # fmt: skip
    start_operator()
    wait_for(lambda: kubectl.replicas("worker", namespace) == 4, 30, "paused at 4")
    paused = kubectl.condition("emails", namespace, "Paused")
    assert paused["status"] == "True", paused
    # A queue far past the threshold changes nothing while paused.
    fill(redis_url, "emails:jobs", 100)
    time.sleep(3)
    assert kubectl.replicas("worker", namespace) == 4
    assert kubectl.status("emails", namespace)["lastReason"] == "Paused"
    kubectl("patch", "jobqueue", "emails", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"pausedReplicas": null}}')  # fmt: skip
    wait_for(lambda: kubectl.replicas("worker", namespace) > 4, 15, "scaling resumes")
    assert kubectl.condition("emails", namespace, "Paused")["status"] == "False"
