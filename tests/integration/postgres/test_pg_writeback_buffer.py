"""The write-back buffer: bounded during an outage, never blocking, landing after."""

from __future__ import annotations

import psycopg
import pytest

from jobqueue_devkit.ports import free_port
from jobqueue_worker import metrics, pgstore
from jobqueue_worker.broker import Fetched, FinishOp
from jobqueue_worker.pgstore import AsyncStore
from jobqueue_worker.producer import JobRequest
from jobqueue_worker.writeback import PgWriteback

pytestmark = [pytest.mark.postgres]


def _run(wb: PgWriteback, n: int) -> None:
    for i in range(n):
        f = Fetched("default", f"j{i}", "{}", 1, 1, "t")
        wb.started(f, 1.0)
        wb.finished(FinishOp("default", f"j{i}", "t", "complete"), True)


def _nobody_listening(dsn: str) -> str:
    """The same DSN on a loopback port where no server listens: a real refusal."""
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    return dsn.replace(host_port, f"127.0.0.1:{free_port()}")


async def test_an_outage_keeps_events_and_they_land_after(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        pgstore.enqueue_many(conn, [JobRequest(type="noop", id=f"j{i}") for i in range(20)])
    wb = PgWriteback(AsyncStore(_nobody_listening(pg_dsn)), "w", flush_events=10)
    errors_before = metrics.PG_WRITE_ERRORS._value.get()
    _run(wb, 20)
    assert await wb.flush_once() is False
    # one event per job: a job that ended before the flush needs no running event
    assert len(wb.buffer) == 20
    assert metrics.PG_WRITE_ERRORS._value.get() == errors_before + 1
    wb.store = AsyncStore(pg_dsn)  # PostgreSQL is back
    while wb.buffer:
        assert await wb.flush_once() is True
    await wb.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
    assert rows == [("completed", 20)]


async def test_a_full_buffer_drops_the_oldest_and_counts_them(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    wb = PgWriteback(AsyncStore(_nobody_listening(pg_dsn)), "w", buffer_max=100)
    before = metrics.PG_EVENTS_DROPPED._value.get()
    _run(wb, 120)  # 120 events into 100 places
    assert len(wb.buffer) == 100
    assert metrics.PG_EVENTS_DROPPED._value.get() - before == 20
    assert wb.buffer[0].job_id == "j20"
    errors = [r for r in caplog.records if "buffer full" in r.getMessage()]
    assert len(errors) == 1  # one log per episode, not one per event
    assert await wb.flush_once() is False
    await wb.close()


async def test_a_refused_ack_sends_no_finish(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        pgstore.enqueue(conn, "noop", id="x")
    wb = PgWriteback(AsyncStore(pg_dsn), "w")
    wb.started(Fetched("default", "x", "{}", 2, 1, "t"), 1.0)
    wb.finished(FinishOp("default", "x", "t", "complete"), False)  # lease was lost
    assert await wb.flush_once() is True
    await wb.close()
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT status, attempt_count FROM jobs WHERE id = 'x'").fetchone()
    assert row == ("running", 2)


def _rows(dsn: str) -> dict[str, tuple[str, float | None]]:
    with psycopg.connect(dsn) as conn:
        got = conn.execute(
            "SELECT id, status, extract(epoch FROM started_at)::float8 FROM jobs"
        ).fetchall()
    return {job_id: (status, started) for job_id, status, started in got}


async def test_a_job_still_running_at_its_second_flush_is_reported_running_with_its_start(
    pg_dsn: str,
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        pgstore.enqueue_many(conn, [JobRequest(type="noop", id=i) for i in ("slow", "fast")])
    wb = PgWriteback(AsyncStore(pg_dsn), "w")
    for job_id in ("slow", "fast"):
        wb.started(Fetched("default", job_id, "{}", 1, 1, "t"), 1_000_000.0)
    wb.finished(FinishOp("default", "fast", "t", "complete"), True)
    assert await wb.flush_once() is True
    rows = _rows(pg_dsn)
    assert rows["fast"] == ("completed", 1_000_000.0)  # its start came with its finish
    assert rows["slow"] == ("queued", None)  # started since the last flush: not yet
    assert await wb.flush_once() is True
    assert _rows(pg_dsn)["slow"] == ("running", 1_000_000.0)
    wb.finished(FinishOp("default", "slow", "t", "complete"), True)
    assert await wb.flush_once() is True  # the running event is not sent twice
    assert not wb.buffer
    await wb.close()


async def test_close_reports_a_start_no_flush_has_reported_yet(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        pgstore.enqueue(conn, "noop", id="late")
    wb = PgWriteback(AsyncStore(pg_dsn), "w")
    wb.started(Fetched("default", "late", "{}", 1, 1, "t"), 2_000_000.0)
    await wb.close()
    assert _rows(pg_dsn)["late"] == ("running", 2_000_000.0)


async def test_a_batch_that_cannot_be_sent_is_dropped_and_later_ones_land(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A value the encoder refuses must not end the write-back or block later events.

    A lone surrogate in a job id cannot be UTF-8 (ids from the producer are
    validated; this one is made up to get a batch that fails before PostgreSQL).
    """
    with psycopg.connect(pg_dsn) as conn:
        pgstore.enqueue_many(conn, [JobRequest(type="noop", id=f"j{i}") for i in range(3)])
    wb = PgWriteback(AsyncStore(pg_dsn), "w")
    dropped_before = metrics.PG_EVENTS_DROPPED._value.get()
    bad = Fetched("default", "bad\udcff", "{}", 1, 1, "t")
    wb.started(bad, 1.0)
    wb.finished(FinishOp("default", "bad\udcff", "t", "complete"), True)
    _run(wb, 1)
    assert await wb.flush_once() is False
    assert not wb.buffer  # the batch went, rather than failing again on every flush
    assert metrics.PG_EVENTS_DROPPED._value.get() - dropped_before == 2
    assert any("cannot be sent" in r.getMessage() for r in caplog.records)
    _run(wb, 3)
    assert await wb.flush_once() is True
    await wb.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
    assert rows == [("completed", 3)]
