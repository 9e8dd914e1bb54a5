"""Scaling on a real control plane and a real Redis, by the operator as its ServiceAccount."""

from __future__ import annotations

import time
import urllib.request
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

from jobqueue_operator.status import from_rfc3339

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

INTERVAL_S = 2


def _ready(kubectl: Kubectl, name: str, namespace: str) -> bool:
    return kubectl.condition(name, namespace, "Ready").get("status") == "True"


def test_scale_up_within_one_interval_by_the_step_then_cooldown_holds(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue(
            "emails",
            namespace,
            "worker",
            redis_url,
            pollingIntervalSeconds=INTERVAL_S,
            minReplicas=1,
            maxReplicas=20,
            scaleUp={"queueDepth": 10, "cooldownSeconds": 6, "maxStep": 3},
            scaleDown={"queueDepth": 2, "cooldownSeconds": 600},
        ),
    )
    op = start_operator()
    wait_for(lambda: _ready(kubectl, "emails", namespace), 30, "JobQueue Ready")

    filled_wall = time.time()
    fill(redis_url, "emails:jobs", 25)  # 2.5x the threshold: severity 2, +2
    filled = time.monotonic()
    wait_for(lambda: kubectl.replicas("worker", namespace) != 1, INTERVAL_S + 3, "a scale-up")
    seen_s = time.monotonic() - filled
    assert kubectl.replicas("worker", namespace) == 3, "one step of severity 2 is +2"
    status = wait_for(lambda: kubectl.scaled_to("worker", "emails", namespace, 3), 5, "recorded")
    first_up = from_rfc3339(status["lastScaleUpTime"])
    assert first_up is not None
    decided_s = first_up - filled_wall
    print(
        f"\nreaction: /scale written {decided_s:.2f}s after the fill, seen by kubectl after "
        f"{seen_s:.2f}s (pollingIntervalSeconds={INTERVAL_S})"
    )
    # One interval of sleep plus one tick's own work (tens of ms; slack for a busy CI box).
    assert decided_s <= INTERVAL_S + 0.75, "the operator must react within one interval"
    assert seen_s <= INTERVAL_S + 1.5  # plus kubectl's own ~0.2 s per poll
    # The queue stays above the threshold; inside the 6 s cooldown nothing moves.
    while time.time() < first_up + 5.5:
        assert kubectl.replicas("worker", namespace) == 3, "scaled inside the cooldown"
        time.sleep(0.2)
    status = wait_for(
        lambda: kubectl.scaled_to("worker", "emails", namespace, 5), 6 + INTERVAL_S + 3, "next step"
    )
    second_up = from_rfc3339(status["lastScaleUpTime"])
    assert second_up is not None
    assert second_up - first_up >= 6.0

    events = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=ScaledUp")
    assert "Scaled Deployment worker from 1 to 3" in events

    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as r:
        exposition = r.read().decode()
    labels = f'jobqueue="emails",namespace="{namespace}"'
    assert f'jobqueue_operator_scale_actions_total{{direction="up",{labels}}} 2.0' in exposition
    assert f"jobqueue_operator_queue_depth{{{labels}}} 25.0" in exposition
    assert f"jobqueue_operator_current_replicas{{{labels}}}" in exposition
    assert f"jobqueue_operator_loop_duration_seconds_count{{{labels}}}" in exposition


def test_pause_annotation_freezes_the_target(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    job = jobqueue("paused", namespace, "worker", redis_url, pollingIntervalSeconds=1,
                   scaleUp={"queueDepth": 10, "cooldownSeconds": 0},
                   scaleDown={"queueDepth": 2})  # fmt: skip
    job["metadata"]["annotations"] = {"jobqueue.dev/paused": "true"}
    kubectl.apply(deployment("worker", namespace, replicas=1), job)
    fill(redis_url, "paused:jobs", 100)
    start_operator()
    wait_for(
        lambda: kubectl.condition("paused", namespace, "Paused").get("status") == "True",
        30,
        "Paused=True",
    )
    time.sleep(2.5)
    assert kubectl.replicas("worker", namespace) == 1, "scaled while paused"
    kubectl("annotate", "jobqueue", "paused", "-n", namespace, "jobqueue.dev/paused-")
    wait_for(lambda: kubectl.replicas("worker", namespace) > 1, 10, "scaling after unpause")
    assert kubectl.condition("paused", namespace, "Paused")["status"] == "False"


def test_drained_queue_scales_down_after_cooldown_never_below_min(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    kubectl.apply(
        deployment("worker", namespace, replicas=4),
        jobqueue(
            "reports",
            namespace,
            "worker",
            redis_url,
            pollingIntervalSeconds=1,
            minReplicas=2,
            maxReplicas=10,
            scaleUp={"queueDepth": 50, "cooldownSeconds": 5},
            scaleDown={"queueDepth": 5, "cooldownSeconds": 4, "step": 1},
        ),
    )
    fill(redis_url, "reports:jobs", 20)  # in the band: hold at 4
    start_operator()
    wait_for(lambda: _ready(kubectl, "reports", namespace), 30, "JobQueue Ready")
    time.sleep(2.5)
    assert kubectl.replicas("worker", namespace) == 4, "the hysteresis band must hold"

    drain(redis_url, "reports:jobs")
    status = wait_for(lambda: kubectl.scaled_to("worker", "reports", namespace, 3), 4, "1st down")
    first_down = from_rfc3339(status["lastScaleDownTime"])
    assert first_down is not None
    while time.time() < first_down + 3.5:
        assert kubectl.replicas("worker", namespace) == 3, "scaled down inside the cooldown"
        time.sleep(0.2)
    status = wait_for(lambda: kubectl.scaled_to("worker", "reports", namespace, 2), 7, "2nd down")
    second_down = from_rfc3339(status["lastScaleDownTime"])
    assert second_down is not None
    assert second_down - first_down >= 4.0
    # At min: stays there, with the limit explained.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert kubectl.replicas("worker", namespace) == 2, "went below minReplicas"
        time.sleep(0.3)
    limited = kubectl.condition("reports", namespace, "ScalingLimited")
    assert limited["status"] == "True"
    assert "MinReplicas" in limited["message"]


def test_operator_killed_mid_cooldown_keeps_the_cooldown(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    cooldown_s = 12
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue(
            "hooks",
            namespace,
            "worker",
            redis_url,
            pollingIntervalSeconds=1,
            maxReplicas=10,
            scaleUp={"queueDepth": 10, "cooldownSeconds": cooldown_s},
            scaleDown={"queueDepth": 2},
        ),
    )
    fill(redis_url, "hooks:jobs", 12)  # severity 1: +1
    first = start_operator()
    status = wait_for(lambda: kubectl.scaled_to("worker", "hooks", namespace, 2), 15, "first up")
    scaled_at = from_rfc3339(status["lastScaleUpTime"])
    assert scaled_at is not None

    first.kill()  # SIGKILL mid-cooldown: nothing in memory survives
    time.sleep(1)
    start_operator()
    # The new process must read the last scale-up time from status and wait.
    while time.time() < scaled_at + cooldown_s - 1.0:
        assert kubectl.replicas("worker", namespace) == 2, "restart forgot the cooldown"
        time.sleep(0.2)
    status = wait_for(
        lambda: kubectl.scaled_to("worker", "hooks", namespace, 3), 6, "scale-up after the cooldown"
    )
    later = from_rfc3339(status["lastScaleUpTime"])
    assert later is not None
    assert later - scaled_at >= cooldown_s
