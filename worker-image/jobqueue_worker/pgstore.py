"""The ONLY module of the worker side that talks to PostgreSQL (psycopg 3).

- ``enqueue`` / ``aenqueue`` (and ``*_many``) insert job rows inside the CALLER's
  transaction: a rollback enqueues nothing, a commit is delivered by the migrator.
- ``AsyncStore`` serves the long-running processes (the migrator, a worker's
  status write-back): one lazily (re)connected connection, every psycopg error
  turned into a one-line ``StoreError``.
- ``upgrade``, ``read_job``, ``history`` and ``prune`` serve the command line.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from pydantic import JsonValue

from jobqueue_worker import pgschema
from jobqueue_worker import pgsql as sql
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.pgevents import JobEvent, collapse
from jobqueue_worker.producer import JobRequest, build

DEFAULT_QUEUE = "default"
DEFAULT_MAX_PAYLOAD = 1_000_000


class StoreError(Exception):
    """PostgreSQL failed or refused; the message is one line and holds no password."""


class SchemaMissingError(StoreError, ConfigError):
    """The database has no jobqueue schema, or an older one."""


class AccessRefusedError(StoreError, ConfigError):
    """The server answered and said no (password, role, database): retrying will not help."""


# SQLSTATE classes of a refusal, as opposed to an outage: 28 (invalid authorization)
# and 3D (invalid catalog name: no such database).
_REFUSALS = ("28", "3D")


def _connect_error(exc: psycopg.Error) -> StoreError:
    message = f"cannot connect to PostgreSQL: {one_line(exc)}"
    sqlstate = exc.sqlstate or ""
    if sqlstate.startswith(_REFUSALS) or "password authentication failed" in message:
        return AccessRefusedError(message)
    return StoreError(message)


def one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc).strip().splitlines()[0] if str(exc).strip() else "")


def check_dsn(dsn: str) -> str:
    """The DSN itself, or a ``ConfigError`` saying why it does not parse."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(f"JQW_POSTGRES_DSN does not parse: {one_line(exc)}") from None
    return dsn


def _schema_missing(found: int | None) -> SchemaMissingError:
    have = "no jobqueue schema" if found is None else f"jobqueue schema version {found}"
    return SchemaMissingError(
        f"PostgreSQL database has {have}, this version needs {pgschema.LATEST}:"
        " run `jobqueue db upgrade`"
    )


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


def _translate(exc: psycopg.Error) -> Exception:
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return _schema_missing(None)
    return StoreError(f"PostgreSQL: {one_line(exc)}")


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
        raise _translate(exc) from None
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
        raise _translate(exc) from None
    return ids


@dataclass(frozen=True)
class Claimed:
    id: str
    queue: str
    priority: int
    max_attempts: int | None
    envelope: str


class AsyncStore:
    """One connection for a long-running process; reconnects after any failure."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 5.0) -> None:
        self.dsn = check_dsn(dsn)
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listen: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self, *, autocommit: bool) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=autocommit, connect_timeout=int(self.connect_timeout_s)
            )
        except psycopg.Error as exc:
            raise _connect_error(exc) from None
        try:
            cur = await conn.execute(sql.VERSION_SQL)
            row = await cur.fetchone()
            if not autocommit:
                await conn.rollback()
        except psycopg.errors.UndefinedTable:
            await conn.close()
            raise _schema_missing(None) from None
        version = row[0] if row else None
        if version is None or version < pgschema.LATEST:
            await conn.close()
            raise _schema_missing(version)
        return conn

    async def check(self) -> None:
        """Connect now: a bad DSN, password or schema fails at start, not later."""
        await self._conn_or_new()

    async def _conn_or_new(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect(autocommit=False)
        return self._conn

    async def _forget(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await self._forget()
        if self._listen is not None:
            with contextlib.suppress(psycopg.Error):
                await self._listen.close()
            self._listen = None

    async def _in_tx(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]]) -> Any:
        conn = await self._conn_or_new()
        try:
            async with conn.transaction():
                return await work(conn)
        except psycopg.Error as exc:
            await self._forget()
            raise _translate(exc) from None

    async def write_events(self, events: Sequence[JobEvent]) -> None:
        """One transaction of three statements in one round trip, whatever the batch size.

        The pipeline wraps the transaction, so BEGIN, the statements and COMMIT
        go out together and the worker waits for PostgreSQL once per batch.
        """
        if not events:
            return
        batch = collapse(events)
        conn = await self._conn_or_new()
        try:
            async with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                # No wait for the WAL flush: a server crash may lose the last
                # moments of status writes, which are at-least-once anyway and
                # repaired from Redis by the reconciler.
                await cur.execute("SET LOCAL synchronous_commit = off")
                await cur.execute(sql.APPLY_JOBS, batch.jobs)
                if batch.failures[0]:
                    await cur.execute(sql.APPLY_FAILURES, batch.failures)
                await cur.execute(sql.APPLY_ATTEMPTS, batch.attempts)
        except psycopg.Error as exc:
            await self._forget()
            raise _translate(exc) from None

    async def migrate_batch(
        self, limit: int, push: Callable[[list[Claimed]], Awaitable[None]]
    ) -> int:
        """Claim due queued rows, ``push`` them (to Redis), mark them migrated, commit.

        Killed between the push and the commit, the rows stay queued and are pushed
        again; the push is idempotent by job id, so no job runs twice for it.
        """

        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(sql.CLAIM, (limit,))
            claimed = [Claimed(*r) for r in await cur.fetchall()]
            if claimed:
                await push(claimed)
                await conn.execute(sql.MARK_MIGRATED, ([c.id for c in claimed],))
            return len(claimed)

        return int(await self._in_tx(work))

    async def next_due_s(self) -> float | None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> float | None:
            row = await (await conn.execute(sql.NEXT_DUE)).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        result: float | None = await self._in_tx(work)
        return result

    async def wait_for_notify(self, timeout_s: float) -> bool:
        """True if an insert committed (NOTIFY) within ``timeout_s``."""
        try:
            if self._listen is None or self._listen.closed:
                self._listen = await self._connect(autocommit=True)
                await self._listen.execute(f"LISTEN {pgschema.NOTIFY_CHANNEL}")
            async for _ in self._listen.notifies(timeout=max(0.01, timeout_s), stop_after=1):
                return True
        except psycopg.Error as exc:
            self._listen = None
            raise StoreError(f"PostgreSQL LISTEN: {one_line(exc)}") from None
        return False

    async def open_rows(self, older_than_s: float, limit: int) -> list[tuple[str, str]]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[tuple[str, str]]:
            cur = await conn.execute(sql.OPEN_ROWS, (older_than_s, limit))
            return [(str(i), str(q)) for i, q in await cur.fetchall()]

        result: list[tuple[str, str]] = await self._in_tx(work)
        return result

    async def replayed(self, ids: Sequence[str]) -> int:
        """Rows of jobs replayed from the DLQ go back to queued with no attempts."""
        return await self._update_ids(sql.REPLAYED, ids)

    async def purged(self, ids: Sequence[str]) -> int:
        return await self._update_ids(sql.PURGED, ids)

    async def _update_ids(self, sql: str, ids: Sequence[str]) -> int:
        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(sql, (list(ids),))
            return cur.rowcount

        return int(await self._in_tx(work)) if ids else 0


# -------------------------------------------------------------- command line
def _connect_sync(dsn: str) -> psycopg.Connection[Any]:
    check_dsn(dsn)
    try:
        return psycopg.connect(dsn, connect_timeout=5, row_factory=dict_row)
    except psycopg.Error as exc:
        raise _connect_error(exc) from None


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
        raise _schema_missing(None) from None
    if row is None or row["v"] is None or row["v"] < pgschema.LATEST:
        conn.close()
        raise _schema_missing(row["v"] if row else None)
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
                cur = conn.execute(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
                    " WHERE status = ANY(%s) AND updated_at < now() - make_interval(secs => %s)"
                    " LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (list(statuses), older_than_s, batch),
                )
            total += cur.rowcount
            if cur.rowcount < batch:
                return total
