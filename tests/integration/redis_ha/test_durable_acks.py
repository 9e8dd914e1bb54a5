"""Durable acks: a worker fetches nothing new while its replicas have not confirmed its acks.

Real Sentinel topology (1 master, 2 replicas). A worker with JQW_DURABLE_REPLICAS=2
runs jobs normally; one replica is frozen with SIGSTOP, so WAIT 2 can no longer be
met: the worker finishes what it holds and then takes no new job (each would be
re-run by a failover to a replica that never saw its ack). SIGCONT lets the replica
catch up, and the worker drains the rest without a restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobqueue_devkit.redis_sentinel import SentinelTopology
from jobqueue_devkit.stack import ledger_runs
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = pytest.mark.redis

CONCURRENCY = 5


async def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_worker_holds_back_fetches_until_its_acks_are_replicated(
    settled: SentinelTopology, spawn_worker, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    worker = spawn_worker(
        settled.url,
        "durable",
        queues="dacks",
        concurrency=CONCURRENCY,
        durable_replicas=2,
        durable_timeout_s=0.2,
        lease_s=10.0,
        idle_block_s=0.5,
        http_port=0,
    )

    def runs() -> int:
        return sum(ledger_runs(ledger).values())

    async with Producer(settled.url, default_queue="dacks") as producer:

        async def enqueue(start: int, n: int) -> None:
            await producer.enqueue_many(
                [
                    JobRequest(type="record", payload={"ledger": str(ledger)}, id=f"d{i}")
                    for i in range(start, start + n)
                ]
            )

        await enqueue(0, 20)
        await wait_until(lambda: runs() == 20, 30, "the worker did not run 20 jobs")

        master = settled.master_port()
        frozen = next(s for s in settled.servers if s.port != master and s.process is not None)
        assert frozen.process is not None
        pid = frozen.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await enqueue(20, 200)
            await wait_until(
                lambda: "Fewer replicas than JQW_DURABLE_REPLICAS" in worker.output(),
                15,
                "the worker never said it was waiting for replicas",
            )
            await asyncio.sleep(1.0)  # the jobs it held finish
            held_at = runs()
            await asyncio.sleep(2.0)
            assert runs() == held_at, "the worker kept fetching without confirmed acks"
            # What it held when WAIT fell short: the jobs running and one fetch.
            assert held_at - 20 <= 2 * CONCURRENCY, worker.output()
        finally:
            os.kill(pid, signal.SIGCONT)

        await wait_until(lambda: runs() >= 220, 60, "the worker did not resume after SIGCONT")
    counts = ledger_runs(ledger)
    assert len(counts) == 220
    assert max(counts.values()) == 1, counts.most_common(3)
    assert "Replicas caught up" in worker.output()
    assert worker.proc.poll() is None, worker.output()
