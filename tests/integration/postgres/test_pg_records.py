"""Status write-back, the reconciler and the DLQ hooks, on a real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
import pytest

from jobqueue_devkit.waiting import eventually
from jobqueue_protocol import keys
from jobqueue_worker import dlq, examples, pgstore
from jobqueue_worker.broker import Broker
from jobqueue_worker.migrator import Migrator
from jobqueue_worker.pgevents import JobEvent
from jobqueue_worker.pgstore import AsyncStore
from jobqueue_worker.producer import JobRequest
from jobqueue_worker.runtime import Worker
from jobqueue_worker.settings import load

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

FAST = {"http_port": 0, "lease_s": 1.0, "reap_interval_s": 0.2, "idle_block_s": 0.2}


def _job(dsn: str, job_id: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT status, attempt_count, last_error_message, finished_at IS NOT NULL"
            " FROM jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def _attempts(dsn: str, job_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT attempt, outcome, error IS NOT NULL FROM job_attempts"
                " WHERE job_id = %s ORDER BY attempt",
                (job_id,),
            )
        ]


def _events(job_id: str) -> list[JobEvent]:
    return [
        JobEvent(job_id, 1, "running", "w", 100.0, 100.0),
        JobEvent(job_id, 1, "retry_scheduled", "w", 101.0, 100.0, "boom", 1000),
        JobEvent(job_id, 2, "running", "w", 102.0, 102.0),
        JobEvent(job_id, 2, "completed", "w", 103.0, 102.0, None, 900),
    ]


async def test_events_are_idempotent_in_any_repetition_and_order(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        ids = pgstore.enqueue_many(conn, [JobRequest(type="noop") for _ in range(3)])
    store = AsyncStore(pg_dsn)
    try:
        in_order = _events(ids[0])
        await store.write_events(in_order)
        await store.write_events(in_order)  # at-least-once: the batch again
        expected = _job(pg_dsn, ids[0])
        expected_attempts = _attempts(pg_dsn, ids[0])
        for seed, job_id in enumerate(ids[1:]):
            shuffled = _events(job_id) * 2
            random.Random(seed).shuffle(shuffled)
            for ev in shuffled:  # one event per transaction, in a random order
                await store.write_events([ev])
            assert _job(pg_dsn, job_id) == expected
            assert _attempts(pg_dsn, job_id) == expected_attempts
    finally:
        await store.close()
    assert expected == ("completed", 2, "boom", True)
    assert expected_attempts == [(1, "failed", True), (2, "completed", False)]


async def test_worker_writes_every_status_and_attempt(pg_dsn: str, redis_url: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        ok = pgstore.enqueue(conn, "noop")
        flaky = pgstore.enqueue(conn, "fail_n_times", {"n": 2})
        doomed = pgstore.enqueue(conn, "permanent_failure")
    store, broker = AsyncStore(pg_dsn), Broker(redis_url)
    await Migrator(store, broker).migrate_once()
    worker = Worker(load(redis_url=redis_url, postgres_dsn=pg_dsn, **FAST), examples.registry)
    task = asyncio.create_task(worker.run())
    try:

        async def all_final() -> bool:
            return [_job(pg_dsn, i)[0] for i in (ok, flaky, doomed)] == [
                "completed",
                "completed",
                "dead",
            ]

        await eventually(all_final, 20, interval_s=0.1)
    finally:
        worker.request_stop()
        assert await asyncio.wait_for(task, 15) == 0
    assert _attempts(pg_dsn, flaky) == [
        (1, "failed", True),
        (2, "failed", True),
        (3, "completed", False),
    ]
    assert _job(pg_dsn, doomed)[:3] == ("dead", 1, "PermanentError: this job can never succeed")
    # Every failed attempt keeps its traceback, not only the last one (Redis keeps that).
    with psycopg.connect(pg_dsn) as conn:
        traces = conn.execute(
            "SELECT attempt, traceback FROM job_attempts WHERE job_id = %s ORDER BY attempt",
            (flaky,),
        ).fetchall()
    assert [a for a, _ in traces] == [1, 2, 3]
    assert all("Traceback (most recent call last)" in (t or "") for _, t in traces[:2]), traces
    assert traces[2][1] is None

    # DLQ replay resets the row; the migrator then finds nothing new to create.
    assert await dlq.act(broker, "replay", "default", [doomed], records=store) == 1
    assert _job(pg_dsn, doomed) == ("queued", 0, None, False)
    await Migrator(store, broker).migrate_once()
    assert _job(pg_dsn, doomed)[0] == "migrated"
    # Purge marks the row instead of deleting the history.
    await broker.redis.zadd(keys.dead_key("default"), {doomed: 1})  # dead again, by hand
    assert await dlq.act(broker, "purge", "default", [doomed], records=store) == 1
    assert _job(pg_dsn, doomed)[0] == "purged"
    await store.close()
    await broker.close()


async def test_reconciler_repairs_rows_whose_write_back_never_came(
    pg_dsn: str, redis_url: str
) -> None:
    """A worker WITHOUT a DSN stands in for one killed before its flush."""
    with psycopg.connect(pg_dsn) as conn:
        ids = pgstore.enqueue_many(conn, [JobRequest(type="noop") for _ in range(20)])
    store, broker = AsyncStore(pg_dsn), Broker(redis_url)
    m = Migrator(store, broker, reconcile_after_s=0.1)
    await m.migrate_once()
    worker = Worker(load(redis_url=redis_url, **FAST), examples.registry)
    task = asyncio.create_task(worker.run())

    async def processed() -> bool:
        return worker.processed == 20

    try:
        await eventually(processed, 20, interval_s=0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)
    assert {_job(pg_dsn, i)[0] for i in ids} == {"migrated"}
    await asyncio.sleep(0.2)
    assert await m.reconcile_once() == 20
    assert {_job(pg_dsn, i)[:2] for i in ids} == {("completed", 1)}
    assert _attempts(pg_dsn, ids[0]) == [(1, "completed", False)]
    await store.close()
    await broker.close()
