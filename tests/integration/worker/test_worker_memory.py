"""Memory limits and recycling against a real Redis, with real worker processes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker import identity, metrics
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]
MB = 1024 * 1024


async def _statuses(redis_url: str, ids: list[str]) -> list[dict[str, str]]:
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(keys.job_key("default", i))
    rows = await pipe.execute()
    await r.aclose()
    return [dict(x) for x in rows]


async def test_a_leaking_handler_triggers_recycling_and_no_job_is_lost(
    redis_url: str, spawn_worker: Any, until: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The baseline RSS of an idle worker process on this machine.
    probe = spawn_worker("probe")
    await asyncio.sleep(0)

    async def has_heartbeat() -> bool:
        r = redis.asyncio.Redis.from_url(redis_url)
        try:
            return bool(await r.hlen(keys.workers_key("default")))
        finally:
            await r.aclose()

    await until(has_heartbeat, 40)
    base = psutil.Process(probe.proc.pid).memory_info().rss
    probe.proc.send_signal(signal.SIGTERM)
    assert probe.proc.wait(15) == 0
    hard = base + 130 * MB
    monkeypatch.setenv("WORKER_MEMORY_HARD_LIMIT", str(hard))
    monkeypatch.setenv("WORKER_MEMORY_SOFT_LIMIT", str(base + 60 * MB))
    ledger = tmp_path / "ledger"
    n = 12
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many(
            [JobRequest(type="leak_memory", payload={"mb": 40, "ledger": str(ledger)})] * n
        )
    exits: list[tuple[int, bool]] = []
    finished = False
    for i in range(10):
        w = spawn_worker(f"leaky{i}", concurrency=1, memory_check_interval_s=0.05)
        while w.proc.poll() is None:
            rows = await _statuses(redis_url, ids)
            if all(r.get("status") == "completed" for r in rows):
                finished = True  # the last worker stays under its limit: stop it
                # Once it runs: a SIGTERM while the interpreter still imports (the
                # jobs may all be done before this worker got going) is the default
                # action, not a graceful stop, and would prove nothing here.
                await until(w.started_or_gone, 30)
                w.proc.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(w.proc.wait, 15)
                assert code == 0, w.output()[-3000:]
                break
            await asyncio.sleep(0.1)
        else:
            exits.append((w.proc.returncode, "Recycling the worker" in w.output()))
        if finished:
            break
    rows = await _statuses(redis_url, ids)
    print(f"\nbaseline RSS {base // MB} MiB, hard {hard // MB} MiB: worker exits {exits}")
    assert all(r.get("status") == "completed" for r in rows), rows
    assert all(r["attempt"] == "1" for r in rows)
    assert {line.split()[0] for line in ledger.read_text().splitlines()} == set(ids)
    assert len(exits) >= 2  # 12 × 40 MiB cannot fit under one worker's 130 MiB headroom
    assert all(code == 0 and recycled for code, recycled in exits)


async def test_recycle_after_n_jobs_exits_gracefully_and_leaves_the_rest_queued(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()

    @reg.job_type("tick")
    async def tick(job: Job) -> None:
        await asyncio.sleep(0.01)

    async with Producer(redis_url) as p:
        ids = await p.enqueue_many([JobRequest(type="tick") for _ in range(10)])
    before = metrics.RECYCLES.labels("jobs")._value.get()
    w = await start_worker(reg, concurrency=1, recycle_after_jobs=3)

    async def stopped() -> bool:
        return w.draining and not w.inflight.running

    await until(stopped, 30)
    await asyncio.sleep(0.3)
    rows = await _statuses(redis_url, ids)
    done = [r for r in rows if r.get("status") == "completed"]
    assert len(done) == 3
    assert all(r["status"] in {"completed", "queued"} for r in rows)
    assert w.recycle_reason == "jobs"
    assert metrics.RECYCLES.labels("jobs")._value.get() - before == 1
    # a fresh worker takes the rest
    await start_worker(reg, concurrency=4)

    async def all_done() -> bool:
        return all(r.get("status") == "completed" for r in await _statuses(redis_url, ids))

    await until(all_done, 30)


async def test_expected_memory_precheck_defers_a_job_without_spending_an_attempt(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()
    running: list[int] = []
    peak: list[int] = [0]

    @reg.job_type("big")
    async def big(job: Job) -> None:
        running.append(1)
        peak[0] = max(peak[0], len(running))
        await asyncio.sleep(0.4)
        running.pop()

    async with Producer(redis_url) as p:
        ids = await p.enqueue_many([JobRequest(type="big") for _ in range(2)])
    before = metrics.MEMORY_EVENTS.labels("deferred")._value.get()
    hard = identity.rss_bytes() + 400 * MB
    await start_worker(
        reg,
        concurrency=2,
        use_cgroup_limit=False,
        memory_hard_limit=hard,
        memory_soft_limit=hard - MB,
        type_memory={"BIG": "300Mi"},
    )

    async def both_done() -> bool:
        return all(r.get("status") == "completed" for r in await _statuses(redis_url, ids))

    await until(both_done, 30)
    assert peak[0] == 1  # two would not fit under the hard limit
    assert metrics.MEMORY_EVENTS.labels("deferred")._value.get() - before >= 1
    rows = await _statuses(redis_url, ids)
    assert {(r["attempt"], r["deliveries"]) for r in rows} == {("1", "1")}
    assert metrics.MEMORY_LIMIT._value.get() == hard
