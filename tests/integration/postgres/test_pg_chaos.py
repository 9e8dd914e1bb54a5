"""Chaos: jobs enqueued transactionally while the migrator is killed -9 every 2 s, a worker
every 3 s, and PostgreSQL is restarted once. Every job must end ``completed`` in
PostgreSQL, none may be lost, duplicate runs may not exceed the jobs the killed workers
held, and the rows must agree with Redis.

``JQ_PG_CHAOS_JOBS`` sets the number of jobs (default 20,000, the size the promise is stated for).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import redis

from jobqueue_devkit.postgres_server import PostgresServer
from jobqueue_protocol import keys
from jobqueue_worker import pgstore
from jobqueue_worker.producer import JobRequest

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

N_JOBS = int(os.environ.get("JQ_PG_CHAOS_JOBS", "20000"))
N_WORKERS = 3
CONCURRENCY = 8
N_MIGRATORS = 2
MIGRATOR_KILL_EVERY_S = 2.0
WORKER_KILL_EVERY_S = 3.0
PG_RESTART_AT_S = 6.0
ENQUEUE_BATCH = 200
JOB_S = 0.02  # long enough that a kill usually catches jobs in flight


def _held_by(r: redis.Redis, pod: str) -> int:
    """Jobs leased to one worker Pod at this moment (what a kill can make run twice)."""
    ids = [i.decode() for i in cast(list[bytes], r.zrange(keys.lease_key("default"), 0, -1))]
    if not ids:
        return 0
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hget(keys.job_key("default", i), "worker")
    return sum(1 for o in pipe.execute() if o is not None and o.decode().startswith(pod + ":"))


def _enqueue_all(dsn: str, ledger: Path, stop_at: float) -> int:
    """Batches in their own transactions; a batch cut by the restart is sent again.

    Ids are fixed per job, so a batch whose COMMIT reply was lost cannot double.
    """
    sent = 0
    while sent < N_JOBS and time.monotonic() < stop_at:
        batch = [
            JobRequest(type="record", payload={"ledger": str(ledger), "sleep": JOB_S}, id=f"j{i}")
            for i in range(sent, min(N_JOBS, sent + ENQUEUE_BATCH))
        ]
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn, conn.transaction():
                pgstore.enqueue_many(conn, batch)
        except (psycopg.Error, pgstore.StoreError):
            time.sleep(0.2)
            continue
        sent += len(batch)
    return sent


def _pg_rows(dsn: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        return {
            str(i): (str(s), int(a))
            for i, s, a in conn.execute("SELECT id, status, attempt_count FROM jobs")
        }


def _completed(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row else 0


async def test_chaos_transactional_enqueue_with_kills_and_a_postgres_restart(  # noqa: PLR0917
    private_postgres: tuple[PostgresServer, str],
    redis_url: str,
    spawn: Any,
    worker_env: Callable[..., dict[str, Any]],
    migrator_env: Callable[[str, str], dict[str, Any]],
    tmp_path: Path,
) -> None:
    server, dsn = private_postgres
    ledger = tmp_path / "ledger"
    rng = random.Random(20261204)
    deadline = time.monotonic() + max(240.0, N_JOBS / 40)
    settings = {"concurrency": CONCURRENCY, "lease_s": 2.0, "reap_interval_s": 0.5}

    def new_migrator(slot: int, gen: int) -> Any:
        return spawn(
            "migrator",
            "--batch",
            "200",
            "--poll-interval-s",
            "0.5",
            "--reconcile-after-s",
            "3",
            env=migrator_env(redis_url, dsn),
            name=f"migrator{slot}-g{gen}",
        )

    def new_worker(slot: int, gen: int) -> Any:
        pod = f"w{slot}-g{gen}"
        return spawn("worker", env=worker_env(redis_url, dsn, pod, **settings), name=pod)

    migrators = [new_migrator(i, 0) for i in range(N_MIGRATORS)]
    workers = [(f"w{i}-g0", new_worker(i, 0)) for i in range(N_WORKERS)]
    r = redis.Redis.from_url(redis_url)
    enqueue = asyncio.create_task(asyncio.to_thread(_enqueue_all, dsn, ledger, deadline))
    t0 = time.monotonic()
    next_migrator_kill = t0 + MIGRATOR_KILL_EVERY_S
    next_worker_kill = t0 + WORKER_KILL_EVERY_S
    restarted = False
    migrator_kills = worker_kills = held_at_kills = 0
    gen = 0
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            if not restarted and now - t0 >= PG_RESTART_AT_S:
                server.stop()
                await asyncio.sleep(1.0)
                server.start()
                restarted = True
            # A kill picks among the processes that got as far as running: on a
            # loaded machine a fresh process may need seconds just to start, and
            # killing only those would test nothing but start-up.
            started = [i for i, m in enumerate(migrators) if "Started migrator" in m.output()]
            if now >= next_migrator_kill and started:
                gen += 1
                slot = rng.choice(started)
                migrators[slot].kill9()
                migrators[slot] = new_migrator(slot, gen)
                migrator_kills += 1
                next_migrator_kill = now + MIGRATOR_KILL_EVERY_S
            started = [i for i, (_, w) in enumerate(workers) if "Started worker" in w.output()]
            if now >= next_worker_kill and started:
                gen += 1
                slot = rng.choice(started)
                pod, victim = workers[slot]
                held_at_kills += _held_by(r, pod)
                victim.kill9()
                workers[slot] = (f"w{slot}-g{gen}", new_worker(slot, gen))
                worker_kills += 1
                next_worker_kill = now + WORKER_KILL_EVERY_S
            if enqueue.done() and _completed(dsn) == N_JOBS:
                break
            await asyncio.sleep(0.1)
        sent = await enqueue
    finally:
        for m in migrators:
            m.stop()
        for _, w in workers:
            w.stop()
    elapsed = time.monotonic() - t0

    assert restarted
    assert sent == N_JOBS
    rows = _pg_rows(dsn)
    statuses = Counter(s for s, _ in rows.values())
    assert statuses == {"completed": N_JOBS}, (statuses, elapsed)
    runs = Counter(line.split()[0] for line in ledger.read_text().splitlines() if line.strip())
    assert set(runs) == set(rows), "a job was lost or invented"
    duplicates = sum(runs.values()) - N_JOBS
    assert duplicates <= held_at_kills, (duplicates, held_at_kills)
    pipe = r.pipeline(transaction=False)
    ids = sorted(rows)
    for i in ids:
        pipe.hmget(keys.job_key("default", i), "status", "attempt")
    redis_view = {i: (s.decode(), int(a)) for i, (s, a) in zip(ids, pipe.execute(), strict=True)}
    assert redis_view == rows, "PostgreSQL's rows disagree with Redis's records"
    r.close()
    print(
        f"\nchaos: {N_JOBS} jobs in {elapsed:.1f} s; migrator kills {migrator_kills},"
        f" worker kills {worker_kills}, PostgreSQL restarts 1; duplicates {duplicates}"
        f" (in flight at kills {held_at_kills}); lost 0"
    )
