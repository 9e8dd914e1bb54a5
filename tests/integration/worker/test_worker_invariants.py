"""Random operation sequences against the scripts: a job is always in exactly one place.

Seeded random walks (enqueue, fetch, complete, retry, dead-letter, release, a
stale ack, lease expiry plus reap, replay) checked after every step against the
rule that nothing is lost or duplicated in Redis: each job is in exactly one of
the ready bands, delayed, leases or dead, or it is finished (completed/failed).
"""

from __future__ import annotations

import random

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker.broker import Broker
from jobqueue_worker.envelope import JobEnvelope
from jobqueue_worker.wire import BrokerSettings, Fetched, FetchPlan, FinishKind, FinishOp, NewJob

pytestmark = pytest.mark.redis

QUEUES = ("a", "b")
PLAN = FetchPlan(queues=QUEUES, aging_ms=0)


async def places(r: redis.asyncio.Redis, queue: str, job_id: str) -> list[str]:
    pipe = r.pipeline(transaction=False)
    for p in keys.PRIORITIES:
        pipe.zscore(keys.ready_key(queue, p), job_id)
    pipe.zscore(keys.delayed_key(queue), job_id)
    pipe.zscore(keys.lease_key(queue), job_id)
    pipe.zscore(keys.dead_key(queue), job_id)
    pipe.hget(keys.job_key(queue, job_id), "status")
    *scores, status = await pipe.execute()
    names = [f"ready:{p}" for p in keys.PRIORITIES] + ["delayed", "leases", "dead"]
    found = [n for n, s in zip(names, scores, strict=True) if s is not None]
    if status in ("completed", "failed"):
        found.append(status)
    return found


@pytest.mark.parametrize("seed", range(12))
async def test_random_walk_never_loses_or_duplicates_a_job(redis_url: str, seed: int) -> None:
    rng = random.Random(seed)
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    await r.flushall()
    b = Broker(redis_url, BrokerSettings(lease_ms=60_000, max_deliveries=3))
    jobs: dict[str, str] = {}  # id -> queue
    held: list[Fetched] = []
    stale: list[Fetched] = []
    expired: list[Fetched] = []
    for _ in range(60):
        action = rng.choice(
            ["enqueue", "enqueue", "fetch", "finish", "finish", "stale", "expire", "replay"]
        )
        if action == "enqueue":
            q = rng.choice(QUEUES)
            prio = rng.choice(keys.PRIORITIES)
            env = JobEnvelope(type="t", queue=q, priority=prio)
            delay = rng.choice([0, 0, 0, 1])  # 1 ms: due by the next fetch
            await b.enqueue({q: [NewJob(env.id, env.to_json(), prio, 3, delay_ms=delay)]})
            jobs[env.id] = q
        elif action == "fetch":
            res = await b.step(PLAN, "w", [], rng.randint(1, 3), rng.random())
            held += res.jobs
        elif action == "finish" and held:
            f = held.pop(rng.randrange(len(held)))
            op: FinishKind = rng.choice(["complete", "retry", "dead", "failed", "release"])
            fin = FinishOp(
                queue=f.queue, id=f.id, token=f.token, op=op, delay_ms=1, reason="exception"
            )
            res = await b.step(PLAN, "w", [fin], 0, 0.5)
            assert res.acks == [True], (seed, op)
            stale.append(f)
        elif action == "stale" and stale:
            f = rng.choice(stale)
            fin = FinishOp(queue=f.queue, id=f.id, token=f.token, op="complete")
            res = await b.step(PLAN, "w", [fin], 0, 0.5)
            assert res.acks == [False]  # a finished delivery can never ack again
        elif action == "stale" and expired:
            # A late ack of a reaped delivery wins only while nobody fetched it again.
            f = expired.pop(rng.randrange(len(expired)))
            fin = FinishOp(queue=f.queue, id=f.id, token=f.token, op="complete")
            await b.step(PLAN, "w", [fin], 0, 0.5)
            stale.append(f)
        elif action == "expire":
            for q in QUEUES:
                ids = [str(i) for i in await r.zrange(keys.lease_key(q), 0, -1)]
                if ids:
                    await r.zadd(keys.lease_key(q), dict.fromkeys(ids, 0))
                await r.delete(keys.reaper_key(q))
                await b.reap(q, "w", 1)
            expired += held
            held = []
        elif action == "replay":
            for q in QUEUES:
                ids = [i for i, _ in await b.dead_ids(q, 0, 100)]
                await b.replay(q, ids)
        for job_id, q in jobs.items():
            where = await places(r, q, job_id)
            assert len(where) == 1, (seed, action, job_id, where)
    await b.close()
    await r.aclose()
