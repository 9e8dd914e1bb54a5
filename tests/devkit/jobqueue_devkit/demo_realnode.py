"""`make demo NODE=real`: the same demo, with containers under a real kubelet.

The operator runs as two Pods from the operator image (installed by the Helm
chart, one replica acting), the workers as Pods from the worker image (non-root,
read-only root filesystem, memory limit, readiness probe run by the kubelet),
on a real node (kubelet + containerd + a CNI bridge) beside its own control
plane. Redis is bound on the bridge so the Pods reach it. Ctrl-C stops and
removes all of it, including the node's mounts, bridge and iptables chains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from jobqueue_devkit import binaries, node_binaries
from jobqueue_devkit.chart_release import HelmCli, chart_values, install
from jobqueue_devkit.controlplane import REPO_ROOT
from jobqueue_devkit.demo import DemoOptions, Tally, console, enqueue_burst, render, summary
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.helm_binary import ensure_helm
from jobqueue_devkit.realnode import RealNode
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LoopSpec, Snapshot
from jobqueue_protocol.stats import queue_stats

RELEASE = "jobqueue-operator"
RELEASE_NS = "jobqueue-system"
SPEC = LoopSpec(
    namespace="jobqueue-demo",
    name="demo",
    queue="demo",
    min_replicas=1,
    max_replicas=4,
    scale_down_cooldown_s=10,
    scale_down_step=2,
)


def demo_worker(spec: LoopSpec) -> dict[str, Any]:
    """The chart's `workers` entry: one worker Deployment and the JobQueue that scales it."""
    return {
        "name": spec.name,
        "queues": [spec.queue],
        "terminationGracePeriodSeconds": 20,
        "env": [
            {"name": "JQW_CONCURRENCY", "value": str(spec.worker_concurrency)},
            # The worker's own grace plus hand-back time must fit in the Pod's 20 s.
            {"name": "JQW_GRACE_PERIOD_S", "value": "10"},
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
        "jobQueue": {
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "pollingIntervalSeconds": spec.polling_interval_s,
            "scaleUp": {
                "queueDepth": spec.scale_up_depth,
                "cooldownSeconds": spec.scale_up_cooldown_s,
                "maxStep": spec.scale_up_max_step,
            },
            "scaleDown": {
                "queueDepth": spec.scale_down_depth,
                "cooldownSeconds": spec.scale_down_cooldown_s,
                "step": spec.scale_down_step,
            },
        },
    }


def _get(node: RealNode, *args: str) -> dict[str, Any]:
    assert node.plane is not None
    with contextlib.suppress(DevkitError):
        data: dict[str, Any] = json.loads(node.plane.kubectl("get", *args, "-o", "json"))
        return data
    return {}


def _snapshot_k8s(node: RealNode, spec: LoopSpec) -> tuple[dict[str, Any], int, dict[str, Any]]:
    dep = _get(node, "deploy", f"{spec.name}-worker", "-n", spec.namespace)
    selector = f"jobqueue.dev/jobqueue={spec.name}"
    pods = _get(node, "pods", "-n", spec.namespace, "-l", selector).get("items", [])
    running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
    jq = _get(node, "jobqueue", spec.name, "-n", spec.namespace)
    return dep, len(running), dict(jq.get("status") or {})


async def snapshot(node: RealNode, redis: aioredis.Redis, spec: LoopSpec) -> Snapshot:
    stats = (await queue_stats(redis, [spec.queue]))[spec.queue]
    dep, running, status = await asyncio.to_thread(_snapshot_k8s, node, spec)
    return Snapshot(
        stats=stats,
        spec_replicas=int(dep.get("spec", {}).get("replicas") or 0),
        ready_replicas=int(dep.get("status", {}).get("readyReplicas") or 0),
        pods=running,
        jobqueue_status=status,
    )


async def watch(
    node: RealNode, redis: aioredis.Redis, options: DemoOptions, tally: Tally
) -> Snapshot:
    """Refresh the table until the queue is empty and the worker Pods are back at min."""
    from rich.live import Live

    spec = options.spec
    deadline = time.monotonic() + options.timeout_s
    snap = await snapshot(node, redis, spec)
    with Live(render(snap, tally, spec), console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            snap = await snapshot(node, redis, spec)
            tally.peak_replicas = max(tally.peak_replicas, snap.spec_replicas)
            if not tally.replicas or tally.replicas[-1] != snap.spec_replicas:
                tally.replicas.append(snap.spec_replicas)
            stats = snap.stats
            empty = stats.waiting == 0 and stats.in_flight == 0 and stats.delayed == 0
            if empty and tally.drained_after_s is None:
                tally.drained_after_s = time.monotonic() - tally.started
            live.update(render(snap, tally, spec))
            if empty and snap.spec_replicas == spec.min_replicas == snap.pods:
                return snap
            await asyncio.sleep(1.0)
    console.print(f"[yellow]stopped watching after {options.timeout_s:.0f}s[/yellow]")
    return snap


async def run_real_demo(options: DemoOptions, operator_image: str, worker_image: str) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jq-demo-real-"))
    node: RealNode | None = None
    redis_server: RedisServer | None = None
    client: aioredis.Redis | None = None
    spec = options.spec
    try:
        with console.status("starting a real node: control plane, containerd, kubelet, bridge"):
            node = RealNode(binaries.ensure_binaries(), node_binaries.ensure_node_binaries())
            node.start(owner_pid=os.getpid(), crds_dir=REPO_ROOT / "crds")
        with console.status("importing the operator and worker images into containerd"):
            node.import_image(operator_image)
            node.import_image(worker_image)
        redis_server = RedisServer(host=node.address, workdir=workdir / "redis").start()
        console.print(f"node Ready; kubeconfig {node.kubeconfig}; redis {redis_server.url}")
        for ns in (RELEASE_NS, spec.namespace):
            node.create_namespace(ns)
        values = chart_values(
            node,
            operator_image=operator_image,
            worker_image=worker_image,
            watched=spec.namespace,
            redis_port=redis_server.port,
            workers=[demo_worker(spec)],
        )
        helm = HelmCli(ensure_helm(), workdir / "helm-home", node.kubeconfig)
        with console.status("helm install: two operator Pods, the worker Deployment, a JobQueue"):
            install(helm, RELEASE, RELEASE_NS, values, workdir)
        client = aioredis.Redis.from_url(redis_server.url)
        with console.status("operator Pods and the first worker Pod starting"):
            for _ in range(240):
                snap = await snapshot(node, client, spec)
                if snap.ready_replicas >= spec.min_replicas and snap.desired is not None:
                    break
                await asyncio.sleep(0.5)
        tally = Tally()
        await enqueue_burst(redis_server.url, options)
        snap = await watch(node, client, options, tally)
        console.print(summary(snap, tally, options))
        return 0
    finally:
        with console.status("cleaning up: the node, its containers, mounts and bridge"):
            if client is not None:
                await client.aclose()
            if redis_server is not None:
                redis_server.cleanup()
            if node is not None:
                node.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def main(jobs: int, operator_image: str, worker_image: str) -> int:
    """Run the real-node demo; SIGINT and SIGTERM cancel it and the finally blocks clean up."""

    async def _main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        options = DemoOptions(jobs=jobs, spec=SPEC, timeout_s=900.0)
        return await run_real_demo(options, operator_image, worker_image)

    with contextlib.suppress(asyncio.CancelledError):
        return asyncio.run(_main())
    console.print("[yellow]interrupted: everything the demo started has been stopped[/yellow]")
    return 130
