"""The scripts' contract, driven directly: fencing tokens, reaping, renewal, release."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker.broker import Broker, SyncBroker
from jobqueue_worker.envelope import JobEnvelope
from jobqueue_worker.wire import BrokerSettings, FetchPlan, FinishOp, NewJob

pytestmark = pytest.mark.redis

PLAN = FetchPlan(queues=("q",))


def new_job(priority: int = 5) -> NewJob:
    env = JobEnvelope(type="t", queue="q", priority=priority)
    return NewJob(id=env.id, envelope_json=env.to_json(), priority=priority, max_attempts=3)


async def expire_leases(r: redis.asyncio.Redis) -> None:
    ids = [str(i) for i in await r.zrange(keys.lease_key("q"), 0, -1)]
    await r.zadd(keys.lease_key("q"), dict.fromkeys(ids, 0))


async def test_fencing_refuses_the_ack_of_a_worker_whose_job_was_re_leased(redis_url: str) -> None:
    b = Broker(redis_url, BrokerSettings(lease_ms=60_000, max_deliveries=5))
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    job = new_job()
    await b.enqueue({"q": [job]})
    first = (await b.step(PLAN, "A", [], 1, 0.5)).jobs[0]
    await expire_leases(r)
    assert await b.reap("q", "A", 1000) == (1, 0)
    second = (await b.step(PLAN, "B", [], 1, 0.5)).jobs[0]
    assert second.id == first.id
    assert second.token != first.token
    assert second.deliveries == 2
    late = FinishOp(queue="q", id=first.id, token=first.token, op="complete", result='"A"')
    res = await b.step(PLAN, "A", [late], 0, 0.5)
    assert res.acks == [False]
    ok = FinishOp(queue="q", id=second.id, token=second.token, op="complete", result='"B"')
    assert (await b.step(PLAN, "B", [ok], 0, 0.5)).acks == [True]
    assert await r.hget(keys.job_key("q", job.id), "result") == '"B"'
    # An ack applied twice (reply lost, retried) is refused the second time.
    assert (await b.step(PLAN, "B", [ok], 0, 0.5)).acks == [False]
    assert await r.hget(keys.counters_key("q"), "completed") == "1"
    await b.close()
    await r.aclose()


async def test_a_late_ack_of_a_reaped_job_not_yet_refetched_wins(redis_url: str) -> None:
    b = Broker(redis_url)
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    job = new_job(priority=2)
    await b.enqueue({"q": [job]})
    got = (await b.step(PLAN, "A", [], 1, 0.5)).jobs[0]
    await expire_leases(r)
    assert await b.reap("q", "A", 1000) == (1, 0)
    assert await r.zscore(keys.ready_key("q", 2), job.id) is not None
    done = FinishOp(queue="q", id=got.id, token=got.token, op="complete")
    assert (await b.step(PLAN, "A", [done], 0, 0.5)).acks == [True]
    assert await r.zscore(keys.ready_key("q", 2), job.id) is None  # no second run
    assert (await b.step(PLAN, "B", [], 5, 0.5)).jobs == []
    await b.close()
    await r.aclose()


async def test_renewal_keeps_held_leases_and_reports_lost_ones(redis_url: str) -> None:
    b = Broker(redis_url, BrokerSettings(lease_ms=1000))
    sb = SyncBroker(redis_url, BrokerSettings(lease_ms=5000))
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    await b.enqueue({"q": [new_job(), new_job()]})
    a, c = (await b.step(PLAN, "A", [], 2, 0.5)).jobs
    before = await r.zscore(keys.lease_key("q"), a.id)
    assert before is not None
    ok = await asyncio.to_thread(sb.renew, PLAN, [("q", a.id, a.token), ("q", c.id, "wrong-token")])
    assert ok == [True, False]
    after = await r.zscore(keys.lease_key("q"), a.id)
    assert after is not None
    assert after >= before + 3000
    sb.close()
    await b.close()
    await r.aclose()


async def test_release_puts_the_job_back_in_front_without_counting_a_delivery(
    redis_url: str,
) -> None:
    b = Broker(redis_url)
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    first, second = new_job(), new_job()
    await b.enqueue({"q": [first, second]})
    got = (await b.step(PLAN, "A", [], 1, 0.5)).jobs[0]
    assert got.id == first.id
    rel = FinishOp(queue="q", id=got.id, token=got.token, op="release")
    res = await b.step(PLAN, "A", [rel], 1, 0.5)
    assert res.acks == [True]
    assert [j.id for j in res.jobs] == [first.id]  # still ahead of the second job
    assert res.jobs[0].deliveries == 1
    await b.close()
    await r.aclose()


async def test_due_delayed_jobs_are_promoted_by_the_fetch(redis_url: str) -> None:
    b = Broker(redis_url)
    job = new_job()
    later = NewJob(**{**job.__dict__, "delay_ms": 300})
    await b.enqueue({"q": [later]})
    res = await b.step(PLAN, "A", [], 1, 0.5)
    assert res.jobs == []
    assert res.next_due_ms is not None
    assert 0 < res.next_due_ms - res.now_ms <= 300
    await asyncio.sleep(0.35)
    res = await b.step(PLAN, "A", [], 1, 0.5)
    assert [j.id for j in res.jobs] == [job.id]
    await b.close()


async def test_step_calls_survive_a_flushed_script_cache_and_a_dropped_connection(
    redis_url: str,
) -> None:
    """The dispatcher's own step connection: NOSCRIPT reloads, a killed client redials,
    and a step that runs while another is on its way takes the client's path."""
    b = Broker(redis_url)
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    jobs = [new_job() for _ in range(4)]
    await b.enqueue({"q": jobs})
    assert len((await b.step(PLAN, "A", [], 1, 0.5)).jobs) == 1
    await r.script_flush()
    assert len((await b.step(PLAN, "A", [], 1, 0.5)).jobs) == 1
    await r.client_kill_filter(_type="normal", skipme=True)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the dropped connection's error
        await b.step(PLAN, "A", [], 1, 0.5)
    together = await asyncio.gather(b.step(PLAN, "A", [], 1, 0.5), b.step(PLAN, "A", [], 1, 0.5))
    assert sorted(len(res.jobs) for res in together) == [1, 1]
    assert await r.zcard(keys.lease_key("q")) == 4
    await b.close()
    await r.aclose()


async def test_wait_then_step_returns_the_job_enqueued_to_an_idle_worker_leased(
    redis_url: str,
) -> None:
    """One call: the BLPOP on the wake list, then the step, in the same write."""
    b = Broker(redis_url)
    producer = Broker(redis_url)
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    assert b.waits_with_step
    waiting = asyncio.create_task(b.wait_then_step(PLAN, 5.0, "A", 2, 0.5))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    job = new_job()
    await producer.enqueue({"q": [job]})
    res = await asyncio.wait_for(waiting, 2.0)
    assert [f.id for f in res.jobs] == [job.id]
    assert await r.zscore(keys.lease_key("q"), job.id) is not None
    assert await r.hget(keys.job_key("q", job.id), "token") == res.jobs[0].token
    await b.close()
    await producer.close()
    await r.aclose()


async def test_an_interrupted_wait_still_steps_and_returns_what_it_leased(redis_url: str) -> None:
    """Shutdown ends a wait with CLIENT UNBLOCK: nothing it leases is left to the lease."""
    b = Broker(redis_url)
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    job = new_job()
    await b.enqueue({"q": [job]})
    await r.delete(keys.wake_key("q"))  # ready, but no token: the BLPOP blocks
    assert not await b.interrupt_wait()  # nothing waits yet
    waiting = asyncio.create_task(b.wait_then_step(PLAN, 30.0, "A", 1, 0.5))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if await b.interrupt_wait():
            break
    res = await asyncio.wait_for(waiting, 2.0)
    assert [f.id for f in res.jobs] == [job.id]
    back = FinishOp(queue="q", id=job.id, token=res.jobs[0].token, op="release")
    assert (await b.step(PLAN, "A", [back], 0, 0.5)).acks == [True]
    assert await r.zscore(keys.ready_key("q", 5), job.id) is not None
    await b.close()
    await r.aclose()
