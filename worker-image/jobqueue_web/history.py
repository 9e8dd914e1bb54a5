"""The ONLY module of the web UI that reads PostgreSQL (through ``jobqueue_worker.pgstore``).

Optional: with a DSN the job page lists every attempt and the Jobs page can list
finished jobs, which Redis forgets after their TTL. The store's readers are
synchronous and short, so they run in a thread; a failure becomes one line on the
page (the DSN, which may hold a password, is never shown).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUSES = ("completed", "failed", "dead", "purged", "running", "retry_scheduled", "queued")


@dataclass(frozen=True)
class Attempt:
    attempt: int
    worker: str | None
    started_at: float | None
    finished_at: float | None
    outcome: str
    error: str | None
    duration_s: float | None
    traceback: str | None = None


@dataclass(frozen=True)
class HistoryRow:
    id: str
    queue: str
    type: str
    status: str
    attempts: int
    worker: str | None
    created_at: float | None
    finished_at: float | None
    error: str | None


def _ts(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


# pgstore is imported inside the functions: it needs psycopg (the `postgres` extra),
# which a web UI without a DSN does not have to install.


def _problem(exc: Exception) -> str:
    from jobqueue_worker.pgstore import one_line

    return f"PostgreSQL history unavailable: {one_line(exc)}"


async def attempts(dsn: str, job_id: str) -> tuple[list[Attempt], str | None]:
    """Every attempt of the job, oldest first, and a problem line if it could not be read."""
    from jobqueue_worker import pgstore

    try:
        found = await asyncio.to_thread(pgstore.read_job, dsn, job_id)
    except Exception as exc:  # unreachable, schema missing, refused: said on the page
        return [], _problem(exc)
    if found is None:
        return [], None
    _, rows = found
    return [
        Attempt(
            attempt=int(r["attempt"]),
            worker=r.get("worker_id"),
            started_at=_ts(r.get("started_at")),
            finished_at=_ts(r.get("finished_at")),
            outcome=str(r["outcome"]),
            error=r.get("error"),
            duration_s=None if r.get("duration_ms") is None else r["duration_ms"] / 1000.0,
            traceback=r.get("traceback"),
        )
        for r in rows
    ], None


async def recent(
    dsn: str, queue: str | None, status: str | None, limit: int
) -> tuple[list[HistoryRow], str | None]:
    from jobqueue_worker import pgstore

    try:
        rows = await asyncio.to_thread(pgstore.history, dsn, queue, status, limit)
    except Exception as exc:
        return [], _problem(exc)
    return [
        HistoryRow(
            id=str(r["id"]),
            queue=str(r["queue"]),
            type=str(r["type"]),
            status=str(r["status"]),
            attempts=int(r["attempt_count"]),
            worker=r.get("worker_id"),
            created_at=_ts(r.get("created_at")),
            finished_at=_ts(r.get("finished_at")),
            error=r.get("last_error_message"),
        )
        for r in rows
    ], None
