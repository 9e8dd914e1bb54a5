"""Hard and soft timeouts against a real Redis: async cancel, isolated process kill."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker import examples, metrics
from jobqueue_worker.backoff import BackoffPolicy, Jitter
from jobqueue_worker.producer import Producer
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]
NO_RETRY = BackoffPolicy(retries=0)


async def _job(redis_url: str, job_id: str) -> dict[str, str]:
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        return dict(await r.hgetall(keys.job_key("default", job_id)))
    finally:
        await r.aclose()


async def test_hard_timeout_cancels_an_async_handler(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    cancelled: list[str] = []
    reg = Registry()

    @reg.job_type("slow", backoff=NO_RETRY)
    async def slow(job: Job) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise

    @reg.job_type("quick")
    async def quick(job: Job) -> str:
        return "ok"

    before = metrics.TIMEOUTS.labels("default", "slow", "hard")._value.get()
    async with Producer(redis_url) as p:
        slow_id = await p.enqueue("slow")
        quick_id = await p.enqueue("quick")
    await start_worker(reg, concurrency=1, timeouts={"SLOW": 0.5})

    async def dead() -> bool:
        return (await _job(redis_url, slow_id)).get("status") == "dead"

    await until(dead, 30)
    h = await _job(redis_url, slow_id)
    assert h["dead_reason"] == "timeout"
    assert "hard timeout after 0.500 s (cancelled)" in h["error"]
    assert cancelled == [slow_id]
    assert metrics.TIMEOUTS.labels("default", "slow", "hard")._value.get() - before == 1

    async def quick_done() -> bool:
        return (await _job(redis_url, quick_id)).get("status") == "completed"

    await until(quick_done, 5)  # the worker was not wedged


async def test_hard_timeout_kills_a_busy_looping_sync_handler_and_retries_later(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()
    # A module-level function, so the child process can import it.
    reg.register(
        "spin_forever",
        examples.spin_forever,
        isolated=True,
        backoff=BackoffPolicy(retries=1, base_s=0.5, jitter=Jitter.NONE),
    )

    @reg.job_type("quick")
    async def quick(job: Job) -> str:
        return "ok"

    async with Producer(redis_url) as p:
        spin_id = await p.enqueue("spin_forever")
    w = await start_worker(
        reg, concurrency=2, timeouts={"SPIN_FOREVER": 1.0}, timeout_backoff_multiplier=4
    )
    pids: list[int] = []

    async def child_running() -> bool:
        pids.extend(p.pid for p in w.supervisor.children.values() if p.pid is not None)
        return bool(pids)

    await until(child_running, 30)
    assert psutil.Process(pids[0]).cpu_times() is not None  # the runaway is alive

    async def retry_scheduled() -> bool:
        return (await _job(redis_url, spin_id)).get("status") == "retry_scheduled"

    await until(retry_scheduled, 40)
    h = await _job(redis_url, spin_id)
    assert "child process killed" in h["error"]
    # A timed-out attempt waits multiplier × the type's backoff (0.5 s × 4).
    assert int(h["due_at"]) - int(h["last_failed_at"]) == 2000
    # The runaway process is gone; the worker serves other jobs meanwhile.
    assert not psutil.pid_exists(pids[0])
    assert not w.supervisor.children
    async with Producer(redis_url) as p:
        quick_id = await p.enqueue("quick")

    async def quick_done() -> bool:
        return (await _job(redis_url, quick_id)).get("status") == "completed"

    await until(quick_done, 5)

    async def dead() -> bool:
        return (await _job(redis_url, spin_id)).get("status") == "dead"

    await until(dead, 40)
    assert (await _job(redis_url, spin_id))["dead_reason"] == "timeout"


async def test_isolated_handler_returns_its_result_and_raises_its_errors(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()
    reg.register("spin_isolated", examples.spin_isolated, isolated=True)
    reg.register("permanent_failure_sync", examples.crash_free_permanent, isolated=True)
    async with Producer(redis_url) as p:
        ok_id = await p.enqueue("spin_isolated", {"seconds": 0.05})
        bad_id = await p.enqueue("permanent_failure_sync")
    await start_worker(reg, concurrency=2)

    async def both() -> bool:
        a, b = await _job(redis_url, ok_id), await _job(redis_url, bad_id)
        return a.get("status") == "completed" and b.get("status") == "dead"

    await until(both, 40)
    assert int((await _job(redis_url, ok_id))["result"]) > 0
    bad = await _job(redis_url, bad_id)
    assert bad["dead_reason"] == "permanent"
    assert "PermanentError" in bad["error"]


async def test_soft_timeout_logs_a_warning_and_the_job_completes(
    redis_url: str, start_worker: StartWorker, until: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry()

    @reg.job_type("sluggish")
    async def sluggish(job: Job) -> str:
        await asyncio.sleep(0.6)
        return "done"

    before = metrics.TIMEOUTS.labels("default", "sluggish", "soft")._value.get()
    caplog.set_level(logging.WARNING, logger="jobqueue_worker.execution")
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("sluggish")
    await start_worker(reg, timeouts={"SLUGGISH": 2.0}, soft_timeouts={"SLUGGISH": 0.2})

    async def done() -> bool:
        return (await _job(redis_url, job_id)).get("status") == "completed"

    await until(done, 30)
    warnings = [r for r in caplog.records if r.getMessage() == "Job passed its soft timeout"]
    assert len(warnings) == 1
    assert warnings[0].__dict__["job_id"] == job_id
    assert metrics.TIMEOUTS.labels("default", "sluggish", "soft")._value.get() - before == 1
    assert metrics.TIMEOUTS.labels("default", "sluggish", "hard")._value.get() == 0


async def test_adaptive_timeout_stops_a_job_far_slower_than_its_history(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()

    @reg.job_type("usual", backoff=NO_RETRY)
    async def usual(job: Job) -> None:
        seconds = job.payload.get("s", 0.01) if isinstance(job.payload, dict) else 0.01
        await asyncio.sleep(float(seconds))  # type: ignore[arg-type]

    async with Producer(redis_url) as p:
        for _ in range(6):
            await p.enqueue("usual", {"s": 0.01})
    w = await start_worker(
        reg,
        concurrency=1,
        timeouts={"USUAL": 30.0},  # the configured ceiling
        adaptive_timeouts=True,
        adaptive_min_samples=5,
        adaptive_factor=3,
        adaptive_min_s=0.3,
    )

    async def history() -> bool:
        return len(w.history.durations("usual")) >= 6

    await until(history, 30)
    probe = Job("x", "usual", "default", None, 5, 1, 1, 1)
    jt = reg.get("usual")
    assert jt is not None
    assert w.supervisor.timeouts(probe, jt).hard_s == pytest.approx(0.3)  # 3 × ~0.01 s → min
    async with Producer(redis_url) as p:
        slow_id = await p.enqueue("usual", {"s": 20})

    async def dead() -> bool:
        return (await _job(redis_url, slow_id)).get("status") == "dead"

    await until(dead, 30)
    h = await _job(redis_url, slow_id)
    assert h["dead_reason"] == "timeout"
    assert "hard timeout after 0.300 s" in h["error"]
