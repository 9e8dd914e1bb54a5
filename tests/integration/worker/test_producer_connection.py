"""A producer's enqueue on its dedicated connection: replies never cross, failures retry.

One enqueue at a time goes out on the broker's own connection; a caller that
arrives while it is busy takes the client's pool, and a dropped connection or a
timeout goes round once more through the client. Real Redis throughout.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker.broker import Broker
from jobqueue_worker.envelope import JobEnvelope
from jobqueue_worker.producer import JobRequest, Producer, build

pytestmark = pytest.mark.redis


async def test_enqueues_made_at_once_each_get_their_own_id_back(redis_url: str) -> None:
    """200 enqueues in flight together: every returned id is the job that was asked for."""
    async with Producer(redis_url, default_queue="q") as producer:
        ids = await asyncio.gather(*(producer.enqueue("t", {"i": i}) for i in range(200)))
        assert len(set(ids)) == 200
        records = await asyncio.gather(*(producer.status(job_id) for job_id in ids))
    payloads = [
        JobEnvelope.from_json(rec.envelope_json or "").payload if rec else None for rec in records
    ]
    assert payloads == [{"i": i} for i in range(200)]


async def test_an_enqueue_after_the_connection_was_killed_is_stored_once(redis_url: str) -> None:
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    async with Producer(redis_url, default_queue="q") as producer:
        first = await producer.enqueue("t", {"n": 1})
        await r.client_kill_filter(_type="normal", skipme=True)
        second = await producer.enqueue("t", {"n": 2})
        again = await producer.enqueue("t", {"n": 3})
        assert len({first, second, again}) == 3
        assert await r.zcard(keys.ready_key("q", 5)) == 3
    await r.aclose()


async def test_an_enqueue_that_timed_out_and_is_sent_again_is_stored_once(
    redis_url: str,
) -> None:
    """Redis holds writes for 0.6 s and the call times out at 0.25 s: the caller sees
    the timeout and sends the same job again. Whether or not the first call ran when
    the pause ended, the job is there once: its id was chosen before the first call,
    and the script keeps the copy it already holds."""
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(redis_url, socket_timeout_s=0.25)
    job = build(JobRequest(type="t", payload={"n": 1}), "q", 1_000_000)
    await broker.enqueue({"q": [build(JobRequest(type="t"), "q", 1_000_000)]})  # dial first
    await r.execute_command("CLIENT", "PAUSE", 600, "WRITE")
    try:
        with pytest.raises(redis.TimeoutError):
            await broker.enqueue({"q": [job]})
    finally:
        await r.execute_command("CLIENT", "UNPAUSE")
    stored = await broker.enqueue({"q": [job]})
    assert [job_id for job_id, _ in stored] == [job.id]
    assert await r.zcard(keys.ready_key("q", 5)) == 2
    assert await r.zscore(keys.ready_key("q", 5), job.id) is not None
    await broker.close()
    await r.aclose()
