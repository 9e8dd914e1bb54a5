"""Busy-aware scaling on the real control plane: which Pods go, from zero, never to zero mid-job.

Real parts only: kube-apiserver/etcd/kube-controller-manager (its ReplicaSet
controller honours pod-deletion-cost), redis-server, the `jobqueue-operator`
process under its own ServiceAccount, and worker processes run for the Pods by
the development pod runner. Nothing about Kubernetes or Redis is mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LocalLoop, LoopSpec, Snapshot
from jobqueue_protocol import keys
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = [pytest.mark.e2e, pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def pods_of(plane: ControlPlane, namespace: str) -> dict[str, dict[str, object]]:
    """Live (not terminating) Pods by name, with their annotations."""
    raw = json.loads(plane.kubectl("get", "pods", "-n", namespace, "-o", "json"))
    return {
        p["metadata"]["name"]: p["metadata"].get("annotations") or {}
        for p in raw["items"]
        if not p["metadata"].get("deletionTimestamp")
    }


#: The worker logs this at SIGTERM when it still has jobs (it then finishes them)...
HAD_JOBS = "Draining in-flight jobs"
#: ... and this when the grace period ran out and it handed jobs back unfinished.
HANDED_BACK = "Handing back unfinished jobs"


BUSY = LoopSpec(
    namespace="busy",
    name="busy",
    queue="busy",
    min_replicas=1,
    max_replicas=4,
    polling_interval_s=1,
    scale_down_cooldown_s=1,
    scale_down_step=2,
    worker_concurrency=1,
    worker_grace_s=5.0,
    jobqueue_extra={"paused": True},
)


async def test_scale_down_removes_the_idle_pods_and_keeps_the_busy_one(
    control_plane: ControlPlane, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    """Three workers, one busy with a long job: scaling to one keeps exactly the busy one.

    Without the deletion costs the ReplicaSet would pick by readiness time and
    UID (effectively at random), so this fails two times in three if the choice
    is not made. The busy worker's job must finish, not be handed back.
    """
    ledger = tmp_path / "ledger.txt"
    ns, deployment = BUSY.namespace, f"{BUSY.name}-worker"
    async with LocalLoop(control_plane, redis_server, BUSY, tmp_path / "loop") as loop:
        await loop.wait_for(lambda s: s.ready_replicas == 1, 90, "the first worker Ready")
        # Paused, the operator leaves the count alone while the test sets it up.
        control_plane.kubectl("scale", "deployment", deployment, "-n", ns, "--replicas=3")
        await loop.wait_for(
            lambda s: s.ready_replicas == 3 and len({w.pod_name for w in s.stats.workers}) == 3,
            90,
            "three workers Ready and heartbeating",
        )
        async with Producer(redis_url, default_queue=BUSY.queue) as producer:
            job = await producer.enqueue("record", {"ledger": str(ledger), "sleep": 12.0})
        snap = await loop.wait_for(
            lambda s: any(w.active_jobs for w in s.stats.workers),
            20,
            "a worker busy with the long job",
        )
        busy_pod = next(w.pod_name for w in snap.stats.workers if w.active_jobs)
        idle_pods = {w.pod_name for w in snap.stats.workers} - {busy_pod}

        control_plane.kubectl(
            "patch", "jobqueue", BUSY.name, "-n", ns, "--type=merge",
            "-p", '{"spec":{"paused":false}}',
        )  # fmt: skip
        # The operator lowers /scale first and records its choice in the status PATCH
        # that ends the same tick, so a snapshot may fall between the two writes.
        snap = await loop.wait_for(
            lambda s: s.spec_replicas == 1 and "podSelection" in s.jobqueue_status,
            30,
            "the operator scaling to 1 and recording its choice",
        )
        chosen = snap.jobqueue_status["podSelection"]
        assert set(chosen.get("chosenPods", [])) == idle_pods, chosen
        assert chosen.get("protectedPods") == [busy_pod], chosen
        # ... and told to take no new job before the ReplicaSet removes them (the
        # operator records the Pods only once the drain hash write succeeded; the
        # hash itself may already be withdrawn again by the time it could be read)
        assert set(chosen.get("drainRequested", [])) == idle_pods, chosen
        r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        drain_key = keys.drain_key(BUSY.queue)

        deadline = time.monotonic() + 30
        while set(pods_of(control_plane, ns)) != {busy_pod}:
            assert time.monotonic() < deadline, pods_of(control_plane, ns)
            await asyncio.sleep(0.25)
        settled = await loop.wait_for(
            lambda s: bool(s.jobqueue_status.get("podSelection", {}).get("settled")),
            20,
            "the scale-down settled",
        )
        selection = settled.jobqueue_status["podSelection"]
        assert set(selection["removedPods"]) == idle_pods, selection
        assert "exactly the chosen" in selection["message"], selection
        # the annotation is gone from the survivor: costs are not left behind
        assert DELETION_COST not in pods_of(control_plane, ns)[busy_pod]
        # and so are the drain entries (withdrawn on the tick after settling)
        deadline = time.monotonic() + 10
        while await r.hlen(drain_key):
            assert time.monotonic() < deadline, await r.hgetall(drain_key)
            await asyncio.sleep(0.25)
        await r.aclose()

        await loop.wait_for(lambda s: s.stats.in_flight == 0, 30, "the long job done")
        removed_mid_job = loop.removed_pods_logging(HAD_JOBS)
    ran = ledger.read_text().split() if ledger.exists() else []
    print(f"\nbusy pod {busy_pod} kept; removed {sorted(idle_pods)}; mid-job: {removed_mid_job}")
    assert removed_mid_job == []
    assert ran.count(job) == 1, "the long job ran once, to the end, on the pod that was kept"


def busy(pod: str) -> Callable[[Snapshot], bool]:
    return lambda s: any(w.pod_name == pod and w.active_jobs == 1 for w in s.stats.workers)


DRAIN = dataclasses.replace(
    BUSY, namespace="drain", name="drain", queue="drain", worker_concurrency=2, worker_grace_s=2.0
)
#: Far longer than the grace period: only a scale-down that waits for it keeps it whole.
DRAINED_JOB_S = 15.0


async def test_a_drained_pod_finishes_a_job_longer_than_its_grace_period_before_it_goes(
    control_plane: ControlPlane, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    """Two workers of concurrency 2, one long job each: one Pod's slots hold both jobs.

    The policy wants one replica. Drain first, the Pod whose job has run the
    least takes no new job but stays in ``/scale`` until its job is done, then
    goes. Lowering ``/scale`` at once would SIGTERM it mid-job, and with a grace
    period of 2 s its 15 s job would be handed back.
    """
    ledger = tmp_path / "ledger.txt"
    ns, deployment = DRAIN.namespace, f"{DRAIN.name}-worker"
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    drain_key = keys.drain_key(DRAIN.queue)
    async with LocalLoop(control_plane, redis_server, DRAIN, tmp_path / "loop") as loop:
        await loop.wait_for(lambda s: s.ready_replicas == 1, 90, "the first worker Ready")
        control_plane.kubectl("scale", "deployment", deployment, "-n", ns, "--replicas=2")
        snap = await loop.wait_for(
            lambda s: s.ready_replicas == 2 and len({w.pod_name for w in s.stats.workers}) == 2,
            90,
            "two workers Ready and heartbeating",
        )
        first, second = sorted(str(w.pod_name) for w in snap.stats.workers)
        jobs: dict[str, str] = {}
        async with Producer(redis_url, default_queue=DRAIN.queue) as producer:
            # One job on each Pod: the other one is held off by the drain hash the
            # workers read on every fetch (the paused operator writes none).
            for runs_on, held_off in ((first, second), (second, first)):
                await r.hset(drain_key, held_off, 1)
                jobs[runs_on] = await producer.enqueue(
                    "record", {"ledger": str(ledger), "sleep": DRAINED_JOB_S}
                )
                await loop.wait_for(busy(runs_on), 20, f"{runs_on} busy with its long job")
                await r.delete(drain_key)
        control_plane.kubectl(
            "patch", "jobqueue", DRAIN.name, "-n", ns, "--type=merge",
            "-p", '{"spec":{"paused":false}}',
        )  # fmt: skip
        draining = await loop.wait_for(
            lambda s: bool(s.jobqueue_status.get("drainingPods")),
            20,
            "the operator draining a Pod",
        )
        # the job that started last has run the least: its Pod is the one to drain
        assert draining.jobqueue_status["drainingPods"] == [second], draining.jobqueue_status
        assert draining.spec_replicas == 2, "drained, still counted until its job is done"
        assert await r.hexists(drain_key, second)
        removed = await loop.wait_for(
            lambda s: s.spec_replicas == 1, DRAINED_JOB_S + 30, "the drained Pod removed"
        )
        assert removed.stats.in_flight <= 1, "the other long job may still run"
        deadline = time.monotonic() + 30
        while set(pods_of(control_plane, ns)) != {first}:
            assert time.monotonic() < deadline, pods_of(control_plane, ns)
            await asyncio.sleep(0.25)
        await loop.wait_for(lambda s: s.stats.in_flight == 0, 30, "both long jobs done")
        handed_back = loop.removed_pods_logging(HANDED_BACK)
        had_jobs = loop.removed_pods_logging(HAD_JOBS)
    await r.aclose()
    ran = ledger.read_text().split() if ledger.exists() else []
    assert (handed_back, had_jobs) == ([], []), "the Pod went only once idle"
    for pod, job in jobs.items():
        assert ran.count(job) == 1, f"the job on {pod} ran once, to the end"


ZERO = LoopSpec(
    namespace="zero",
    name="zero",
    queue="zero",
    min_replicas=0,
    max_replicas=6,
    polling_interval_s=1,
    scale_up_depth=5,
    scale_up_cooldown_s=3,
    scale_up_max_step=1,
    scale_down_depth=2,
    scale_down_cooldown_s=1,
    scale_down_step=2,
    worker_concurrency=1,
    worker_grace_s=5.0,
)
IDLE_BEFORE_ZERO_S = 4
LONG_JOB_S = 10.0


async def test_from_zero_straight_to_the_needed_count_and_never_to_zero_mid_job(
    control_plane: ControlPlane, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    """20 jobs at zero replicas wake 4 workers at once (20 / scaleUp.queueDepth 5), not 1.

    19 of them are short; then a long job runs alone: the count never reaches zero while it is in
    flight, and reaches zero only scaleToZeroAfterSeconds after it finished.
    """
    ledger = tmp_path / "ledger.txt"
    spec = dataclasses.replace(
        ZERO,
        jobqueue_extra={
            "scaleDown": {
                "queueDepth": ZERO.scale_down_depth,
                "queueLatencySeconds": ZERO.scale_down_latency_s,
                "cooldownSeconds": ZERO.scale_down_cooldown_s,
                "step": ZERO.scale_down_step,
                "scaleToZeroAfterSeconds": IDLE_BEFORE_ZERO_S,
            }
        },
    )
    async with LocalLoop(control_plane, redis_server, spec, tmp_path / "loop") as loop:
        await loop.wait_for(
            lambda s: s.desired == 0 and s.spec_replicas == 0,
            60,
            "the operator reporting at zero replicas",
        )
        async with Producer(redis_url, default_queue=spec.queue) as producer:
            short = await producer.enqueue_many(
                [
                    JobRequest(type="record", payload={"ledger": str(ledger), "sleep": 1.0})
                    for _ in range(19)
                ]
            )
            long_job = await producer.enqueue(
                "record", {"ledger": str(ledger), "sleep": LONG_JOB_S}
            )
        woke = await loop.wait_for(lambda s: s.spec_replicas > 0, 20, "the wake from zero")
        assert woke.spec_replicas == 4, f"woke to {woke.spec_replicas}, not straight to 4"

        # From here on, sample until the queue is back at zero replicas.
        in_flight_at_zero = []
        last_busy = time.monotonic()
        deadline = time.monotonic() + 120
        while True:
            snap = await loop.snapshot()
            busy = snap.stats.in_flight or snap.stats.waiting
            if busy:
                last_busy = time.monotonic()
                if snap.spec_replicas == 0:
                    in_flight_at_zero.append(snap)
            elif snap.spec_replicas == 0:
                break
            assert time.monotonic() < deadline, f"never back at zero; last: {snap}"
            await asyncio.sleep(0.25)
        idle_before_zero = time.monotonic() - last_busy
        decisions = snap.jobqueue_status.get("decisions", [])
        # Jobs were still waiting during the scale-downs, so a worker chosen as idle
        # may fetch one in the second before its SIGTERM; it must finish it, never
        # hand it back (grace 5 s, jobs 1 s).
        handed_back = loop.removed_pods_logging(HANDED_BACK)

    wake = next(d for d in decisions if d["fromReplicas"] == 0 and d["action"] == "ScaleUp")
    assert (wake["toReplicas"], wake["reason"]) == (4, "ScaleFromZero"), wake
    assert in_flight_at_zero == [], "scaled to zero with a job in flight"
    # the operator saw the last job finish up to a poll and a heartbeat later than we did
    assert idle_before_zero >= IDLE_BEFORE_ZERO_S - 2, idle_before_zero
    ran = ledger.read_text().split("\n")
    ids = [line.split()[0] for line in ran if line.strip()]
    assert sorted(ids) == sorted([*short, long_job]), "every job ran exactly once"
    assert handed_back == []


ORDERED = dataclasses.replace(
    BUSY, namespace="ordered", name="ordered", queue="ordered", kind="StatefulSet"
)
#: Long enough that a scale-down that did not wait for it would show.
ORDERED_JOB_S = 12.0


async def test_a_statefulset_drains_its_highest_ordinals_and_waits_for_the_busy_top(
    control_plane: ControlPlane, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    """Three StatefulSet workers, the highest ordinal busy: scaling to one waits for it.

    A StatefulSet ignores pod-deletion-cost and removes the highest ordinals, so
    the operator cannot keep the busy ``-2`` and remove ``-0`` instead. It drains
    ``-2`` and ``-1`` (the Pods the StatefulSet will remove), keeps ``/scale`` at
    3 while ``-2`` runs its job (lowering it would remove ``-2`` first), then
    lowers it to 1 once ``-2`` is idle. The real StatefulSet controller removes
    them; the job ran once, to the end.
    """
    ledger = tmp_path / "ledger.txt"
    ns, workers = ORDERED.namespace, f"{ORDERED.name}-worker"
    top, middle, bottom = (f"{workers}-{i}" for i in (2, 1, 0))
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    drain_key = keys.drain_key(ORDERED.queue)
    async with LocalLoop(control_plane, redis_server, ORDERED, tmp_path / "loop") as loop:
        await loop.wait_for(lambda s: s.ready_replicas == 1, 90, "the first worker Ready")
        control_plane.kubectl("scale", "statefulset", workers, "-n", ns, "--replicas=3")
        await loop.wait_for(
            lambda s: s.ready_replicas == 3 and len({w.pod_name for w in s.stats.workers}) == 3,
            90,
            "three workers Ready and heartbeating",
        )
        # The long job goes to the highest ordinal: the others are held off by the
        # drain hash the workers read on every fetch (the paused operator writes none).
        await r.hset(drain_key, mapping={bottom: 1, middle: 1})
        # Taken before the enqueue: the job starts after this and runs ORDERED_JOB_S,
        # so it is still running until at least started + ORDERED_JOB_S (taken after
        # the busy check, the check's own delay made the bound up to a poll too late).
        started = time.monotonic()
        async with Producer(redis_url, default_queue=ORDERED.queue) as producer:
            job = await producer.enqueue("record", {"ledger": str(ledger), "sleep": ORDERED_JOB_S})
        await loop.wait_for(busy(top), 20, f"{top} busy with the long job")
        await r.delete(drain_key)

        control_plane.kubectl(
            "patch", "jobqueue", ORDERED.name, "-n", ns, "--type=merge",
            "-p", '{"spec":{"paused":false}}',
        )  # fmt: skip
        draining = await loop.wait_for(
            lambda s: len(s.jobqueue_status.get("drainingPods") or []) == 2,
            20,
            "the operator draining the two highest ordinals",
        )
        assert draining.jobqueue_status["drainingPods"] == [middle, top]
        # While the top Pod's job runs, /scale stays: lowering it would remove the top first.
        while time.monotonic() - started < ORDERED_JOB_S - 2:
            snap = await loop.snapshot()
            assert snap.spec_replicas == 3, f"lowered while {top} was busy: {snap}"
            await asyncio.sleep(0.5)
        snap = await loop.wait_for(
            lambda s: s.spec_replicas == 1 and "podSelection" in s.jobqueue_status,
            30,
            "/scale lowered to 1 once the top was idle",
        )
        assert time.monotonic() - started >= ORDERED_JOB_S
        chosen = snap.jobqueue_status["podSelection"]
        assert chosen["chosenPods"] == [top, middle], chosen
        assert "StatefulSet" in chosen["message"], chosen
        assert chosen.get("protectedPods", []) == [], "no cost is written for a StatefulSet"

        deadline = time.monotonic() + 40
        while set(pods_of(control_plane, ns)) != {bottom}:
            assert time.monotonic() < deadline, pods_of(control_plane, ns)
            await asyncio.sleep(0.25)
        assert all(DELETION_COST not in a for a in pods_of(control_plane, ns).values())
        settled = await loop.wait_for(
            lambda s: bool(s.jobqueue_status.get("podSelection", {}).get("settled")),
            20,
            "the scale-down settled",
        )
        selection = settled.jobqueue_status["podSelection"]
        assert sorted(selection["removedPods"]) == sorted([top, middle]), selection
        assert "the StatefulSet removed exactly the chosen Pods" in selection["message"]
        removed_mid_job = loop.removed_pods_logging(HAD_JOBS)
    await r.aclose()
    ran = ledger.read_text().split() if ledger.exists() else []
    assert removed_mid_job == [], "no Pod went while it had a job"
    assert ran.count(job) == 1, "the long job ran once, to the end"
