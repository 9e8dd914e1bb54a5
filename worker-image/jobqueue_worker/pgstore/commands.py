"""What the command line runs, one short synchronous connection per call:
``upgrade`` (the schema migrations), ``read_job`` and ``history`` (the records;
the web UI calls these two from a thread) and ``prune``.

Kept apart from the long-running store because nothing here outlives the call:
each function connects, checks the schema version (except ``upgrade``, which
brings it), does its work and closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import dict_row

from jobqueue_worker import pgschema
from jobqueue_worker import pgsql as sql
from jobqueue_worker.pgstore.errors import (
    StoreError,
    check_dsn,
    connect_error,
    one_line,
    schema_missing,
)


def _connect_sync(dsn: str) -> psycopg.Connection[Any]:
    check_dsn(dsn)
    try:
        return psycopg.connect(dsn, connect_timeout=5, row_factory=dict_row)
    except psycopg.Error as exc:
        raise connect_error(exc) from None


def upgrade(dsn: str) -> tuple[int | None, list[int]]:
    """Apply every missing migration; (version before, versions applied)."""
    with _connect_sync(dsn) as conn:
        try:
            conn.execute(pgschema.BOOKKEEPING)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgschema.UPGRADE_LOCK_KEY,))
            row = conn.execute(sql.VERSION_SQL).fetchone()
            before = row["v"] if row else None
            applied = []
            for version, name, ddl in pgschema.MIGRATIONS:
                if before is not None and version <= before:
                    continue
                conn.execute(ddl.encode())
                conn.execute(
                    "INSERT INTO jobqueue_schema (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(version)
            conn.commit()
        except psycopg.Error as exc:
            raise StoreError(f"upgrade failed, nothing applied: {one_line(exc)}") from None
    return before, applied


def _reader(dsn: str) -> psycopg.Connection[Any]:
    conn = _connect_sync(dsn)
    try:
        row = conn.execute(sql.VERSION_SQL).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.close()
        raise schema_missing(None) from None
    if row is None or row["v"] is None or row["v"] < pgschema.LATEST:
        conn.close()
        raise schema_missing(row["v"] if row else None)
    return conn


def read_job(dsn: str, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The job's row and every attempt, oldest first; None if there is no such row."""
    with _reader(dsn) as conn:
        job = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if job is None:
            return None
        attempts = conn.execute(
            "SELECT * FROM job_attempts WHERE job_id = %s ORDER BY attempt", (job_id,)
        ).fetchall()
    return job, attempts


def history(dsn: str, queue: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest jobs first, optionally of one queue and/or one status."""
    with _reader(dsn) as conn:
        rows: list[dict[str, Any]] = conn.execute(
            "SELECT id, queue, type, status, attempt_count, worker_id, created_at,"
            " finished_at, last_error_message FROM jobs"
            " WHERE (%(q)s::text IS NULL OR queue = %(q)s)"
            "   AND (%(s)s::text IS NULL OR status = %(s)s)"
            " ORDER BY created_at DESC LIMIT %(n)s",
            {"q": queue, "s": status, "n": limit},
        ).fetchall()
    return rows


def prune(dsn: str, statuses: Sequence[str], older_than_s: float, batch: int) -> int:
    """Delete finished rows older than the cut-off, ``batch`` rows per short transaction.

    Small batches (SKIP LOCKED) never hold many row locks for long, so writers and
    the migrator keep going while a large backlog is pruned.
    """
    total = 0
    with _reader(dsn) as conn:
        while True:
            with conn.transaction():
                row = conn.execute(sql.PRUNE, (list(statuses), older_than_s, batch)).fetchone()
            deleted = int(row["deleted"]) if row else 0
            total += deleted
            if deleted < batch:
                return total
