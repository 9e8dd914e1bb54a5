"""Rate limits against a real Redis: shared by worker processes, checked in the fetch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from jobqueue_devkit.ratecheck import max_in_any_window
from jobqueue_protocol import keys
from jobqueue_worker import metrics
from jobqueue_worker.broker import Broker
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.limiter import RateLimited, RateLimiter
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.ratelimit import parse_limits
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]


async def _started_at_ms(r: redis.asyncio.Redis, queue: str, ids: list[str]) -> list[int]:
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hmget(keys.job_key(queue, i), "started_at", "status", "attempt", "deliveries")
    rows = await pipe.execute()
    assert all(row[1] == "completed" for row in rows), rows
    # Throttling spent neither an attempt nor a delivery.
    assert {(row[2], row[3]) for row in rows} == {("1", "1")}
    return [int(row[0]) for row in rows]


async def test_three_worker_processes_share_one_sliding_window(
    redis_url: str, spawn_worker: Any, until: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit, period_ms, n = 8, 1000, 40
    monkeypatch.setenv("RATE_LIMIT_NOOP", f"{limit}/second")
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many([JobRequest(type="noop") for _ in range(n)])
    procs = [spawn_worker(f"rl{i}", concurrency=4) for i in range(3)]
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)

    async def done() -> bool:
        c = await r.hget(keys.counters_key("default"), "completed")
        return int(c or 0) >= n

    try:
        await until(done, 60)
    except AssertionError:
        raise AssertionError("\n".join(s.output()[-2000:] for s in procs)) from None
    starts = await _started_at_ms(r, "default", ids)
    peak = max_in_any_window(starts, period_ms)
    throttled = int(await r.hget(keys.counters_key("default"), "throttled") or 0)
    workers = set(await r.hkeys(keys.workers_key("default")))
    print(
        f"\nsliding window {limit}/s, 3 processes, {n} jobs: peak {peak} in any {period_ms} ms"
        f" window; {throttled} deferrals; run {(max(starts) - min(starts)) / 1000:.1f} s;"
        f" workers {sorted(workers)}"
    )
    assert peak <= limit
    assert throttled > 0  # the limit was really in the way
    # Each window of the run was checked: every start time opens one.
    assert max_in_any_window(starts, period_ms * 2) <= 2 * limit
    await r.aclose()


async def test_a_throttled_type_does_not_block_other_types_nor_spend_attempts(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    ran: list[str] = []
    reg = Registry()

    @reg.job_type("limited")
    async def limited(job: Job) -> None:
        ran.append("limited")

    @reg.job_type("free")
    async def free(job: Job) -> None:
        ran.append("free")

    async with Producer(redis_url) as p:
        lim_ids = await p.enqueue_many([JobRequest(type="limited") for _ in range(3)])
        await p.enqueue_many([JobRequest(type="free") for _ in range(5)])
    before = metrics.RATE_LIMITED.labels("default", "limited")._value.get()
    await start_worker(reg, concurrency=1, rate_limits={"LIMITED": "1/minute,100/hour"})

    async def frees_done() -> bool:
        return ran.count("free") == 5

    await until(frees_done, 10)
    await asyncio.sleep(0.3)
    assert ran.count("limited") == 1  # the head job, then the limit
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    delayed = await r.zrange(keys.delayed_key("default"), 0, -1, withscores=True)
    assert sorted(i for i, _ in delayed) == sorted(lim_ids[1:])
    for job_id in lim_ids[1:]:
        h = await r.hgetall(keys.job_key("default", job_id))
        assert (h["status"], h["attempt"], h["deliveries"]) == ("throttled", "1", "0")
    async with Producer(redis_url) as p:
        assert (await p.status(lim_ids[1])).status is JobStatus.THROTTLED
    stats = await r.hgetall(keys.limiter_stats_key())
    assert int(stats["limited:admitted"]) == 1
    assert int(stats["limited:throttled"]) >= 2
    assert metrics.RATE_LIMITED.labels("default", "limited")._value.get() - before >= 2
    # Usage is readable for metrics and the CLI.
    b = Broker(redis_url)
    usage = await b.limit_usage((("limited", parse_limits("1/minute,100/hour")),))
    assert usage[("limited", "1/60000ms:sliding")] == (1, 1)
    assert usage[("limited", "100/3600000ms:sliding")] == (1, 100)
    await b.close()
    await r.aclose()


async def test_handler_side_token_bucket_allows_its_burst_then_its_rate(redis_url: str) -> None:
    b = Broker(redis_url)
    rl = RateLimiter(b, "smtp", "4/second:bucket:5", max_wait_s=5)  # 5 at once, then 1/250 ms
    t0 = time.monotonic()
    burst = [await rl.try_acquire() for _ in range(5)]
    assert burst == [0.0] * 5
    wait = await rl.try_acquire()
    elapsed_ms = (time.monotonic() - t0) * 1000
    assert wait > 0 or elapsed_ms >= 250  # the 6th waits unless a token refilled meanwhile
    admitted = []
    start = time.monotonic()
    for _ in range(4):
        async with rl:
            admitted.append(time.monotonic())
    spent = admitted[-1] - start
    print(f"\nbucket burst 5 then 4/s: 4 more took {spent:.3f} s (≥ 0.75 s by the rate)")
    assert spent >= 0.75 - 0.05  # 4 tokens after an empty bucket: 3 full intervals at least
    once = RateLimiter(b, "smtp2", "1/minute", max_wait_s=0.1)
    await once.acquire()
    with pytest.raises(RateLimited) as info:
        await once.acquire()  # would wait ~60 s, more than max_wait_s: refused at once
    assert info.value.retry_after_s > 50
    await b.close()


async def test_fetch_token_bucket_admits_its_burst_at_once_then_its_rate(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()

    @reg.job_type("burst")
    async def burst(job: Job) -> None:
        return None

    n, rate, burst_n = 11, 4, 5  # 5 at once, then one per 250 ms
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many([JobRequest(type="burst") for _ in range(n)])
    await start_worker(
        reg, concurrency=10, rate_limits={"BURST": f"{rate}/second:bucket:{burst_n}"}
    )
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)

    async def done() -> bool:
        return int(await r.hget(keys.counters_key("default"), "completed") or 0) >= n

    await until(done, 20)
    starts = sorted(await _started_at_ms(r, "default", ids))
    print(
        f"\nbucket {rate}/s burst {burst_n}: lease times (ms after the first)"
        f" {[s - starts[0] for s in starts]}"
    )
    # The burst: the first step call leased 5 jobs at the same Redis instant.
    assert starts[:burst_n] == [starts[0]] * burst_n
    assert starts[burst_n] > starts[0]
    # Then the rate: in any [a, b], at most burst + (b - a) / (1000 / rate) jobs.
    t_ms = 1000 / rate
    for i in range(n):
        for j in range(i, n):
            assert j - i + 1 <= burst_n + (starts[j] - starts[i]) / t_ms + 1e-9
    await r.aclose()


async def test_jobqueue_stats_shows_rate_limits_and_execution_times(
    redis_url: str, until: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from jobqueue_worker import cli, examples

    monkeypatch.setenv("RATE_LIMIT_NOOP", "3/minute")
    async with Producer(redis_url) as p:
        await p.enqueue_many([JobRequest(type="noop") for _ in range(5)])
    from jobqueue_worker.settings import load

    w = Worker(load(redis_url=redis_url, http_port=0, heartbeat_interval_s=0.2), examples.registry)
    task = asyncio.create_task(w.run())

    async def published() -> bool:
        return bool(await w.broker.exec_stats(["default"]))

    await until(published, 10)
    env = {"JQW_REDIS_URL": redis_url, "JQW_HANDLERS": "jobqueue_worker.examples", "COLUMNS": "200"}
    res = await asyncio.to_thread(CliRunner().invoke, cli.app, ["stats"], env=env)
    w.request_stop()
    w.request_stop()
    await asyncio.wait_for(task, 15)
    out = res.output
    assert res.exit_code == 0, out
    assert "rate limits" in out
    assert "3/60000ms:sliding" in out
    assert "3 / 3" in out  # used / capacity
    assert "execution time per type" in out
    assert "noop" in out
