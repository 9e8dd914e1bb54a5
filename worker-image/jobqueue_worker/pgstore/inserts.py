"""Enqueueing inside the CALLER's transaction: job rows are INSERTed on the
caller's connection, so a rollback enqueues nothing and a commit is delivered by
the migrator.

Kept apart from the store the long-running processes use: this is the public API
of applications (``pgstore.enqueue``), and it never opens, commits or closes a
connection of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from pydantic import JsonValue

from jobqueue_worker import pgsql as sql
from jobqueue_worker.pgstore.errors import translate
from jobqueue_worker.request import JobRequest, build

DEFAULT_QUEUE = "default"
DEFAULT_MAX_PAYLOAD = 1_000_000


def _rows(reqs: Sequence[JobRequest], default_queue: str, max_payload: int) -> list[dict[str, Any]]:
    rows = []
    for req in reqs:
        job = build(req, default_queue, max_payload)
        rows.append(
            {
                "id": job.id,
                "queue": req.queue or default_queue,
                "type": req.type,
                "priority": job.priority,
                "envelope": job.envelope_json,
                "max_attempts": job.max_attempts or None,
                "idem": job.idempotency_key,
                "run_at": req.run_at,
                "delay_s": req.delay_s or 0.0,
            }
        )
    return rows


def enqueue(
    conn: psycopg.Connection[Any], type: str, payload: JsonValue = None, **opts: Any
) -> str:
    """Insert one job in ``conn``'s current transaction; returns its id."""
    return enqueue_many(conn, [JobRequest(type=type, payload=payload, **opts)])[0]


def enqueue_many(
    conn: psycopg.Connection[Any],
    reqs: Sequence[JobRequest],
    *,
    default_queue: str = DEFAULT_QUEUE,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> list[str]:
    """Ids in request order; a repeated idempotency key (per queue) yields the first id.

    Bad input raises ``EnqueueError`` before any SQL runs, so the caller's
    transaction stays usable.
    """
    rows = _rows(reqs, default_queue, max_payload_bytes)
    ids: list[str] = []
    try:
        with conn.cursor() as cur:
            for row in rows:  # psycopg pipelines these when the connection does
                cur.execute(sql.INSERT, row)
                got = cur.fetchone()
                if got is None:
                    cur.execute(sql.EXISTING, row)
                    got = cur.fetchone()
                ids.append(str(got[0]) if got else row["id"])
    except psycopg.Error as exc:
        raise translate(exc) from None
    return ids


async def aenqueue(
    conn: psycopg.AsyncConnection[Any], type: str, payload: JsonValue = None, **opts: Any
) -> str:
    """As :func:`enqueue`, for an async connection."""
    return (await aenqueue_many(conn, [JobRequest(type=type, payload=payload, **opts)]))[0]


async def aenqueue_many(
    conn: psycopg.AsyncConnection[Any],
    reqs: Sequence[JobRequest],
    *,
    default_queue: str = DEFAULT_QUEUE,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> list[str]:
    rows = _rows(reqs, default_queue, max_payload_bytes)
    ids: list[str] = []
    try:
        async with conn.cursor() as cur:
            for row in rows:
                await cur.execute(sql.INSERT, row)
                got = await cur.fetchone()
                if got is None:
                    await cur.execute(sql.EXISTING, row)
                    got = await cur.fetchone()
                ids.append(str(got[0]) if got else row["id"])
    except psycopg.Error as exc:
        raise translate(exc) from None
    return ids
