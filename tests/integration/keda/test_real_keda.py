"""Real KEDA v2.21 on the local control plane, with our external scaler and our operator.

KEDA creates an HPA per ScaledObject; the HPA controller decides from the
external metric that reaches it through the aggregation layer, KEDA's adapter
and KEDA's operator, which calls our scaler over gRPC. Pods stay Pending (no
kubelet): what counts is the Deployment's ``spec.replicas`` and the HPA status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from keda_harness import ScalerProcess
from operator_harness import Kubectl, OperatorProcess, deployment, drain, fill, jobqueue, wait_for

from jobqueue_devkit.keda_stack import KedaStack
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.redis_server import RedisServer

pytestmark = [pytest.mark.keda, pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

POLL_S = 2
COOLDOWN_S = 10


def scaled_object(
    name: str,
    namespace: str,
    scaler: ScalerProcess,
    metadata: dict[str, str],
    max_replicas: int = 10,
) -> dict[str, Any]:
    """A ScaledObject with fast polls and an HPA behaviour that follows at once."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "pollingInterval": POLL_S,
            "cooldownPeriod": COOLDOWN_S,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "external",
                    "metricType": "AverageValue",
                    "metadata": {"scalerAddress": scaler.address, **metadata},
                }
            ],
        },
    }


def hpa(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    found = kubectl("get", "hpa", f"keda-hpa-{name}", "-n", namespace, "-o", "json", check=False)
    return json.loads(found) if found.lstrip().startswith("{") else {}


def hpa_desired(kubectl: Kubectl, name: str, namespace: str) -> int | None:
    status = hpa(kubectl, name, namespace).get("status") or {}
    return status.get("desiredReplicas")


def hpa_metric(kubectl: Kubectl, name: str, namespace: str) -> str | None:
    status = hpa(kubectl, name, namespace).get("status") or {}
    for metric in status.get("currentMetrics") or []:
        value = (metric.get("external") or {}).get("current", {}).get("averageValue")
        if value is not None:
            return str(value)
    return None


def test_backlog_scales_a_deployment_from_zero_to_n_and_back_to_zero(
    real_keda: KedaStack, keda_namespace: str, keda_scaler: ScalerProcess, redis_url: str
) -> None:
    kubectl, ns, queue = Kubectl(real_keda.plane), keda_namespace, "keda:jobs"
    fill(redis_url, queue, 1)
    drain(redis_url, queue)  # the queue exists (its counters), empty
    kubectl.apply(
        deployment("worker", ns, replicas=0),
        scaled_object("worker", ns, keda_scaler, {"queue": queue, "targetBacklogPerReplica": "10"}),
    )
    wait_for(lambda: hpa(kubectl, "worker", ns), 30, "KEDA's HPA keda-hpa-worker")
    assert kubectl.replicas("worker", ns) == 0

    fill(redis_url, queue, 40)
    wait_for(lambda: kubectl.replicas("worker", ns) == 4, 60, "0 -> 4 replicas")
    wait_for(lambda: hpa_desired(kubectl, "worker", ns) == 4, 30, "HPA desiredReplicas 4")
    wait_for(lambda: hpa_metric(kubectl, "worker", ns) == "10", 30, "HPA sees 40 / 4 = 10")

    fill(redis_url, queue, 30)
    wait_for(lambda: kubectl.replicas("worker", ns) == 7, 60, "4 -> 7 replicas")

    drain(redis_url, queue)
    wait_for(
        lambda: kubectl.replicas("worker", ns) == 0,
        COOLDOWN_S + 6 * POLL_S + 60,
        "back to 0 after KEDA's cooldown",
    )
    events = kubectl("get", "events", "-n", ns, "-o", "name", "--field-selector",
                     "reason=KEDAScaleTargetDeactivated")  # fmt: skip
    assert events.strip(), "KEDA deactivated the target itself (1 -> 0)"


def test_replicas_mode_hands_our_policy_count_to_the_hpa(
    real_keda: KedaStack, keda_namespace: str, keda_scaler: ScalerProcess, redis_url: str
) -> None:
    kubectl, ns, queue = Kubectl(real_keda.plane), keda_namespace, "policy:jobs"
    metadata = {
        "queue": queue,
        "mode": "replicas",
        "maxReplicas": "8",
        "scaleUpQueueDepth": "10",
        "scaleDownQueueDepth": "2",
    }
    kubectl.apply(
        deployment("policy", ns, replicas=0), scaled_object("policy", ns, keda_scaler, metadata)
    )
    fill(redis_url, queue, 50)
    # From zero the policy wakes ceil(50 / scaleUp.queueDepth) = 5 workers at once; the
    # HPA (target 1, AverageValue) hands that count through.
    wait_for(lambda: kubectl.replicas("policy", ns) == 5, 60, "0 -> 5 replicas (the policy)")
    wait_for(lambda: hpa_desired(kubectl, "policy", ns) == 5, 30, "HPA desiredReplicas 5")
    wait_for(lambda: hpa_metric(kubectl, "policy", ns) == "1", 30, "HPA sees 5 / 5 = 1")


def test_redis_down_holds_the_replicas_instead_of_scaling_to_zero(
    real_keda: KedaStack,
    keda_namespace: str,
    keda_scaler: ScalerProcess,
    redis_url: str,
    redis_server: RedisServer,
) -> None:
    """The scaler answers UNAVAILABLE, not 0: KEDA and the HPA keep what runs."""
    kubectl, ns, queue = Kubectl(real_keda.plane), keda_namespace, "outage:jobs"
    kubectl.apply(
        deployment("outage", ns, replicas=0),
        scaled_object("outage", ns, keda_scaler, {"queue": queue, "targetBacklogPerReplica": "10"}),
    )
    fill(redis_url, queue, 30)
    wait_for(lambda: kubectl.replicas("outage", ns) == 3, 60, "0 -> 3 replicas")
    redis_server.stop()
    try:
        # Longer than KEDA's cooldown plus several polls and HPA syncs: a 0 would be acted on.
        deadline = time.monotonic() + COOLDOWN_S + 6 * POLL_S + 10
        while time.monotonic() < deadline:
            assert kubectl.replicas("outage", ns) == 3, "scaled while the metric was unknown"
            time.sleep(1)
        events = kubectl("get", "events", "-n", ns, "-o", "json")
        assert "FailedGetExternalMetric" in events or "KEDAScalerFailed" in events, (
            "neither KEDA nor the HPA reported the failing metric"
        )
    finally:
        redis_server.start()
    assert "UNAVAILABLE" in keda_scaler.log.read_text()


def test_a_jobqueue_refuses_a_deployment_that_a_scaled_object_scales(
    real_keda: KedaStack,
    keda_namespace: str,
    keda_scaler: ScalerProcess,
    redis_url: str,
    tmp_path: Path,
) -> None:
    kubectl, ns, queue = Kubectl(real_keda.plane), keda_namespace, "both:jobs"
    fill(redis_url, queue, 1)
    kubectl.apply(
        deployment("both", ns, replicas=1),
        scaled_object("both", ns, keda_scaler, {"queue": queue}),
    )
    wait_for(lambda: hpa(kubectl, "both", ns), 30, "KEDA's HPA keda-hpa-both")
    spec = jobqueue("both", ns, "both", redis_url, pollingIntervalSeconds=1, minReplicas=3)
    spec["spec"]["queues"] = [queue]
    kubectl.apply(spec)
    operator = _start_operator(real_keda, ns, tmp_path)
    try:
        wait_for(
            lambda: kubectl.condition("both", ns, "Ready").get("reason") == "TargetConflict",
            60,
            "TargetConflict with KEDA",
        )
        message = kubectl.condition("both", ns, "Ready")["message"]
        assert "KEDA ScaledObject both (HorizontalPodAutoscaler keda-hpa-both)" in message
        assert kubectl.replicas("both", ns) != 3, "the JobQueue never wrote its minReplicas"
    finally:
        operator.stop()
        kubectl("patch", "jobqueue", "both", "-n", ns, "--type=merge",
                "-p", '{"metadata":{"finalizers":[]}}', check=False)  # fmt: skip


def _start_operator(stack: KedaStack, namespace: str, tmp_path: Path) -> OperatorProcess:
    metrics_port, health_port = free_port(), free_port()
    log = tmp_path / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(stack.plane.kubeconfig),
        "JQO_METRICS_PORT": str(metrics_port),
        "JQO_LEASE_NAMESPACE": namespace,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobqueue_operator.cli", "--standalone",
             f"--namespace={namespace}", f"--liveness=http://127.0.0.1:{health_port}/healthz"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    return OperatorProcess(proc, log, metrics_port, health_port)
