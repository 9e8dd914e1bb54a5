"""`helm install` of the chart into the real local control plane, and a JobQueue from
the chart's `workers` example scaling its worker Deployment.

No images are built: the development pod runner runs the operator Pod's command
as a local process, with the token of the chart's ServiceAccount (TokenRequest)
as its only credentials, so the chart's RBAC is what the operator gets. One
replica: two processes on one host would share the health port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_harness import CHART, Helm

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.podrunner import PORT_ENV_ANNOTATION, RUN_LABEL, PodRunner
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_worker.producer import JobRequest, SyncProducer

pytestmark = [pytest.mark.helm, pytest.mark.k8s, pytest.mark.redis, pytest.mark.e2e]

QUEUE = "chart-burst"
MAX_REPLICAS = 4


def kubectl_json(plane: ControlPlane, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={plane.kubeconfig}", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        return {}
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def pod_logs(logs: Path) -> str:
    tails = [f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log"))]
    return "\n".join(tails) or "(no Pod ran)"


def kubeconfig_user(path: str) -> dict[str, Any]:
    user: dict[str, Any] = yaml.safe_load(Path(path).read_text())["users"][0]["user"]
    return user


async def eventually(
    check: Callable[[], Any],
    timeout_s: float,
    what: str,
    logs: Path,
    detail: Callable[[], str] = str,
) -> Any:
    """Poll `check` until it is truthy; on timeout show `detail()` and every Pod's log."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = pod_logs(logs)
            raise AssertionError(
                f"{what} not reached in {timeout_s:.0f}s {detail()}; Pod logs:\n{shown}"
            )
        await asyncio.sleep(0.5)


def values(watched: str, redis: RedisServer) -> dict[str, Any]:
    return {
        "replicaCount": 1,
        # The pod runner runs Pods with this label, and gives the named variable a
        # free loopback port (and probes readiness there).
        "podLabels": {RUN_LABEL: "true"},
        "podAnnotations": {PORT_ENV_ANNOTATION: "JQO_READY_PORT"},
        "health": {"port": free_port()},
        "metrics": {"port": free_port()},
        "webhook": {"port": free_port()},
        "watchNamespaces": [watched],
        "workerDefaults": {
            "handlers": "jobqueue_worker.examples",
            "redis": {"host": redis.host, "port": redis.port, "db": 0, "passwordSecretRef": None},
        },
        "workers": [
            {
                "name": "burst",
                "queues": [QUEUE],
                "jobQueue": {
                    "minReplicas": 1,
                    "maxReplicas": MAX_REPLICAS,
                    "pollingIntervalSeconds": 1,
                    "scaleUp": {"queueDepth": 50, "cooldownSeconds": 0, "maxStep": 3},
                },
            }
        ],
    }


async def test_helm_install_then_a_jobqueue_scales_its_worker(
    helm: Helm,
    control_plane: ControlPlane,
    redis_server: RedisServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    release, release_ns, watched = f"jq{suffix}", f"jq-op-{suffix}", f"jq-work-{suffix}"
    for ns in (release_ns, watched):
        control_plane.kubectl("create", "namespace", ns)
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values(watched, redis_server)))
    kube = ["--kubeconfig", str(control_plane.kubeconfig), "--namespace", release_ns]
    out = helm.ok("install", release, str(CHART), *kube, "--values", str(values_file))
    assert "STATUS: deployed" in out
    fullname = f"{release}-jobqueue-operator"

    stop = asyncio.Event()
    runner = PodRunner(release_ns, tmp_path / "pods")
    runner_task = asyncio.create_task(runner.run(control_plane.kubeconfig, stop))
    logs = tmp_path / "pods"
    try:
        # The operator Pod runs and its /readyz answers (the readiness probe).
        await eventually(
            lambda: (
                kubectl_json(control_plane, "get", "deploy", fullname, "-n", release_ns)
                .get("status", {})
                .get("readyReplicas")
            ),
            90,
            "a Ready operator Pod",
            logs,
        )
        (pod_name,) = runner.pods
        env = runner.pods[pod_name].env
        # The ServiceAccount's token, not the admin's client certificate.
        assert set(kubeconfig_user(env["KUBECONFIG"])) == {"token"}
        worker = kubectl_json(control_plane, "get", "deploy", "burst-worker", "-n", watched)
        assert worker["spec"]["replicas"] == 1  # the API server's default; the chart sets none

        producer = SyncProducer(redis_url, default_queue=QUEUE)
        try:
            producer.enqueue_many([JobRequest(type="noop", queue=QUEUE) for _ in range(200)])
        finally:
            producer.close()

        def scaled() -> bool:
            worker = kubectl_json(control_plane, "get", "deploy", "burst-worker", "-n", watched)
            if worker.get("spec", {}).get("replicas", 0) > 1:
                return True
            jq = kubectl_json(control_plane, "get", "jobqueue", "burst", "-n", watched)
            last_status.clear()
            last_status.update(jq.get("status") or {})
            return False

        last_status: dict[str, Any] = {}
        replicas = await eventually(
            scaled,
            90,
            "burst-worker scaled above 1 replica",
            logs,
            lambda: f"(JobQueue status: {last_status})",
        )
        assert replicas
        # The operator set the count it decided, and says so in the JobQueue's status.
        worker = kubectl_json(control_plane, "get", "deploy", "burst-worker", "-n", watched)
        status = kubectl_json(control_plane, "get", "jobqueue", "burst", "-n", watched)["status"]
        assert status["lastReason"] != "InvalidSpec", status
        assert status["desiredReplicas"] == worker["spec"]["replicas"] > 1

        # The queue stays full (no worker runs), so the operator goes on to maxReplicas.
        def at_max() -> bool:
            dep = kubectl_json(control_plane, "get", "deploy", "burst-worker", "-n", watched)
            return bool(dep.get("spec", {}).get("replicas") == MAX_REPLICAS)

        await eventually(at_max, 60, f"burst-worker at {MAX_REPLICAS} replicas", logs)
        # A `helm upgrade` (what a GitOps sync does) leaves the operator's count alone:
        # the chart's worker Deployment has no replicas field to reset it with.
        out = helm.ok("upgrade", release, str(CHART), *kube, "--values", str(values_file))
        assert "STATUS: deployed" in out
        worker = kubectl_json(control_plane, "get", "deploy", "burst-worker", "-n", watched)
        assert worker["metadata"]["labels"]["app.kubernetes.io/instance"] == release
        assert worker["spec"]["replicas"] == MAX_REPLICAS
    finally:
        # The JobQueue goes first, while the operator can still remove its finalizer.
        with contextlib.suppress(Exception):
            control_plane.kubectl(
                "delete", "jobqueue", "burst", "-n", watched, "--timeout=30s", timeout_s=40
            )
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner_task, 60)
        helm.run("uninstall", release, *kube)
        # The operator's webhook configurations outlive it (kopf keeps them for the
        # other replicas); none is left pointing at this release's Service.
        for config in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            control_plane.kubectl("delete", config, "jobqueue.dev", "--ignore-not-found")
        for ns in (watched, release_ns):
            control_plane.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
