"""The full loop on the real control plane: burst, scale up, drain, scale down, lose nothing.

Real parts only: kube-apiserver/etcd/kube-controller-manager, redis-server, the
`jobqueue-operator` process under its own ServiceAccount, worker processes run
for the Deployment's Pods by the development pod runner. Every job writes a
line to a ledger file, so "no job lost" is checked against what actually ran.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LocalLoop, LoopSpec, Snapshot, ledger_runs
from jobqueue_protocol.keys import BACKGROUND
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = [pytest.mark.e2e, pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

BURST = 2000
BURST_JOB_S = 0.01  # 20 worker-seconds in all: the loop reaches its maximum before it drains
# Outlasts the policy's 60 s dwell between a scale-up and the next scale-down, so the
# long jobs still run when the scale-down comes, and finishes within the worker's
# 45 s drain grace after it.
LONG_JOB_S = 75.0

SPEC = LoopSpec(
    namespace="e2e",
    name="e2e",
    queue="e2e",
    min_replicas=1,
    max_replicas=4,
    polling_interval_s=1,
    scale_up_depth=100,
    scale_up_cooldown_s=2,
    scale_up_max_step=2,
    scale_down_depth=10,
    scale_down_cooldown_s=6,
    scale_down_step=1,
    # The operator keeps busy workers and drains before it removes by default; this
    # test opts out of both so that a scale-down really removes a worker mid-job and
    # proves its graceful shutdown loses nothing.
    scale_down_allow_disruption=True,
    scale_down_drain_first=False,
    # One job per worker: when every pod holds a long job, any pod the
    # ReplicaSet removes is busy, so the test really removes a worker mid-job.
    worker_concurrency=1,
    worker_lease_s=10.0,
    worker_grace_s=45.0,
)


class Recorder:
    """The replica count over time, as the test saw it."""

    def __init__(self) -> None:
        self.replicas: list[tuple[float, int]] = []

    def observe(self, snap: Snapshot) -> None:
        if not self.replicas or self.replicas[-1][1] != snap.spec_replicas:
            self.replicas.append((time.monotonic(), snap.spec_replicas))

    def changes(self) -> list[int]:
        values = [r for _, r in self.replicas]
        return [b - a for a, b in itertools.pairwise(values)]


async def test_burst_scales_up_drains_and_scales_back_without_loss(
    control_plane: ControlPlane, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    recorder = Recorder()
    async with LocalLoop(control_plane, redis_server, SPEC, tmp_path / "loop") as loop:
        await loop.wait_for(
            lambda s: s.ready_replicas == SPEC.min_replicas and s.desired == SPEC.min_replicas,
            120,
            "the first worker Ready and the operator reporting",
            observe=recorder.observe,
        )
        async with Producer(redis_url, default_queue=SPEC.queue) as producer:
            burst = await producer.enqueue_many(
                [
                    JobRequest(type="record", payload={"ledger": str(ledger), "sleep": BURST_JOB_S})
                    for _ in range(BURST)
                ]
            )
            # One long job per replica at the maximum, behind the burst (BACKGROUND
            # priority). The burst is long enough for the loop to reach its maximum,
            # so the workers take the long jobs together as it drains: every pod is
            # busy for ~20 s, and the first scale-down (busy-aware, but allowed to
            # disrupt) must remove one of them mid-job.
            long_jobs = await producer.enqueue_many(
                [
                    JobRequest(
                        type="record",
                        payload={"ledger": str(ledger), "sleep": LONG_JOB_S},
                        priority=BACKGROUND,
                    )
                    for _ in range(SPEC.max_replicas)
                ]
            )
        await loop.wait_for(
            lambda s: s.stats.waiting == 0 and s.stats.delayed == 0,
            300,
            "the burst and the long jobs started",
            observe=recorder.observe,
        )
        peak = max(r for _, r in recorder.replicas)
        assert peak > SPEC.min_replicas, recorder.replicas
        ups = [c for c in recorder.changes() if c > 0]
        assert ups, recorder.replicas
        assert peak <= SPEC.max_replicas, recorder.replicas
        # A threshold step adds at most maxStep; a step sized from the measured
        # capacity (arrivals, backlog, start-up) goes to its count at once.
        recorded = (await loop.snapshot()).jobqueue_status.get("decisions", [])
        scale_ups = [d for d in recorded if d["action"] == "ScaleUp"]
        assert scale_ups, recorded
        for d in scale_ups:
            added = d["toReplicas"] - d["fromReplicas"]
            if d["reason"] in {"QueueDepthHigh", "QueueLatencyHigh"}:
                assert added <= SPEC.scale_up_max_step, d
            else:
                assert d["reason"] == "CapacityShort", d
        print(f"\nreplicas until every job started: {[r for _, r in recorder.replicas]}")
        await loop.wait_for(
            lambda s: (
                s.spec_replicas == SPEC.min_replicas
                and s.stats.in_flight == 0
                and s.stats.waiting == 0
                and s.stats.delayed == 0
            ),
            240,
            "back at min with nothing in flight",
            observe=recorder.observe,
        )
        final = await loop.snapshot()
        busy_removed = loop.removed_pods_logging(
            "Draining in-flight jobs"
        )  # before teardown stops the last pod too

    ran = ledger_runs(ledger)
    missing = [job for job in [*burst, *long_jobs] if job not in ran]
    duplicates = sum(n - 1 for n in ran.values() if n > 1)
    print(
        f"replicas over time: {[r for _, r in recorder.replicas]}; "
        f"pods removed while busy: {busy_removed}; "
        f"jobs {len(burst) + len(long_jobs)}, ran {len(ran)}, missing {len(missing)}, "
        f"duplicate runs {duplicates}"
    )
    assert missing == []
    assert final.stats.dead == 0
    assert busy_removed, "no worker was removed in the middle of a job"
    downs = [c for c in recorder.changes() if c < 0]
    assert downs, recorder.replicas
    # Sized from the measured capacity, a scale-down goes straight to the surplus
    # (not scaleDown.step at a time), and never below the minimum.
    assert min(r for _, r in recorder.replicas) >= SPEC.min_replicas, recorder.replicas
    # Scale-downs are separated by at least the cooldown (minus one polling interval of slack).
    down_times = [
        t
        for (t, r), (_, prev) in zip(recorder.replicas[1:], recorder.replicas, strict=False)
        if r < prev
    ]
    gaps = [b - a for a, b in itertools.pairwise(down_times)]
    assert all(g >= SPEC.scale_down_cooldown_s - SPEC.polling_interval_s for g in gaps), gaps
