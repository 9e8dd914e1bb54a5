"""Soak: 10,000 jobs over 4 worker processes, a random one SIGKILLed every 2 s.

Every job must complete at least once, none may be lost, and the duplicate runs
must not exceed the jobs the killed workers held at the moment of each kill.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from jobqueue_protocol import keys
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

N_JOBS = 10_000
N_WORKERS = 4
KILL_EVERY_S = 2.0
LEASE_S = 2.0
JOB_S = 0.01  # keeps every slot busy, so each kill catches a full set of jobs in flight


def _held_by(r: redis.Redis, pod_prefix: str) -> int:
    """Jobs leased to the (dead) worker: bounded by its concurrency."""
    ids = [i.decode() for i in cast(list[bytes], r.zrange(keys.lease_key("default"), 0, -1))]
    if not ids:
        return 0
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hget(keys.job_key("default", i), "worker")
    owners = pipe.execute()
    return sum(1 for o in owners if o is not None and o.decode().startswith(pod_prefix))


async def test_soak_10k_jobs_with_random_kills(
    redis_url: str, spawn_worker: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    rng = random.Random(20261122)
    async with Producer(redis_url) as p:
        ids = await p.enqueue_many(
            [
                JobRequest(type="record", payload={"ledger": str(ledger), "sleep": JOB_S})
                for _ in range(N_JOBS)
            ]
        )
    assert len(set(ids)) == N_JOBS
    r = redis.Redis.from_url(redis_url)
    settings = {"lease_s": LEASE_S, "concurrency": 8, "reap_interval_s": 0.5}
    gen = 0
    workers = [spawn_worker(f"soak{i}-g0", **settings) for i in range(N_WORKERS)]
    kills = 0
    in_flight_at_kills = 0
    t0 = time.monotonic()
    deadline = t0 + 150

    def done_count() -> int:
        """Completions recorded in Redis: each job completes there exactly once
        (a finished delivery's token is retired), whatever the ledger says."""
        return int(r.hget(keys.counters_key("default"), "completed") or 0)

    def all_done() -> bool:
        # Not the ledger: a killed worker may have run a job without acking it;
        # that job is still leased and will run again once the lease expires.
        return done_count() >= N_JOBS

    while not all_done():
        assert time.monotonic() < deadline, f"not finished: {done_count()} of {N_JOBS}"
        await asyncio.sleep(KILL_EVERY_S)
        if all_done():
            break
        victim = rng.randrange(N_WORKERS)
        w = workers[victim]
        w.kill9()
        kills += 1
        in_flight_at_kills += _held_by(r, f"{w.pod}:")
        gen += 1
        workers[victim] = spawn_worker(f"soak{victim}-g{gen}", **settings)

    elapsed = time.monotonic() - t0
    runs = [line.split()[0] for line in ledger.read_text().splitlines() if line]
    counts: dict[str, int] = {}
    for job_id in runs:
        counts[job_id] = counts.get(job_id, 0) + 1
    duplicates = sum(c - 1 for c in counts.values())
    lost = set(ids) - set(counts)
    print(
        f"\nsoak: {N_JOBS} jobs, {len(runs)} runs, {kills} kills, "
        f"{in_flight_at_kills} in flight at the kills, {duplicates} duplicates, "
        f"{len(lost)} lost, {elapsed:.1f} s"
    )
    # A worker SIGTERMed while Python is still importing dies by the default
    # action; wait until the latest generation has heartbeated before stopping it.
    ready_by = time.monotonic() + 20
    while time.monotonic() < ready_by:
        beats = [k.decode() for k in cast(list[bytes], r.hkeys(keys.workers_key("default")))]
        if all(any(b.startswith(f"{w.pod}:") for b in beats) for w in workers):
            break
        await asyncio.sleep(0.1)
    for w in workers:
        w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        assert w.proc.wait(20) == 0, w.output()[-2000:]
    assert not lost
    assert duplicates <= in_flight_at_kills
    assert kills >= 1
    # Every job is recorded as completed; nothing is stuck anywhere.
    pipe = r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job_key("default", job_id), "status")
    statuses = pipe.execute()
    assert statuses.count(b"completed") == N_JOBS
    assert r.zcard(keys.lease_key("default")) == 0
    assert r.zcard(keys.dead_key("default")) == 0
    assert sum(r.zcard(k) for k in keys.ready_keys("default")) == 0
    r.close()
