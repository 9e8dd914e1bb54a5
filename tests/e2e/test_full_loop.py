"""The full loop on the real control plane: burst, scale up, drain, scale down, lose nothing.

Real parts only: kube-apiserver/etcd/kube-controller-manager, redis-server, the
`jobqueue-operator` process under its own ServiceAccount, worker processes run
for the Deployment's Pods by the development pod runner. Every job writes a
line to a ledger file, so "no job lost" is checked against what actually ran.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path

import pytest

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LocalLoop, LoopSpec, Snapshot
from jobqueue_protocol.keys import BACKGROUND
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = [pytest.mark.e2e, pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

BURST = 2000
LONG_JOB_S = 10.0  # up to 22.5 s: all finish within the worker's 25 s drain grace

SPEC = LoopSpec(
    namespace="e2e",
    name="e2e",
    queue="e2e",
    min_replicas=1,
    max_replicas=6,
    polling_interval_s=1,
    scale_up_depth=100,
    scale_up_cooldown_s=2,
    scale_up_max_step=2,
    scale_down_depth=10,
    scale_down_cooldown_s=6,
    scale_down_step=1,
    # The operator keeps busy workers by default; this test opts out so that a
    # scale-down really removes a worker mid-job and proves nothing is lost.
    scale_down_allow_disruption=True,
    # One job per worker: when every pod holds a long job, any pod the
    # ReplicaSet removes is busy, so the test really removes a worker mid-job.
    worker_concurrency=1,
    worker_lease_s=10.0,
    worker_grace_s=25.0,
)


def ledger_ids(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line.strip())


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


def removed_while_busy(loop: LocalLoop) -> list[str]:
    """Pods the ReplicaSet removed whose worker had jobs in flight at SIGTERM.

    The worker's own log says so ("Draining in-flight jobs"); heartbeats are a
    second late and can miss a job picked up just before the signal.
    """
    assert loop.runner is not None
    busy = []
    for name in loop.runner.stopped:
        log = loop.runner.log_dir / f"{name}.log"
        if log.exists() and "Draining in-flight jobs" in log.read_text():
            busy.append(name)
    return busy


async def poll_until(
    loop: LocalLoop, recorder: Recorder, done: object, timeout_s: float, what: str
) -> Snapshot:
    deadline = time.monotonic() + timeout_s
    while True:
        snap = await loop.snapshot()
        recorder.observe(snap)
        if callable(done) and done(snap):
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout_s:.0f}s; last: {snap}")
        await asyncio.sleep(0.25)


async def test_burst_scales_up_by_steps_drains_and_scales_back_without_loss(
    control_plane: ControlPlane, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    recorder = Recorder()
    async with LocalLoop(control_plane, redis_server, SPEC, tmp_path / "loop") as loop:
        await poll_until(
            loop,
            recorder,
            lambda s: s.ready_replicas == SPEC.min_replicas and s.desired == SPEC.min_replicas,
            120,
            "the first worker Ready and the operator reporting",
        )
        async with Producer(redis_url, default_queue=SPEC.queue) as producer:
            burst = await producer.enqueue_many(
                [JobRequest(type="record", payload={"ledger": str(ledger)}) for _ in range(BURST)]
            )
            # One long job per possible replica, behind the burst (BACKGROUND priority),
            # each a different length. Each worker's last job is a long one; scale-down
            # cannot start while one still waits (its age exceeds the scale-down
            # latency); and when the last waiting one starts, every other worker is
            # still inside a longer one. So every pod is busy at the first scale-down.
            long_jobs = await producer.enqueue_many(
                [
                    JobRequest(
                        type="record",
                        payload={"ledger": str(ledger), "sleep": LONG_JOB_S + 2.5 * i},
                        priority=BACKGROUND,
                    )
                    for i in range(SPEC.max_replicas)
                ]
            )
        await poll_until(
            loop,
            recorder,
            lambda s: s.stats.waiting == 0 and s.stats.delayed == 0,
            300,
            "the burst and the long jobs started",
        )
        peak = max(r for _, r in recorder.replicas)
        assert peak > SPEC.min_replicas, recorder.replicas
        ups = [c for c in recorder.changes() if c > 0]
        assert ups, recorder.replicas
        assert all(c <= SPEC.scale_up_max_step for c in ups), recorder.replicas
        print(f"\nreplicas until every job started: {[r for _, r in recorder.replicas]}")
        await poll_until(
            loop,
            recorder,
            lambda s: (
                s.spec_replicas == SPEC.min_replicas
                and s.stats.in_flight == 0
                and s.stats.waiting == 0
                and s.stats.delayed == 0
            ),
            240,
            "back at min with nothing in flight",
        )
        final = await loop.snapshot()
        busy_removed = removed_while_busy(loop)  # before teardown stops the last pod too

    ran = ledger_ids(ledger)
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
    assert all(c >= -SPEC.scale_down_step for c in downs), recorder.replicas
    # Scale-downs are separated by at least the cooldown (minus one polling interval of slack).
    down_times = [
        t
        for (t, r), (_, prev) in zip(recorder.replicas[1:], recorder.replicas, strict=False)
        if r < prev
    ]
    gaps = [b - a for a, b in itertools.pairwise(down_times)]
    assert all(g >= SPEC.scale_down_cooldown_s - SPEC.polling_interval_s for g in gaps), gaps
