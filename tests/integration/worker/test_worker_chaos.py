"""Worker processes killed, signalled and cut off from Redis: nothing is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker import examples
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.records import JobRecord
from jobqueue_worker.runtime import Worker

pytestmark = [pytest.mark.redis]

StartWorker = Callable[..., Awaitable[Worker]]


def ledger_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


async def status_of(p: Producer, job_id: str) -> JobRecord:
    rec = await p.status(job_id)
    assert rec is not None
    return rec


async def test_kill_9_mid_job_then_another_worker_completes_it_after_the_lease(
    redis_url: str, spawn_worker: Any, until: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("record", {"ledger": str(ledger), "sleep": 2.0})
        a = spawn_worker("a", lease_s=1.0)

        async def active() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.ACTIVE

        await until(active, 30)
        assert (await status_of(p, job_id)).worker is not None
        a.kill9()
        killed_at = time.monotonic()
        b = spawn_worker("b", lease_s=1.0)

        async def completed() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.COMPLETED

        await until(completed, 40)
        recovered_after = time.monotonic() - killed_at
        rec = await status_of(p, job_id)
        assert rec.worker is not None
        assert rec.worker.startswith("b:")
        assert rec.deliveries == 2
        assert ledger_ids(ledger) == [job_id]  # the killed run never finished
        # the lease (1 s) bounds recovery; the rest is the handler's 2 s and start-up
        assert recovered_after < 1.0 + 2.0 + 6.0, recovered_after
        b.proc.send_signal(signal.SIGTERM)
        try:
            assert b.proc.wait(15) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError("worker b did not exit:\n" + b.dump_stacks()) from None


async def test_sigterm_mid_job_lets_it_finish_within_the_grace_period(
    redis_url: str, spawn_worker: Any, until: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("record", {"ledger": str(ledger), "sleep": 1.0})
        w = spawn_worker("t", grace_period_s=10)

        async def active() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.ACTIVE

        await until(active, 30)
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(15) == 0, w.output()
        rec = await status_of(p, job_id)
        assert rec.status is JobStatus.COMPLETED
        assert ledger_ids(ledger) == [job_id]


async def test_sigterm_after_grace_hands_the_job_back_at_once(
    redis_url: str, spawn_worker: Any, until: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    r = redis.asyncio.Redis.from_url(redis_url)
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("record", {"ledger": str(ledger), "sleep": 3.0}, priority="high")
        w = spawn_worker("h", grace_period_s=0.3, lease_s=30)

        async def active() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.ACTIVE

        await until(active, 30)
        t0 = time.monotonic()
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(15) == 0, w.output()
        assert time.monotonic() - t0 < 5  # at once: the lease is 30 s
        # Back in its band at once (not after the 30 s lease), delivery not counted.
        rec = await status_of(p, job_id)
        assert rec.status is JobStatus.QUEUED
        assert rec.deliveries == 0
        assert await r.zscore(keys.ready_key("default", 3), job_id) is not None
        assert await r.zcard(keys.lease_key("default")) == 0
        w2 = spawn_worker("h2")

        async def completed() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.COMPLETED

        await until(completed, 40)
        assert ledger_ids(ledger) == [job_id]
        w2.proc.send_signal(signal.SIGTERM)
        assert w2.proc.wait(15) == 0
    await r.aclose()


async def test_second_signal_exits_fast_and_the_lease_protects_the_job(
    redis_url: str, spawn_worker: Any, until: Any, tmp_path: Path
) -> None:
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("sleep", {"seconds": 30})
        w = spawn_worker("f", grace_period_s=60)

        async def active() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.ACTIVE

        await until(active, 30)
        t0 = time.monotonic()
        w.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert w.proc.poll() is None  # draining, waiting for the job
        w.proc.send_signal(signal.SIGINT)
        assert w.proc.wait(10) == 0, w.output()
        assert time.monotonic() - t0 < 8  # the job needs 30 s, the grace is 60 s
        rec = await status_of(p, job_id)
        assert rec.status in (JobStatus.QUEUED, JobStatus.ACTIVE)


async def _exit_code_or_dead(w: Any, p: Producer, job_id: str) -> int | None:
    """The worker's exit code once it crashed, or None once the job is dead-lettered.

    Waits on what happens, not on a fixed time: a loaded machine may take many
    seconds just to start the worker.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code: int | None = w.proc.poll()
        if code is not None:
            return code
        if (await status_of(p, job_id)).status is JobStatus.DEAD:
            return None
        await asyncio.sleep(0.05)
    raise AssertionError("the worker neither crashed nor dead-lettered the job within 60 s")


async def test_poison_job_goes_to_the_dlq_after_max_deliveries(
    redis_url: str, spawn_worker: Any, until: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("crash", {"ledger": str(ledger)})
        crashes = 0
        for i in range(6):
            w = spawn_worker(f"p{i}", max_deliveries=2, lease_s=0.5)
            code = await _exit_code_or_dead(w, p, job_id)
            if code == 17:
                crashes += 1
                continue
            # Not crashed: the job must have been dead-lettered instead.
            w.proc.send_signal(signal.SIGTERM)
            w.proc.wait(10)
            break
        rec = await status_of(p, job_id)
        assert rec.status is JobStatus.DEAD
        assert rec.dead_reason == "poison"
        assert crashes == 2
        assert len(ledger_ids(ledger)) == 2  # executed at most max_deliveries times
        # Other jobs keep flowing.
        ok = await p.enqueue("noop")
        w = spawn_worker("after", max_deliveries=2)

        async def done() -> bool:
            return (await status_of(p, ok)).status is JobStatus.COMPLETED

        await until(done, 30)
        w.proc.send_signal(signal.SIGTERM)
        try:
            assert w.proc.wait(10) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError("worker did not exit:\n" + w.dump_stacks()) from None


async def test_redis_restart_worker_reconnects_and_loses_nothing(
    redis_url: str, redis_server: Any, start_worker: StartWorker, until: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    n = 300
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many(
            [
                JobRequest(type="record", payload={"ledger": str(ledger), "sleep": 0.01})
                for _ in range(n)
            ]
        )
    await start_worker(examples.registry, concurrency=4, lease_s=2.0)

    async def some_done() -> bool:
        return len(ledger_ids(ledger)) >= 40

    await until(some_done, 40)
    redis_server.stop()
    assert len(set(ledger_ids(ledger))) < n  # the outage really hit mid-run
    await asyncio.sleep(1.5)
    redis_server.start()

    async def all_done() -> bool:
        return set(ledger_ids(ledger)) >= set(ids)

    await until(all_done, 60)
    async with Producer(redis_url) as p:
        for job_id in ids[:: n // 10]:
            assert (await status_of(p, job_id)).status is JobStatus.COMPLETED
    done = ledger_ids(ledger)
    print(f"\nredis restart: {n} jobs, {len(done)} runs, {len(done) - len(set(done))} duplicates")


async def test_worker_started_while_redis_is_down_waits_and_then_serves(
    redis_url: str, redis_server: Any, start_worker: StartWorker, until: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    redis_server.stop()
    await start_worker(examples.registry, concurrency=2)
    await asyncio.sleep(1.0)  # the worker is failing and backing off
    redis_server.start()
    t0 = time.monotonic()
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many(
            [JobRequest(type="record", payload={"ledger": str(ledger)}) for _ in range(20)]
        )

    async def all_done() -> bool:
        return set(ledger_ids(ledger)) >= set(ids)

    await until(all_done, 30)
    assert time.monotonic() - t0 < 10


async def test_json_logs_name_the_failed_job_with_its_stack_trace(
    redis_url: str, spawn_worker: Any, until: Any
) -> None:
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("permanent_failure", {"secret": "card-4111"})
        w = spawn_worker("logs", json_logs="true")

        async def dead() -> bool:
            return (await status_of(p, job_id)).status is JobStatus.DEAD

        await until(dead, 30)
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(15) == 0
    records = [json.loads(line) for line in w.output().splitlines() if line.startswith("{")]
    assert records, w.output()
    failure = next(r for r in records if r.get("job_id") == job_id)
    assert failure["level"] == "ERROR"
    assert failure["job_type"] == "permanent_failure"
    assert failure["queue"] == "default"
    assert failure["attempt"] == 1
    assert "PermanentError: this job can never succeed" in failure["exc"]
    assert "card-4111" not in w.output()  # payloads stay out of logs by default
    assert any(r["msg"] == "Stopped worker" for r in records)
