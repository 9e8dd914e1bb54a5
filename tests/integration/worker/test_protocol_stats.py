"""queue_stats against a real Redis: the contract the operator codes against."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_protocol.stats import ActiveJob, WorkerHeartbeat, heartbeat_json, queue_stats

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [True, False])
async def test_queue_stats_reads_everything_in_one_round_trip(
    redis_url: str, decode: bool, protocol: int
) -> None:
    # The replies are read raw, so both reply shapes (RESP2's flat lists, RESP3's
    # maps and pairs) and both decodings must give the same answer.
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=decode, protocol=protocol)
    secs, _ = await r.time()
    now_ms = int(secs) * 1000
    q = "email:processing"
    await r.zadd(keys.ready_key(q, 1), {"a": now_ms - 5000, "b": now_ms - 1000})
    await r.zadd(keys.ready_key(q, 7), {"c": now_ms - 9000})
    await r.zadd(keys.delayed_key(q), {"d": now_ms + 60_000, "e": now_ms - 10})
    await r.zadd(keys.lease_key(q), {"f": now_ms + 30_000})
    await r.zadd(keys.dead_key(q), {"g": now_ms, "h": now_ms, "i": now_ms})
    await r.hset(keys.counters_key(q), mapping={"completed": 12, "enqueued": 20})
    fresh = WorkerHeartbeat(
        worker_id="w1",
        state="busy",
        seen_at=0.0,
        active_jobs=1,
        jobs=(ActiveJob(id="f", type="sleep", started_at=secs - 2.0),),
        started_at=secs - 100.0,
        rss_bytes=1234,
        processed=7,
        failed=1,
        mean_processing_s=0.25,
        pod_name="worker-abc",
    )
    body = heartbeat_json(fresh)
    assert "seen_at" not in json.loads(body)
    await r.hset(keys.workers_key(q), "w1", f'{{"seen_at":{secs},' + body[1:])
    await r.hset(keys.workers_key(q), "old", f'{{"seen_at":{secs - 300},' + body[1:])
    await r.hset(keys.workers_key(q), "junk", "not json")

    stats = await queue_stats(r, [q, "empty"], heartbeat_ttl_s=30.0)

    s = stats[q]
    assert s.waiting_by_priority[1] == 2
    assert s.waiting_by_priority[7] == 1
    assert s.waiting_by_priority[5] == 0
    assert s.waiting == 3
    assert s.delayed == 2
    assert s.delayed_due == 1
    assert s.in_flight == 1
    assert s.dead == 3
    assert s.oldest_ready_at == pytest.approx((now_ms - 9000) / 1000)
    assert 8.0 <= s.oldest_age_s() <= 12.0
    assert s.counters == {"completed": 12, "enqueued": 20}
    assert [w.worker_id for w in s.workers] == ["w1"]
    assert s.workers[0].jobs == fresh.jobs
    assert s.workers[0].pod_name == "worker-abc"
    assert s.workers[0].seen_at == float(secs)
    assert abs(s.server_time - secs) < 5

    e = stats["empty"]
    assert e.waiting == 0
    assert e.oldest_ready_at is None
    assert e.oldest_age_s() == 0.0
    assert e.workers == ()
    assert e.counters == {}
    await r.aclose()


async def test_queue_stats_sends_one_pipeline_of_fixed_size(redis_url: str) -> None:
    r = redis.asyncio.Redis.from_url(redis_url)
    before = int((await r.info("stats"))["total_commands_processed"])
    info_calls = 1
    await queue_stats(r, ["a", "b", "c"])
    after = int((await r.info("stats"))["total_commands_processed"])
    # TIME + 27 commands per queue; every one went out in the same pipeline.
    assert after - before - info_calls == 1 + 3 * 27
    await r.aclose()


async def test_the_earliest_delayed_job_is_read_on_redis_time(redis_url: str) -> None:
    """The policy keeps the last worker for a retry due within a pod's start-up."""
    r = redis.asyncio.Redis.from_url(redis_url)
    secs, micros = await r.time()
    now_ms = int(secs) * 1000 + int(micros) // 1000
    await r.zadd(keys.delayed_key("later"), {"j1": now_ms + 5_000, "j2": now_ms + 60_000})
    stats = await queue_stats(r, ["later", "none"])
    first = stats["later"].next_delayed_at
    assert first is not None
    assert 4.0 <= first - stats["later"].server_time <= 5.5
    assert stats["none"].next_delayed_at is None
    await r.aclose()


async def _ready_jobs(r: redis.asyncio.Redis, queue: str, n: int) -> None:
    secs, _ = await r.time()
    await r.zadd(keys.ready_key(queue, 5), {f"j{i}": int(secs) * 1000 for i in range(n)})


async def test_a_connection_the_server_closed_is_replaced_within_the_read(redis_url: str) -> None:
    r = redis.asyncio.Redis.from_url(redis_url)
    await _ready_jobs(r, "kept", 2)
    assert (await queue_stats(r, ["kept"]))["kept"].waiting == 2
    # The pooled connection is closed by the server between two polls (a timeout,
    # a restart, a failover): the next read must not fail for it.
    killer = redis.asyncio.Redis.from_url(redis_url)
    killed = await killer.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert (await queue_stats(r, ["kept"]))["kept"].waiting == 2
    await killer.aclose()
    await r.aclose()


async def test_an_error_reply_fails_the_read_and_leaves_no_reply_behind(redis_url: str) -> None:
    r = redis.asyncio.Redis.from_url(redis_url)
    await _ready_jobs(r, "good", 3)
    await r.set(keys.ready_key("broken", 1), "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        await queue_stats(r, ["broken", "good"])
    # The failed read's other replies must not be taken by the next read as its own.
    for _ in range(3):
        assert (await queue_stats(r, ["good"]))["good"].waiting == 3
    await r.aclose()


async def test_a_read_cancelled_midway_leaves_no_reply_behind(redis_url: str) -> None:
    r = redis.asyncio.Redis.from_url(redis_url, max_connections=1)
    many = [f"q{i}" for i in range(400)]
    await _ready_jobs(r, "q7", 4)
    for delay in (0.0, 0.0005, 0.001, 0.002):
        read = asyncio.ensure_future(queue_stats(r, many))
        await asyncio.sleep(delay)
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read
        stats = await queue_stats(r, ["q7", "q8"])
        assert (stats["q7"].waiting, stats["q8"].waiting) == (4, 0)
    await r.aclose()
