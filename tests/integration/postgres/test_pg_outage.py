"""PostgreSQL down for 30 s while a worker runs: processing goes on, every update lands after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from jobqueue_devkit.postgres_server import PostgresServer
from jobqueue_devkit.waiting import eventually
from jobqueue_worker import pgstore
from jobqueue_worker.broker import Broker
from jobqueue_worker.migrator import Migrator
from jobqueue_worker.pgstore import AsyncStore
from jobqueue_worker.producer import JobRequest

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

OUTAGE_S = 30.0
N_JOBS = 800
JOB_S = 0.4  # 800 × 0.4 s over 10 slots: about 32 s of work, so the outage falls mid-run


async def _redis_completed(broker: Broker, ids: list[str]) -> int:
    raws = await broker.jobs("default", ids)
    return sum(1 for raw in raws if raw.get("status") == "completed")


async def test_postgres_down_30s_processing_continues_and_updates_land_after(
    private_postgres: tuple[PostgresServer, str],
    redis_url: str,
    spawn: Any,
    worker_env: Callable[..., dict[str, Any]],
    rows_by_status: Callable[[str], dict[str, int]],
) -> None:
    server, dsn = private_postgres

    with psycopg.connect(dsn) as conn:
        ids = pgstore.enqueue_many(
            conn, [JobRequest(type="sleep", payload={"seconds": JOB_S}) for _ in range(N_JOBS)]
        )
    store, broker = AsyncStore(dsn), Broker(redis_url)
    m = Migrator(store, broker, batch=500)
    while await m.migrate_once():
        pass
    await store.close()
    assert rows_by_status(dsn) == {"migrated": N_JOBS}

    # No migrator runs from here on: its reconciler must not be what repairs the rows.
    worker = spawn("worker", env=worker_env(redis_url, dsn, "w", concurrency=10))

    async def some_written() -> bool:
        return rows_by_status(dsn).get("completed", 0) >= 20

    await eventually(some_written, 30, interval_s=0.2)
    server.stop()
    down_at = time.monotonic()
    done_at_stop = await _redis_completed(broker, ids)
    await asyncio.sleep(OUTAGE_S)
    done_during = await _redis_completed(broker, ids) - done_at_stop
    server.start()
    outage_s = time.monotonic() - down_at
    assert worker.proc.poll() is None, worker.output()[-3000:]
    # About 25 jobs/s for 30 s; a third of that proves processing never waited.
    assert done_during >= 200, (done_at_stop, done_during)

    async def all_in_redis() -> bool:
        return await _redis_completed(broker, ids) == N_JOBS

    await eventually(all_in_redis, 60, interval_s=0.5)

    async def all_written() -> bool:
        return rows_by_status(dsn) == {"completed": N_JOBS}

    await eventually(all_written, 60, interval_s=0.5)
    assert worker.stop() == 0
    await broker.close()
    out = worker.output()
    assert "PostgreSQL write-back failing" in out, out[-3000:]
    assert "PostgreSQL write-back recovered" in out, out[-3000:]
    assert outage_s >= OUTAGE_S
    with psycopg.connect(dsn) as conn:
        n_attempts = conn.execute(
            "SELECT count(*) FROM job_attempts WHERE outcome = 'completed'"
        ).fetchone()
    assert n_attempts == (N_JOBS,)
