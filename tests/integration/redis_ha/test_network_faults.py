"""Network faults between a worker and Redis, injected by the tests' own TCP proxy.

* A half-open partition longer than the lease: the cut-off worker's job runs
  elsewhere, its late ack is refused by the lease fencing, and once the network
  heals it reconnects and takes work again, without a restart.
* 200 ms on every packet each way: slower, nothing lost.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from jobqueue_devkit.fault_proxy import FaultProxy
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

COMMON = {
    "queues": "faults",
    "lease_s": 1.0,
    "reap_interval_s": 0.2,
    "heartbeat_interval_s": 0.5,
    "idle_block_s": 0.5,
    "http_port": 0,
    "concurrency": 2,
}


async def until(pred: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def runs(ledger: Path) -> collections.Counter[str]:
    if not ledger.exists():
        return collections.Counter()
    return collections.Counter(line.split()[0] for line in ledger.read_text().splitlines())


async def test_worker_partitioned_longer_than_its_lease(
    fault_proxy: FaultProxy, redis_url: str, spawn_worker, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    a = spawn_worker(f"redis://{fault_proxy.address}/0", "a", **COMMON)
    async with Producer(redis_url, default_queue="faults") as producer:
        job_id = await producer.enqueue("record", {"ledger": str(ledger), "sleep": 3.0})

        async def held_by_a() -> bool:
            # Not the lease in Redis: the reply that carries the job may still be on
            # its way to a, and a partition now would swallow it (a would never run
            # the job, so it would have no late ack to refuse). a's heartbeat lists
            # what its process holds.
            stats = (await producer.broker.stats(["faults"]))["faults"]
            return any(
                hb.worker_id.startswith("a:") and any(j.id == job_id for j in hb.jobs)
                for hb in stats.workers
            )

        await until(held_by_a, 30, "worker a to start the job")
        rec = await producer.status(job_id)
        assert rec is not None
        assert rec.worker is not None
        assert rec.worker.startswith("a:")

        fault_proxy.blackhole()
        cut_at = time.monotonic()
        b = spawn_worker(redis_url, "b", **COMMON)

        async def completed() -> bool:
            rec = await producer.status(job_id)
            return rec is not None and rec.status is JobStatus.COMPLETED

        await until(completed, 30, "the job to run elsewhere")
        done = await producer.status(job_id)
        assert done is not None
        assert done.worker is not None
        assert done.worker.startswith("b:"), done.worker
        assert done.deliveries == 2
        # Keep a cut off until its own run has ended too, then let its late ack through.
        await asyncio.sleep(max(0.0, cut_at + 4.0 - time.monotonic()))
        fault_proxy.heal()

        async def refused() -> bool:
            return "Ack refused: lease lost" in a.output()

        await until(refused, 60, "worker a's late ack to be refused")
        final = await producer.status(job_id)
        assert final is not None
        assert final.status is JobStatus.COMPLETED
        assert final.worker == done.worker  # the refused ack changed nothing
        assert runs(ledger)[job_id] <= 2

        # a resumes on the healed network without a restart: only it is left to work.
        b.proc.send_signal(signal.SIGTERM)
        assert b.proc.wait(30) == 0
        later = await producer.enqueue_many(
            [JobRequest(type="record", payload={"ledger": str(ledger)}) for _ in range(5)]
        )

        async def all_done_by_a() -> bool:
            recs = [await producer.status(i) for i in later]
            return all(r is not None and r.status is JobStatus.COMPLETED for r in recs)

        await until(all_done_by_a, 60, "worker a to take new jobs after the partition")
        for i in later:
            rec = await producer.status(i)
            assert rec is not None
            assert rec.worker is not None
            assert rec.worker.startswith("a:")
        assert a.proc.poll() is None, a.output()


async def test_200ms_per_packet_loses_nothing(
    fault_proxy: FaultProxy, redis_url: str, spawn_worker, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    fault_proxy.delay_s = 0.2
    slow = spawn_worker(
        f"redis://{fault_proxy.address}/0", "slow", **{**COMMON, "lease_s": 5.0, "concurrency": 10}
    )
    jobs = 100
    async with Producer(redis_url, default_queue="faults") as producer:
        started = time.monotonic()
        ids = await producer.enqueue_many(
            [JobRequest(type="record", payload={"ledger": str(ledger)}) for _ in range(jobs)]
        )

        async def all_ran() -> bool:
            return all(i in runs(ledger) for i in ids)

        await until(all_ran, 180, "every job to run through the slow link")
        elapsed = time.monotonic() - started

        async def all_acked() -> bool:
            recs = [await producer.status(i) for i in ids]
            return all(r is not None and r.status is JobStatus.COMPLETED for r in recs)

        await until(all_acked, 60, "every ack to arrive through the slow link")
    counts = runs(ledger)
    assert sorted(counts) == sorted(ids)
    assert max(counts.values()) == 1  # the lease outlives the delay: no job ran twice
    assert slow.proc.poll() is None, slow.output()
    print(f"\n200 ms per packet: {jobs} jobs in {elapsed:.1f} s")
