"""Priority order, retries, dead letters and replay, idempotency, bad input: real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker import dlq
from jobqueue_worker.backoff import BackoffPolicy
from jobqueue_worker.broker import Broker
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.errors import EnqueueError
from jobqueue_worker.producer import JobRequest, Producer, SyncProducer
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]


def recording_registry(seen: list[Any]) -> Registry:
    reg = Registry()

    @reg.job_type("rec")
    async def rec(job: Job) -> Any:
        seen.append(job.payload)
        return job.payload

    return reg


async def test_strict_priority_order_within_and_across_queues(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    seen: list[Any] = []
    async with Producer(redis_url) as p:
        reqs = [
            JobRequest(type="rec", payload=f"{q}/{prio}/{i}", queue=q, priority=prio)
            for q in ("email:processing:low", "email:processing", "email:processing:high")
            for prio in (10, 7, 5, 3, 1)
            for i in range(2)
        ]
        await p.enqueue_many(reqs)
    await start_worker(
        recording_registry(seen),
        concurrency=1,
        queues="email:processing:high,email:processing,email:processing:low",
    )
    await until(lambda: _done(seen, 30))
    expected = [
        f"{q}/{prio}/{i}"
        for q in ("email:processing:high", "email:processing", "email:processing:low")
        for prio in (1, 3, 5, 7, 10)
        for i in range(2)
    ]
    assert seen == expected


async def _done(seen: list[Any], n: int) -> bool:
    return len(seen) >= n


async def test_aging_serves_an_old_low_priority_job_first(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    seen: list[Any] = []
    async with Producer(redis_url) as p:
        await p.enqueue("rec", "old-background", priority="background")
        await asyncio.sleep(0.6)
        await p.enqueue_many(
            [JobRequest(type="rec", payload=f"c{i}", priority=1) for i in range(3)]
        )
    await start_worker(recording_registry(seen), concurrency=1, aging_s=0.5)
    await until(lambda: _done(seen, 4))
    assert seen[0] == "old-background"
    assert seen[1:] == ["c0", "c1", "c2"]


async def test_weighted_mode_serves_queues_in_proportion(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    seen: list[Any] = []
    async with Producer(redis_url) as p:
        await p.enqueue_many(
            [JobRequest(type="rec", payload=q, queue=q) for q in ("a", "b") for _ in range(200)]
        )
    await start_worker(
        recording_registry(seen), concurrency=1, queues="a,b", mode="weighted", weights="3,1"
    )
    await until(lambda: _done(seen, 100))
    first = seen[:100]
    # Strict mode would give 100 x "a"; 3:1 weights give about 75.
    assert 60 <= first.count("a") <= 90, first.count("a")


async def test_retry_then_dead_letter_then_replay(
    redis_url: str, start_worker: StartWorker, reach: Any
) -> None:
    attempts: list[int] = []
    healthy = {"now": False}
    reg = Registry()

    @reg.job_type("flaky", backoff=BackoffPolicy(retries=2, base_s=0.1, factor=2.0, cap_s=1.0))
    async def flaky(job: Job) -> str:
        attempts.append(job.attempt)
        if not healthy["now"]:
            raise RuntimeError(f"boom {job.attempt}")
        return "ok"

    async with Producer(redis_url) as p:
        job_id = await p.enqueue("flaky", {"x": 1}, priority="high")
        await start_worker(reg, concurrency=2)
        broker = Broker(redis_url)

        rec = await reach(p, job_id, JobStatus.DEAD)
        assert attempts == [1, 2, 3]
        assert rec.dead_reason == "exception"
        assert rec.error == "RuntimeError: boom 3"
        assert rec.traceback is not None
        assert "RuntimeError: boom 3" in rec.traceback
        assert rec.first_failed_at is not None
        assert rec.last_failed_at is not None
        assert rec.first_failed_at < rec.last_failed_at
        listed = await dlq.list_dead(broker, "default")
        assert [r.id for r in listed] == [job_id]

        healthy["now"] = True
        assert await dlq.act(broker, "replay", "default", flt=dlq.DeadFilter(type="flaky")) == 1
        assert await dlq.act(broker, "replay", "default", [job_id]) == 0  # already replayed

        rec = await reach(p, job_id, JobStatus.COMPLETED)
        assert rec.result == "ok"
        assert rec.priority == 3
        assert attempts == [1, 2, 3, 1]  # attempts were reset by the replay
        assert await dlq.list_dead(broker, "default") == []
        await broker.close()


async def test_retry_delays_wait_in_redis_not_in_the_worker(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    starts: list[float] = []
    reg = Registry()

    @reg.job_type("slow_retry", backoff=BackoffPolicy(retries=1, kind="fixed", base_s=0.8))
    async def slow_retry(job: Job) -> None:
        starts.append(asyncio.get_running_loop().time())
        if job.attempt == 1:
            raise RuntimeError("first time fails")

    async with Producer(redis_url) as p:
        await p.enqueue("slow_retry")
        await start_worker(reg)
        r = redis.asyncio.Redis.from_url(redis_url)
        await until(lambda: _done(starts, 1))
        await asyncio.sleep(0.1)
        assert await r.zcard(keys.delayed_key("default")) == 1
        await until(lambda: _done(starts, 2))
        assert 0.7 <= starts[1] - starts[0] <= 1.6
        await r.aclose()


async def test_permanent_error_skips_retries(
    redis_url: str, start_worker: StartWorker, reach: Any
) -> None:
    calls: list[int] = []
    reg = Registry()

    @reg.job_type("pay", permanent=(ValueError,))
    async def pay(job: Job) -> None:
        calls.append(job.attempt)
        raise ValueError("card refused")

    async with Producer(redis_url) as p:
        job_id = await p.enqueue("pay")
        await start_worker(reg)

        rec = await reach(p, job_id, JobStatus.DEAD)
        assert rec.dead_reason == "permanent"
    assert calls == [1]


async def test_idempotency_key_enqueues_once(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    seen: list[Any] = []
    async with Producer(redis_url) as p:
        first = await p.enqueue("rec", "a", idempotency_key="order-42")
        second = await p.enqueue("rec", "b", idempotency_key="order-42")
        ids = await p.enqueue_many(
            [
                JobRequest(type="rec", payload="c", idempotency_key="order-43"),
                JobRequest(type="rec", payload="d", idempotency_key="order-43"),
            ]
        )
        assert second == first
        assert ids[0] == ids[1]
        assert ids[0] != first
        await start_worker(recording_registry(seen))
        await until(lambda: _done(seen, 2))
        await asyncio.sleep(0.3)
        assert sorted(seen) == ["a", "c"]
        assert await p.result(first) == "a"
    sync = SyncProducer(redis_url)
    assert sync.enqueue("rec", "e", idempotency_key="order-42") == first
    rec = sync.status(first)
    assert rec is not None
    assert rec.status is JobStatus.COMPLETED
    sync.close()


async def test_delay_and_run_at(redis_url: str, start_worker: StartWorker, until: Any) -> None:
    ran_at: dict[str, float] = {}
    reg = Registry()

    @reg.job_type("rec")
    async def rec(job: Job) -> None:
        ran_at[job.payload] = time.time()

    async with Producer(redis_url) as p:
        enqueued = time.time()
        await p.enqueue("rec", "later", delay_s=0.6)
        await p.enqueue("rec", "at", run_at=datetime.now(UTC) + timedelta(seconds=0.3))
        await p.enqueue("rec", "now")
        await start_worker(reg)
        await until(lambda: _done(list(ran_at), 3), timeout_s=10)
    # Judged by when each job ran, not by when the test looked: on a loaded
    # machine the worker may start after the first due time has passed.
    assert sorted(ran_at, key=ran_at.__getitem__) == ["now", "at", "later"]
    assert ran_at["at"] >= enqueued + 0.3
    assert ran_at["later"] >= enqueued + 0.6


async def test_producer_rejects_bad_jobs_before_redis(redis_url: str) -> None:
    async with Producer(redis_url, max_payload_bytes=100) as p:
        with pytest.raises(EnqueueError):
            await p.enqueue("rec", priority=11)
        with pytest.raises(EnqueueError):
            await p.enqueue("rec", priority=0)
        with pytest.raises(EnqueueError):
            await p.enqueue("rec", "x" * 200)
        r = redis.asyncio.Redis.from_url(redis_url)
        assert await r.dbsize() == 0
        await r.aclose()


async def _inject(r: redis.asyncio.Redis, job_id: str, envelope: str, priority: int = 5) -> None:
    """A job written by a buggy or hostile producer, straight into Redis."""
    await r.hset(
        keys.job_key("default", job_id),
        mapping={"envelope": envelope, "priority": priority, "attempt": 1, "deliveries": 0},
    )
    await r.zadd(keys.ready_key("default", priority), {job_id: 1})


async def test_malformed_jobs_go_to_the_dlq_and_the_worker_keeps_going(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    seen: list[Any] = []
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    good = {"id": "x", "type": "rec", "queue": "default", "payload": 1}
    await _inject(r, "notjson", "{not json")
    raw = redis.asyncio.Redis.from_url(redis_url)  # bytes as a pickle producer would store them
    await raw.hset(
        keys.job_key("default", "pickle"), mapping={"envelope": b"\x80\x04\x95.\xff", "priority": 5}
    )
    await raw.zadd(keys.ready_key("default", 5), {"pickle": 1})
    await raw.aclose()
    await _inject(r, "badenv", json.dumps({**good, "id": "badenv", "priority": 99}))
    await _inject(r, "extra", json.dumps({**good, "id": "extra", "surprise": True}))
    await _inject(r, "unknown", json.dumps({**good, "id": "unknown", "type": "nope"}))
    await _inject(r, "big", json.dumps({**good, "id": "big", "payload": "x" * 5000}))
    secret = json.dumps({**good, "id": "secret", "priority": 0, "payload": "card-4111"})
    await _inject(r, "secret", secret)
    await start_worker(recording_registry(seen), max_payload_bytes=2000)
    async with Producer(redis_url) as p:
        await p.enqueue("rec", "after")
    await until(lambda: _done(seen, 1))
    assert seen == ["after"]
    broker = Broker(redis_url)
    await until(lambda: _dead_count(broker, 7))
    reasons = {rec.id: rec.dead_reason for rec in await dlq.list_dead(broker, "default")}
    assert reasons == {
        "notjson": "malformed",
        "pickle": "malformed",
        "badenv": "malformed",
        "extra": "malformed",
        "unknown": "unknown_type",
        "big": "too_large",
        "secret": "malformed",
    }
    shown = await dlq.show(broker, "default", "secret")
    assert shown is not None
    assert shown.error is not None
    assert "priority" in shown.error
    assert "card-4111" not in shown.error  # the payload never reaches errors or logs
    assert await dlq.act(broker, "purge", "default", flt=dlq.DeadFilter(reason="malformed")) == 5
    assert len(await dlq.list_dead(broker, "default")) == 2
    await broker.close()
    await r.aclose()


async def _dead_count(broker: Broker, n: int) -> bool:
    return len(await broker.dead_ids("default", 0, 100)) >= n


async def test_heartbeat_reaches_queue_stats(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    reg = Registry()
    started = asyncio.Event()

    @reg.job_type("block")
    async def block(job: Job) -> None:
        started.set()
        await asyncio.sleep(1.5)

    async with Producer(redis_url) as p:
        await p.enqueue("block")
    w = await start_worker(reg, pod_name="pod-7")
    await asyncio.wait_for(started.wait(), 5)
    broker = Broker(redis_url)

    async def busy() -> bool:
        s = (await broker.stats(["default"]))["default"]
        return any(hb.state == "busy" and hb.active_jobs == 1 for hb in s.workers)

    await until(busy)
    s = (await broker.stats(["default"]))["default"]
    hb = s.workers[0]
    assert hb.worker_id == w.id
    assert hb.pod_name == "pod-7"
    assert hb.concurrency == w.settings.concurrency  # the operator's in-flight floor needs it
    assert hb.jobs[0].type == "block"
    assert 0 <= s.server_time - hb.jobs[0].started_at < 5  # on Redis's clock
    assert s.in_flight == 1
    assert abs(hb.seen_at - s.server_time) < 2
    await broker.close()


async def test_dlq_retention_by_count(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    # Twenty jobs fetched in one step are dead-lettered in the next, in the same
    # millisecond: only unique, ordered dead-letter scores keep the newest five.
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many([JobRequest(type="unknown-type") for _ in range(20)])
    await start_worker(recording_registry([]), concurrency=20, dlq_max_count=5)
    broker = Broker(redis_url)

    async def trimmed() -> bool:
        r = redis.asyncio.Redis.from_url(redis_url)
        left = await r.zcard(keys.dead_key("default"))
        waiting = sum([await r.zcard(k) for k in keys.ready_keys("default")])
        await r.aclose()
        return waiting == 0 and left == 5

    await until(trimmed)
    kept = {rec.id for rec in await dlq.list_dead(broker, "default")}
    assert kept == set(ids[-5:])  # the oldest went first
    assert await broker.job("default", ids[0]) is None  # record deleted with it
    await broker.close()


async def test_dlq_retention_by_age(redis_url: str, start_worker: StartWorker, until: Any) -> None:
    async with Producer(redis_url) as p:
        old = await p.enqueue("unknown-type")
        await start_worker(recording_registry([]), concurrency=1, dlq_max_age_s=0.5)
        broker = Broker(redis_url)

        async def dead(n: int) -> bool:
            return len(await broker.dead_ids("default", 0, 10)) == n

        await until(lambda: dead(1))
        await asyncio.sleep(0.7)
        new = await p.enqueue("unknown-type")  # the next dead-letter move trims by age
        await until(lambda: _only(broker, new))
        assert await broker.job("default", old) is None
        await broker.close()


async def _only(broker: Broker, job_id: str) -> bool:
    return [i for i, _ in await broker.dead_ids("default", 0, 10)] == [job_id]


async def test_oversized_result_is_dead_lettered_not_stored(
    redis_url: str, start_worker: StartWorker, reach: Any
) -> None:
    reg = Registry()

    @reg.job_type("big_result")
    async def big_result(job: Job) -> str:
        return "x" * 5000

    async with Producer(redis_url) as p:
        job_id = await p.enqueue("big_result")
        await start_worker(reg, max_payload_bytes=1000)

        rec = await reach(p, job_id, JobStatus.DEAD)
        assert rec.dead_reason == "permanent"
        assert rec.error is not None
        assert "over the 1000-byte limit" in rec.error
        assert rec.result_json is None
