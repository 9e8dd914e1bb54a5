"""Fetching ahead: while jobs are short a worker leases up to its concurrency again
beyond the running jobs, never runs more than its concurrency, and hands back
what it fetched ahead, unrun and without counting a delivery, when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]
CONCURRENCY = 4


class Observed:
    """What the handlers saw: how many ran at once and how many the worker held."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.running = 0
        self.peak_running = 0
        self.peak_held = 0
        self.ran: list[str] = []

    def registry(self, sleep_s: float) -> Registry:
        reg = Registry()

        async def work(job: Job) -> None:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            assert self.worker is not None
            self.peak_held = max(self.peak_held, len(self.worker.inflight))
            await asyncio.sleep(sleep_s)
            self.running -= 1
            self.ran.append(job.id)

        reg.register("work", work)
        return reg


async def enqueue(redis_url: str, n: int, job_type: str = "work") -> list[str]:
    async with Producer(redis_url) as p:
        return await p.enqueue_many([JobRequest(type=job_type) for _ in range(n)])


async def drain(
    redis_url: str, start_worker: StartWorker, until: Any, sleep_s: float, **settings: Any
) -> Observed:
    seen = Observed()
    seen.worker = await start_worker(seen.registry(sleep_s), concurrency=CONCURRENCY, **settings)
    ids = await enqueue(redis_url, 300 if sleep_s == 0 else 60)

    async def all_ran() -> bool:
        return len(seen.ran) == len(ids)

    await until(all_ran, 60)
    assert sorted(seen.ran) == sorted(ids)  # each once
    return seen


async def test_short_jobs_are_fetched_ahead_and_never_run_beyond_the_concurrency(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    seen = await drain(redis_url, start_worker, until, 0.0)
    print(f"\npeak running {seen.peak_running}, peak held {seen.peak_held}")
    assert seen.peak_running <= CONCURRENCY
    assert CONCURRENCY < seen.peak_held <= 2 * CONCURRENCY


@pytest.mark.parametrize(
    ("sleep_s", "settings"),
    [(0.0, {"fetch_ahead": 0}), (0.03, {}), (0.0, {"type_concurrency": {"WORK": CONCURRENCY}})],
    ids=["turned-off", "jobs-longer-than-10ms", "per-type-caps"],
)
async def test_nothing_is_fetched_ahead_when_it_must_not_be(
    redis_url: str, start_worker: StartWorker, until: Any, sleep_s: float, settings: dict[str, Any]
) -> None:
    seen = await drain(redis_url, start_worker, until, sleep_s, **settings)
    assert seen.peak_held == CONCURRENCY  # reached, never exceeded


async def test_jobs_fetched_ahead_go_back_unrun_when_the_worker_stops(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    release = asyncio.Event()
    started: list[str] = []
    reg = Registry()

    async def quick(job: Job) -> None:
        return None

    async def blocked(job: Job) -> None:
        started.append(job.id)
        await release.wait()

    reg.register("quick", quick)
    reg.register("blocked", blocked)
    w = await start_worker(reg, concurrency=2, grace_period_s=30)
    await enqueue(redis_url, 40, "quick")  # a short recent history: fetching ahead is on

    async def quick_done() -> bool:
        return w.processed == 40

    await until(quick_done, 30)
    ids = await enqueue(redis_url, 4, "blocked")

    async def holding_four() -> bool:
        return len(started) == 2 and len(w.inflight) == 4

    await until(holding_four, 10)
    w.request_stop()
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        ahead = [i for i in ids if i not in started]
        async with Producer(redis_url) as p:

            async def handed_back() -> bool:
                recs = [await p.status(i) for i in ahead]
                return all(rec is not None and rec.status is JobStatus.QUEUED for rec in recs)

            # Back in the queue while the two running jobs still hold their slots.
            await until(handed_back, 10)
            assert len(started) == 2
            for i in ahead:
                rec = await p.status(i)
                assert rec is not None
                assert rec.deliveries == 0, rec
            release.set()

            async def running_two_done() -> bool:
                recs = [await p.status(i) for i in started]
                return all(rec is not None and rec.status is JobStatus.COMPLETED for rec in recs)

            await until(running_two_done, 10)
        assert await r.zcard(keys.lease_key("default")) == 0
    finally:
        release.set()
        await r.aclose()
