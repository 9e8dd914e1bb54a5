"""Transactional enqueue and the migrator, against real PostgreSQL and real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from jobqueue_devkit.waiting import eventually
from jobqueue_protocol import keys
from jobqueue_worker import pgstore
from jobqueue_worker.broker import Broker
from jobqueue_worker.envelope import Priority
from jobqueue_worker.migrator import Migrator
from jobqueue_worker.pgstore import AsyncStore, Claimed
from jobqueue_worker.producer import JobRequest, Producer

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def _enqueued_in_redis(redis_url: str, queue: str = "default") -> int:
    r = redis.Redis.from_url(redis_url)
    try:
        return int(r.hget(keys.counters_key(queue), "enqueued") or 0)
    finally:
        r.close()


def _row(dsn: str, job_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT status, attempt_count, worker_id FROM jobs WHERE id = %s", (job_id,)
        ).fetchone()


def _ledger(path: Path) -> list[str]:
    return path.read_text().split("\n") if path.exists() else []


def _declined_order(conn: psycopg.Connection[Any], ledger: Path, seen: list[str]) -> None:
    """The business write and the enqueue share a transaction that fails."""
    with conn.transaction():
        conn.execute("INSERT INTO orders VALUES ('o1')")
        seen.append(pgstore.enqueue(conn, "record", {"ledger": str(ledger)}))
        raise RuntimeError("payment declined")


async def test_rollback_enqueues_nothing_and_commit_runs_exactly_once(  # noqa: PLR0917
    pg_dsn: str,
    redis_url: str,
    spawn: Any,
    worker_env: Callable[..., dict[str, Any]],
    migrator_env: Callable[[str, str], dict[str, Any]],
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    migrator = spawn("migrator", "--poll-interval-s", "0.2", env=migrator_env(redis_url, pg_dsn))
    worker = spawn("worker", env=worker_env(redis_url, pg_dsn, "w1"))
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE orders (id text PRIMARY KEY)")
        conn.commit()
        seen: list[str] = []
        with pytest.raises(RuntimeError, match="payment declined"):
            _declined_order(conn, ledger, seen)
        rolled_back = seen[0]
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES ('o2')")
            committed = pgstore.enqueue(conn, "record", {"ledger": str(ledger)})

    async def completed() -> bool:
        row = _row(pg_dsn, committed)
        return row is not None and row[0] == "completed"

    await eventually(completed, 30, interval_s=0.1)
    await asyncio.sleep(1.0)  # room for a duplicate run to show up, if there were one
    assert worker.stop() == 0, worker.output()[-3000:]
    assert migrator.stop() == 0, migrator.output()[-3000:]

    runs = [line.split()[0] for line in _ledger(ledger) if line.strip()]
    assert runs == [committed]
    assert _row(pg_dsn, rolled_back) is None
    async with Producer(redis_url) as p:
        assert await p.status(rolled_back) is None
        rec = await p.status(committed)
        assert rec is not None
        assert rec.status.value == "completed"
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT id FROM orders").fetchall() == [("o2",)]
        attempts = conn.execute(
            "SELECT attempt, outcome, worker_id, finished_at IS NOT NULL FROM job_attempts"
            " WHERE job_id = %s",
            (committed,),
        ).fetchall()
    assert attempts == [(1, "completed", f"w1:{worker.proc.pid}", True)]


async def _failing_async_tx(conn: psycopg.AsyncConnection[Any]) -> None:
    async with conn.transaction():
        await pgstore.aenqueue(conn, "noop", {"n": 2})
        _ = 1 / 0


async def test_async_enqueue_rolls_back_and_commits(pg_dsn: str, redis_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        async with conn.transaction():
            kept = await pgstore.aenqueue(conn, "noop", {"n": 1}, priority="high")
        with pytest.raises(ZeroDivisionError):
            await _failing_async_tx(conn)
        async with conn.transaction():
            ids = await pgstore.aenqueue_many(
                conn,
                [
                    JobRequest(type="noop", idempotency_key="order-7"),
                    JobRequest(type="noop", idempotency_key="order-7"),
                ],
            )
    assert ids[0] == ids[1]
    store, broker = AsyncStore(pg_dsn), Broker(redis_url)
    try:
        moved = await Migrator(store, broker).migrate_once()
    finally:
        await store.close()
        await broker.close()
    assert moved == 2  # `kept` and the one keyed job; the rolled-back row never existed
    async with Producer(redis_url) as p:
        rec = await p.status(kept)
        assert rec is not None
        assert rec.priority == Priority.HIGH
    assert _row(pg_dsn, kept) == ("migrated", 0, None)


async def test_delayed_jobs_wait_in_postgres_until_due(pg_dsn: str, redis_url: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        job_id = pgstore.enqueue(conn, "noop", delay_s=1.5)
    store, broker = AsyncStore(pg_dsn), Broker(redis_url)
    m = Migrator(store, broker)
    try:
        assert await m.migrate_once() == 0
        assert _enqueued_in_redis(redis_url) == 0
        due = await store.next_due_s()
        assert due is not None
        assert 0 < due <= 1.5
        await asyncio.sleep(due + 0.1)
        assert await m.migrate_once() == 1
    finally:
        await store.close()
        await broker.close()
    assert _row(pg_dsn, job_id) == ("migrated", 0, None)


async def test_migrator_killed_between_push_and_commit_creates_no_duplicate(
    pg_dsn: str, redis_url: str
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        ids = pgstore.enqueue_many(conn, [JobRequest(type="noop") for _ in range(50)])
    store, broker = AsyncStore(pg_dsn), Broker(redis_url)
    m = Migrator(store, broker, batch=100)

    async def push_then_die(rows: list[Claimed]) -> None:
        await m.push(rows)
        raise ConnectionError("killed after the push, before the commit")

    try:
        with pytest.raises(ConnectionError):
            await store.migrate_batch(100, push_then_die)
        assert _row(pg_dsn, ids[0]) == ("queued", 0, None)
        assert _enqueued_in_redis(redis_url) == 50
        assert await m.migrate_once() == 50
    finally:
        await store.close()
        await broker.close()
    assert _enqueued_in_redis(redis_url) == 50  # the second push created nothing
    r = redis.Redis.from_url(redis_url)
    try:
        assert sum(r.zcard(k) for k in keys.ready_keys("default")) == 50
    finally:
        r.close()


async def test_several_migrators_share_the_rows_without_duplicates(
    pg_dsn: str, redis_url: str
) -> None:
    n = 3000
    with psycopg.connect(pg_dsn) as conn:
        pgstore.enqueue_many(conn, [JobRequest(type="noop", queue="q2") for _ in range(n)])
    pairs = [(AsyncStore(pg_dsn), Broker(redis_url)) for _ in range(3)]
    migrators = [Migrator(s, b, batch=100) for s, b in pairs]

    async def drain(m: Migrator) -> None:
        while await m.migrate_once():
            pass

    try:
        await asyncio.gather(*(drain(m) for m in migrators))
    finally:
        for s, b in pairs:
            await s.close()
            await b.close()
    shares = [m.stats.migrated for m in migrators]
    assert sum(shares) == n, shares
    assert sum(1 for s in shares if s > 0) >= 2, shares  # SKIP LOCKED let them overlap
    assert _enqueued_in_redis(redis_url, "q2") == n


async def test_the_migrator_wakes_on_commit_and_at_the_due_time_not_at_the_poll(
    pg_dsn: str, redis_url: str
) -> None:
    """With a 10-minute poll, only NOTIFY and the due-time timer can move these rows."""
    store, broker = AsyncStore(pg_dsn), Broker(redis_url)
    m = Migrator(store, broker, poll_interval_s=600.0, reconcile_after_s=600.0)
    task = asyncio.create_task(m.run())
    try:
        await asyncio.sleep(0.5)  # the loop is now waiting on LISTEN
        with psycopg.connect(pg_dsn) as conn:
            now_id = pgstore.enqueue(conn, "noop")

        async def migrated(job_id: str) -> bool:
            row = _row(pg_dsn, job_id)
            return row is not None and row[0] == "migrated"

        await eventually(lambda: migrated(now_id), 20, interval_s=0.05)
        with psycopg.connect(pg_dsn) as conn:
            later_id = pgstore.enqueue(conn, "noop", delay_s=1.0)
        # The insert's NOTIFY finds nothing due; the next wake is the due time.
        await eventually(lambda: migrated(later_id), 20, interval_s=0.05)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        await broker.close()
    assert m.stats.migrated == 2
