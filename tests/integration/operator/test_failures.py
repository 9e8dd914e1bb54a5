"""Failures: Redis down, a spec that cannot work, a missing target, a second autoscaler."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from operator_harness import (
    Kubectl,
    OperatorProcess,
    deployment,
    drain,
    fill,
    jobqueue,
    wait_for,
)

from jobqueue_devkit.redis_server import RedisServer

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]


def _status_of(kubectl: Kubectl, name: str, namespace: str, ctype: str) -> str | None:
    return kubectl.condition(name, namespace, ctype).get("status")


def test_redis_down_never_scales_down_then_fallback_then_recovers(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    redis_server: RedisServer,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    # "hold" has no fallback: it must only hold. "fb" falls back to 5 after 3 failures.
    # Both would scale down at once on an empty queue (cooldown 0): missing data must
    # never be read as an empty queue.
    scale_down = {"queueDepth": 5, "cooldownSeconds": 0}
    kubectl.apply(
        deployment("hold-worker", namespace, replicas=3),
        deployment("fb-worker", namespace, replicas=3),
        jobqueue(
            "hold", namespace, "hold-worker", redis_url,
            pollingIntervalSeconds=1, minReplicas=1, maxReplicas=10,
            scaleUp={"queueDepth": 50}, scaleDown=scale_down,
        ),
        jobqueue(
            "fb", namespace, "fb-worker", redis_url,
            pollingIntervalSeconds=1, minReplicas=1, maxReplicas=10,
            scaleUp={"queueDepth": 50}, scaleDown=scale_down,
            fallback={"failureThreshold": 3, "replicas": 5},
        ),
    )  # fmt: skip
    fill(redis_url, "hold:jobs", 20)  # in the band: hold at 3
    fill(redis_url, "fb:jobs", 20)
    start_operator()
    wait_for(lambda: _status_of(kubectl, "hold", namespace, "Ready") == "True", 30, "Ready")
    wait_for(lambda: _status_of(kubectl, "fb", namespace, "Ready") == "True", 30, "Ready")

    redis_server.stop()
    try:
        wait_for(
            lambda: _status_of(kubectl, "hold", namespace, "MetricsAvailable") == "False",
            10,
            "MetricsAvailable=False",
        )
        wait_for(lambda: kubectl.scaled_to("fb-worker", "fb", namespace, 5), 10, "fallback to 5")
        fallback = kubectl.condition("fb", namespace, "Fallback")
        assert fallback["status"] == "True"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert kubectl.replicas("hold-worker", namespace) == 3, "scaled on missing data"
            assert kubectl.replicas("fb-worker", namespace) == 5, "fallback must not drop"
            time.sleep(0.25)
        ready = kubectl.condition("hold", namespace, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "MetricsUnavailable")
        assert "Redis at" in ready["message"]
        status = kubectl.status("hold", namespace)
        assert status["consecutiveFailures"] >= 3
        events = kubectl("get", "events", "-n", namespace, "--field-selector",
                         "reason=MetricsUnavailable", "-o", "name")  # fmt: skip
        assert events.strip(), "a Warning Event for the outage"
    finally:
        redis_server.start()  # same port, same data (AOF)

    wait_for(
        lambda: _status_of(kubectl, "hold", namespace, "MetricsAvailable") == "True",
        15,
        "MetricsAvailable=True after Redis is back",
    )
    assert _status_of(kubectl, "hold", namespace, "Ready") == "True"
    assert kubectl.status("hold", namespace)["consecutiveFailures"] == 0
    wait_for(
        lambda: _status_of(kubectl, "fb", namespace, "Fallback") == "False", 10, "fallback off"
    )
    # Recovered data drives scaling again: the drained queue scales down.
    drain(redis_url, "hold:jobs")
    wait_for(
        lambda: kubectl.replicas("hold-worker", namespace) < 3, 10, "scale-down after recovery"
    )


def test_spec_that_cannot_work_sets_a_condition_and_a_fix_is_picked_up(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    # Admitted (no defaults policy is bound here), but the operator's defaults allow
    # at most 5 replicas: what happens when the defaults change after admission.
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue("bad", namespace, "worker", redis_url, pollingIntervalSeconds=1,
                 minReplicas=8),
    )  # fmt: skip
    start_operator(MAX_WORKERS="5", JQO_DEFAULTS_CONFIGMAP="")
    wait_for(
        lambda: kubectl.condition("bad", namespace, "Ready").get("reason") == "InvalidSpec",
        30,
        "Ready=False InvalidSpec",
    )
    ready = kubectl.condition("bad", namespace, "Ready")
    assert "minReplicas 8 is above maxReplicas 5" in ready["message"]
    assert kubectl.replicas("worker", namespace) == 1
    kubectl("patch", "jobqueue", "bad", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"minReplicas": 2}}')  # fmt: skip
    wait_for(lambda: kubectl.scaled_to("worker", "bad", namespace, 2), 10, "fixed spec acts")
    assert _status_of(kubectl, "bad", namespace, "Ready") == "True"
    assert kubectl.status("bad", namespace)["observedGeneration"] == 2


def test_missing_target_then_created(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        jobqueue("orphan", namespace, "later", redis_url, pollingIntervalSeconds=1, minReplicas=2)
    )
    start_operator()
    wait_for(
        lambda: kubectl.condition("orphan", namespace, "Ready").get("reason") == "TargetNotFound",
        30,
        "TargetNotFound",
    )
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=TargetNotFound")
    assert "Deployment later does not exist" in events
    kubectl.apply(deployment("later", namespace, replicas=1))
    wait_for(
        lambda: kubectl.scaled_to("later", "orphan", namespace, 2), 10, "recovery lifts to min"
    )
    assert _status_of(kubectl, "orphan", namespace, "Ready") == "True"


def test_refuses_a_target_that_an_hpa_or_another_jobqueue_scales(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        deployment("hpa-target", namespace, replicas=1),
        deployment("shared", namespace, replicas=1),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "cpu", "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": "hpa-target"},
                "minReplicas": 1,
                "maxReplicas": 3,
            },
        },
        jobqueue("vs-hpa", namespace, "hpa-target", redis_url, pollingIntervalSeconds=1,
                 minReplicas=2),
        jobqueue("first", namespace, "shared", redis_url, pollingIntervalSeconds=1,
                 minReplicas=2),
    )  # fmt: skip
    time.sleep(1.1)  # creationTimestamp has a one-second resolution
    kubectl.apply(
        jobqueue("second", namespace, "shared", redis_url, pollingIntervalSeconds=1, minReplicas=4)
    )
    start_operator()
    wait_for(
        lambda: kubectl.condition("vs-hpa", namespace, "Ready").get("reason") == "TargetConflict",
        30,
        "TargetConflict with the HPA",
    )
    assert (
        "HorizontalPodAutoscaler cpu" in kubectl.condition("vs-hpa", namespace, "Ready")["message"]
    )
    wait_for(
        lambda: kubectl.condition("second", namespace, "Ready").get("reason") == "TargetConflict",
        30,
        "TargetConflict with the older JobQueue",
    )
    assert "JobQueue first" in kubectl.condition("second", namespace, "Ready")["message"]
    wait_for(lambda: kubectl.replicas("shared", namespace) == 2, 10, "the older JobQueue acts")
    time.sleep(2)
    assert kubectl.replicas("hpa-target", namespace) == 1, "must not fight the HPA"
    assert kubectl.replicas("shared", namespace) == 2, "the younger JobQueue must not act"
    # The conflict check reads the operator's watch of HPAs: removing the HPA frees
    # the target on the next tick, with no restart and no re-list.
    kubectl("delete", "horizontalpodautoscaler", "cpu", "-n", namespace)
    wait_for(
        lambda: kubectl.scaled_to("hpa-target", "vs-hpa", namespace, 2), 15, "the target freed"
    )
    assert kubectl.condition("vs-hpa", namespace, "Ready").get("status") == "True"


def test_a_broken_jobqueue_does_not_slow_a_healthy_one(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    """KEDA's broken-object test: a Redis that never answers (a black-holed address)."""
    broken = jobqueue("broken", namespace, "broken-worker", redis_url, pollingIntervalSeconds=1)
    broken["spec"]["redis"] = {"host": "10.255.255.1", "port": 6379, "timeoutSeconds": 3}
    kubectl.apply(
        deployment("broken-worker", namespace, replicas=2),
        deployment("healthy-worker", namespace, replicas=1),
        broken,
        jobqueue("healthy", namespace, "healthy-worker", redis_url, pollingIntervalSeconds=1,
                 scaleUp={"queueDepth": 10, "cooldownSeconds": 0}, scaleDown={"queueDepth": 2}),
    )  # fmt: skip
    start_operator()
    wait_for(lambda: _status_of(kubectl, "healthy", namespace, "Ready") == "True", 30, "Ready")
    wait_for(
        lambda: _status_of(kubectl, "broken", namespace, "MetricsAvailable") == "False",
        30,
        "the broken one reports its Redis",
    )
    fill(redis_url, "healthy:jobs", 15)
    filled = time.monotonic()
    wait_for(lambda: kubectl.replicas("healthy-worker", namespace) == 2, 5, "healthy scale-up")
    assert time.monotonic() - filled < 3.0, "the healthy JobQueue kept its 1 s cadence"
    assert kubectl.replicas("broken-worker", namespace) == 2
