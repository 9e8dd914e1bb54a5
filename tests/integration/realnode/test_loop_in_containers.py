"""The whole loop in containers: the chart's operator scales worker Pods run by a kubelet.

One `helm install` for the module: two operator replicas from the operator image,
and three worker Deployments (each with its JobQueue) from the worker image, all
imported into the node's containerd. What is asserted is what the node and the
API server did (Pod names, container user and cgroup limit, restart counts and
last states, `/scale`) and the job records in Redis against the ids enqueued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobqueue_devkit.chart_release import HelmCli, chart_values, install
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.helm_binary import ensure_helm
from jobqueue_devkit.realnode import RealNode
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_operator.timing import DIRECTION_DWELL_S
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer
from jobqueue_worker.records import JobRecord

from .chart_release import (
    is_ready,
    kubectl_json,
    operator_pods_and_acting_replica,
    pods,
    replicas,
)
from .pods import exec_in

pytestmark = [pytest.mark.realnode, pytest.mark.slow, pytest.mark.docker, pytest.mark.e2e]

MiB = 1024 * 1024
LOOP_LIMIT_MI = 256
LEAK_LIMIT_MI, LEAK_HARD_MI, LEAK_SOFT_MI = 256, 160, 130
OOM_LIMIT_MI = 192
GRACE_S = 20
MAX_WORKERS = 3


def workers() -> list[dict[str, Any]]:
    """The three worker Deployments: a scaling pool, a leaking one, one that gets OOM-killed."""
    return [
        {
            "name": "loop",
            "queues": ["loop"],
            "terminationGracePeriodSeconds": GRACE_S,
            # One job at a time per Pod, so which Pod is busy is unambiguous.
            "env": [
                {"name": "JQW_CONCURRENCY", "value": "1"},
                # The worker's own grace plus hand-back time must fit in the Pod's.
                {"name": "JQW_GRACE_PERIOD_S", "value": str(GRACE_S - 10)},
            ],
            "resources": {"limits": {"cpu": "500m", "memory": f"{LOOP_LIMIT_MI}Mi"}},
            "jobQueue": {
                "minReplicas": 0,
                "maxReplicas": MAX_WORKERS,
                "pollingIntervalSeconds": 1,
                "scaleUp": {"queueDepth": 2, "cooldownSeconds": 0, "maxStep": MAX_WORKERS},
                "scaleDown": {
                    "queueDepth": 1,
                    "cooldownSeconds": 0,
                    "step": MAX_WORKERS,
                    "scaleToZeroAfterSeconds": 5,
                },
            },
        },
        {
            "name": "leak",
            "queues": ["leak"],
            "env": [
                {"name": "JQW_CONCURRENCY", "value": "1"},
                # Below the container's limit: the worker recycles before the kernel kills.
                {"name": "WORKER_MEMORY_HARD_LIMIT", "value": f"{LEAK_HARD_MI}Mi"},
                {"name": "WORKER_MEMORY_SOFT_LIMIT", "value": f"{LEAK_SOFT_MI}Mi"},
                {"name": "JQW_MEMORY_CHECK_INTERVAL_S", "value": "0.2"},
            ],
            "resources": {"limits": {"cpu": "500m", "memory": f"{LEAK_LIMIT_MI}Mi"}},
            "jobQueue": {"minReplicas": 1, "maxReplicas": 1, "pollingIntervalSeconds": 1},
        },
        {
            "name": "oom",
            "queues": ["oom"],
            "env": [
                {"name": "JQW_CONCURRENCY", "value": "1"},
                # No memory limit of its own: only the kernel's OOM killer stops it.
                {"name": "JQW_USE_CGROUP_LIMIT", "value": "false"},
                # A short lease, so the killed attempt's job comes back soon.
                {"name": "JQW_LEASE_S", "value": "3"},
            ],
            "resources": {"limits": {"cpu": "500m", "memory": f"{OOM_LIMIT_MI}Mi"}},
            "jobQueue": {"minReplicas": 1, "maxReplicas": 1, "pollingIntervalSeconds": 1},
        },
    ]


@dataclass(frozen=True)
class Loop:
    node: RealNode
    redis: RedisServer
    release: str
    release_ns: str
    watched: str


@pytest.fixture(scope="module")
def loop(
    real_node: RealNode, project_images: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loop]:
    workdir = tmp_path_factory.mktemp("loop")
    try:
        binary = ensure_helm()
    except DevkitError as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"helm unavailable: {exc} (CI=true: a missing tool fails the run)")
        pytest.skip(f"helm unavailable: {exc}")
    helm = HelmCli(binary, workdir / "helm-home", real_node.kubeconfig)
    operator_image = real_node.import_image(project_images.operator)
    worker_image = real_node.import_image(project_images.worker)
    redis = RedisServer(host=real_node.address).start()
    suffix = uuid.uuid4().hex[:6]
    release, release_ns, watched = f"jq{suffix}", f"jq-op-{suffix}", f"jq-work-{suffix}"
    for ns in (release_ns, watched):
        real_node.create_namespace(ns)
    values = chart_values(
        real_node,
        operator_image=operator_image,
        worker_image=worker_image,
        watched=watched,
        redis_port=redis.port,
        workers=workers(),
    )
    try:
        install(helm, release, release_ns, values, workdir)
        yield Loop(real_node, redis, release, release_ns, watched)
    finally:
        assert real_node.plane is not None
        plane = real_node.plane
        # Best-effort: the node, with everything in it, is removed after the session.
        # The JobQueues go first, while the operator can still remove their finalizers.
        with contextlib.suppress(DevkitError, subprocess.SubprocessError):
            plane.kubectl(
                "delete", "jobqueue", "--all", "-n", watched, "--timeout=30s", timeout_s=40
            )
        helm.run("uninstall", release, "--namespace", release_ns, "--wait", "--timeout", "60s")
        for ns in (watched, release_ns):
            with contextlib.suppress(DevkitError, subprocess.SubprocessError):
                plane.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        redis.cleanup()


async def until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` (run in a thread: it shells out) until truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} not reached in {timeout_s:.0f}s (last: {last!r})")


def worker_pods(loop: Loop, name: str) -> list[dict[str, Any]]:
    return pods(loop.node, loop.watched, f"jobqueue.dev/jobqueue={name}")


def ready_workers(loop: Loop, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in worker_pods(loop, name)
        if is_ready(p) and "deletionTimestamp" not in p["metadata"]
    ]


def ready_worker(loop: Loop, name: str) -> dict[str, Any] | None:
    ready = ready_workers(loop, name)
    return ready[0] if ready else None


async def records(producer: Producer, ids: list[str], queue: str) -> dict[str, JobRecord | None]:
    return {job_id: await producer.status(job_id, queue) for job_id in ids}


async def wait_completed(
    producer: Producer, ids: list[str], queue: str, timeout_s: float
) -> dict[str, JobRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await records(producer, ids, queue)
        done = {i: r for i, r in found.items() if r is not None and r.status is JobStatus.COMPLETED}
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            states = {i: (r.status if r else None) for i, r in found.items() if i not in done}
            raise AssertionError(
                f"{len(ids) - len(done)} of {len(ids)} jobs not completed: {states}"
            )
        await asyncio.sleep(0.3)


def container_status(pod: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = pod["status"]["containerStatuses"][0]
    return status


def cgroup_usage(loop: Loop, pod: str) -> int:
    out = exec_in(
        loop.node, loop.watched, pod, "cat", "/sys/fs/cgroup/memory/memory.usage_in_bytes"
    )
    return int(out.stdout)


# --------------------------------------------------------------------------- tests
async def test_operator_replicas_run_from_the_image_and_scale_workers_0_to_n_to_0(
    loop: Loop,
) -> None:
    node, ns = loop.node, loop.watched
    fullname = f"{loop.release}-jobqueue-operator"

    def operators_ready() -> list[str] | None:
        names, _ = operator_pods_and_acting_replica(node, loop.release_ns, loop.release, ns)
        return names if len(names) == 2 else None

    operator_pods = await until(operators_ready, 150, "two Ready operator Pods")
    operator_pod = operator_pods[0]
    ident = exec_in(node, loop.release_ns, operator_pod, "id", "-u")
    assert ident.stdout.strip() == "10001", ident.stderr

    # Nothing waits: the operator takes the chart's Deployment (started at 1) to 0.
    await until(lambda: replicas(node, ns, "loop-worker") == 0, 90, "loop-worker at 0")
    await until(lambda: not worker_pods(loop, "loop"), 60, "no loop-worker Pods")

    async with Producer(loop.redis.url, default_queue="loop") as producer:
        ledger = [await producer.enqueue("sleep", {"seconds": 1.0}) for _ in range(30)]
        await until(
            lambda: replicas(node, ns, "loop-worker") == MAX_WORKERS, 60, "loop-worker at max"
        )
        scaled_up_at = time.monotonic()

        def all_ready() -> list[dict[str, Any]] | None:
            ready = [p for p in worker_pods(loop, "loop") if is_ready(p)]
            return ready if len(ready) == MAX_WORKERS else None

        # Ready is the kubelet running the chart's httpGet probe on /readyz.
        ready = await until(all_ready, 120, f"{MAX_WORKERS} Ready loop-worker Pods")
        probe = ready[0]["spec"]["containers"][0]["readinessProbe"]
        assert probe["httpGet"]["path"] == "/readyz"
        # Both replicas are Ready and one of them, named by the API, acts: the
        # scaling above is its doing.
        _, acting = operator_pods_and_acting_replica(node, loop.release_ns, loop.release, ns)
        assert acting in operator_pods, (acting, operator_pods)

        pod = ready[0]["metadata"]["name"]
        assert exec_in(node, ns, pod, "id", "-u").stdout.strip() == "10001"
        root_write = exec_in(node, ns, pod, "sh", "-c", "echo x > /opt/probe")
        assert "Read-only file system" in root_write.stderr
        tmp_write = exec_in(node, ns, pod, "sh", "-c", "echo x > /tmp/probe && cat /tmp/probe")
        assert tmp_write.stdout.strip() == "x", tmp_write.stderr
        mounts = exec_in(node, ns, pod, "cat", "/proc/mounts").stdout
        assert any(line.split()[1] == "/tmp" for line in mounts.splitlines())
        limit = exec_in(node, ns, pod, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert int(limit.stdout) == LOOP_LIMIT_MI * MiB

        await wait_completed(producer, ledger, "loop", 90)

        # One long job keeps one Pod busy while the queue is empty: the operator
        # scales down, and the ReplicaSet controller must remove the idle Pods.
        # The operator reverses a scale no sooner than DIRECTION_DWELL_S after it, so the
        # long job must still run then.
        long_s = max(15.0, DIRECTION_DWELL_S - (time.monotonic() - scaled_up_at) + 20.0)
        long_job = await producer.enqueue("sleep", {"seconds": long_s})
        ledger.append(long_job)

        async def busy_pod() -> str:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rec = await producer.status(long_job, "loop")
                if rec is not None and rec.status is JobStatus.ACTIVE and rec.worker:
                    return rec.worker
                await asyncio.sleep(0.2)
            raise AssertionError("the long job never started")

        busy_worker = await busy_pod()
        before = {p["metadata"]["name"] for p in worker_pods(loop, "loop")}
        busy = {n for n in before if busy_worker.startswith(n) or n in busy_worker}
        assert len(busy) == 1, (busy_worker, before)
        removed: set[str] = set()
        deadline = time.monotonic() + long_s + 30
        while time.monotonic() < deadline:
            now = await asyncio.to_thread(worker_pods, loop, "loop")
            alive = {p["metadata"]["name"] for p in now if "deletionTimestamp" not in p["metadata"]}
            removed |= before - alive
            if len(removed) >= MAX_WORKERS - 1:
                break
            rec = await producer.status(long_job, "loop")
            if rec is not None and rec.status is JobStatus.COMPLETED:
                break
            await asyncio.sleep(0.3)
        assert removed, "no Pod was removed while the long job ran"
        assert not removed & busy, f"busy Pod {busy} was removed before idle ones: {removed}"
        assert removed <= before - busy

        done = await wait_completed(producer, ledger, "loop", 60)
        # The ledger: every id enqueued completed, each delivered once (none interrupted).
        assert set(done) == set(ledger)
        redelivered = {i: r.deliveries for i, r in done.items() if r.deliveries != 1}
        assert not redelivered, redelivered

    await until(lambda: replicas(node, ns, "loop-worker") == 0, 90, "loop-worker back at 0")
    await until(lambda: not worker_pods(loop, "loop"), 2 * GRACE_S + 30, "every Pod gone")
    operator = kubectl_json(node, "get", "deploy", fullname, "-n", loop.release_ns)
    assert operator["status"]["readyReplicas"] == 2


async def test_a_leaking_job_is_recycled_before_the_container_limit(loop: Loop) -> None:
    node, ns = loop.node, loop.watched
    first = await until(lambda: ready_worker(loop, "leak"), 150, "a Ready leak-worker Pod")
    pod = first["metadata"]["name"]
    limit = exec_in(node, ns, pod, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(limit.stdout) == LEAK_LIMIT_MI * MiB
    ids: list[str] = []
    async with Producer(loop.redis.url, default_queue="leak") as producer:
        # One at a time, so the worker samples its memory between jobs.
        for _ in range(14):
            job_id = await producer.enqueue("leak_memory", {"mb": 16})
            ids.append(job_id)
            await wait_completed(producer, [job_id], "leak", 60)
            await asyncio.sleep(0.5)
        done = await wait_completed(producer, ids, "leak", 30)
    assert set(done) == set(ids)
    current = kubectl_json(node, "get", "pod", pod, "-n", ns)
    status = container_status(current)
    # 14 x 16 MiB is over the worker's hard limit: it recycled (exit 0) at least once,
    # and the kernel never had to kill it.
    assert status["restartCount"] >= 1, status
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] == 0, terminated
    assert terminated["reason"] != "OOMKilled", terminated


async def test_an_oom_killed_job_is_redelivered_not_lost(loop: Loop) -> None:
    node, ns = loop.node, loop.watched
    first = await until(lambda: ready_worker(loop, "oom"), 150, "a Ready oom-worker Pod")
    pod = first["metadata"]["name"]
    restarts_before = container_status(first)["restartCount"]
    # One leak fits under the container's limit, two do not.
    free = OOM_LIMIT_MI * MiB - cgroup_usage(loop, pod)
    mb = int(free * 0.7 / MiB)
    assert mb > 10, f"the idle worker already uses most of its {OOM_LIMIT_MI} MiB"
    async with Producer(loop.redis.url, default_queue="oom") as producer:
        kept = await producer.enqueue("leak_memory", {"mb": mb})
        await wait_completed(producer, [kept], "oom", 60)
        killer = await producer.enqueue("leak_memory", {"mb": mb})

        def oom_killed() -> dict[str, Any] | None:
            status = container_status(kubectl_json(node, "get", "pod", pod, "-n", ns))
            last = status.get("lastState", {}).get("terminated") or {}
            if status["restartCount"] > restarts_before and last.get("reason") == "OOMKilled":
                return status
            return None

        await until(oom_killed, 60, "the container OOMKilled and restarted")
        done = await wait_completed(producer, [kept, killer], "oom", 120)
    # The killed attempt was not lost: the job came back and completed.
    assert done[killer].deliveries >= 2, done[killer]
    assert done[kept].deliveries == 1


async def test_the_kubelets_sigterm_lets_busy_workers_finish_or_hand_back(loop: Loop) -> None:
    """Pods deleted while busy: the kubelet's SIGTERM, then the Pod's grace period.

    A job shorter than the worker's own grace finishes in the Pod being stopped;
    a longer one is handed back and completes in another Pod. Nothing is lost.
    """
    node, ns = loop.node, loop.watched
    assert node.plane is not None
    short_s, long_s = 3.0, 25.0
    # The pool is held at two Pods (KEDA's paused-replicas) so that each job has a
    # Pod of its own from the start: left to the scaler, two jobs on a pool at zero
    # wake one Pod (one per scaleUp.queueDepth), which may run both in turn.
    node.plane.kubectl(
        "patch", "jobqueue", "loop", "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": {"pausedReplicas": 2}}),
    )  # fmt: skip

    await until(lambda: len(ready_workers(loop, "loop")) == 2, 150, "two Ready loop-worker Pods")
    async with Producer(loop.redis.url, default_queue="loop") as producer:
        short = await producer.enqueue("sleep", {"seconds": short_s})
        long = await producer.enqueue("sleep", {"seconds": long_s})

        async def running_on() -> dict[str, str]:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                found = await records(producer, [short, long], "loop")
                active = {
                    i: r.worker
                    for i, r in found.items()
                    if r is not None and r.status is JobStatus.ACTIVE and r.worker
                }
                if len(active) == 2:
                    return active
                await asyncio.sleep(0.2)
            raise AssertionError(f"the two jobs never ran at once: {found}")

        workers_of = await running_on()
        names = {p["metadata"]["name"] for p in worker_pods(loop, "loop")}
        busy = {job: next(n for n in names if n in w) for job, w in workers_of.items()}
        assert busy[short] != busy[long]
        node.plane.kubectl("delete", "pod", "-n", ns, *busy.values(), "--wait=false")

        def gone() -> bool:
            left = {p["metadata"]["name"] for p in worker_pods(loop, "loop")}
            return not left & set(busy.values())

        # The kubelet kills whatever is left at the grace period's end.
        await until(gone, GRACE_S + 30, "the deleted Pods gone")
        done = await wait_completed(producer, [short, long], "loop", long_s + 90)
    assert busy[short] in str(done[short].worker), "the short job did not finish in its Pod"
    assert busy[long] not in str(done[long].worker), "the long job was not handed back"
