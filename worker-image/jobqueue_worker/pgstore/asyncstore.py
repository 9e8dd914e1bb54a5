"""The store of the long-running processes (the migrator, a worker's status
write-back): one lazily (re)connected connection, every psycopg error turned into
a one-line ``StoreError``.

Kept apart from the enqueue API and the command line because it owns a
connection for the life of a process: it reconnects after any failure and checks
the schema version on every new connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.errors

from jobqueue_worker import pgschema
from jobqueue_worker import pgsql as sql
from jobqueue_worker.pgevents import JobEvent, collapse
from jobqueue_worker.pgstore.arrays import Float8s, Int4s, Texts, register
from jobqueue_worker.pgstore.errors import (
    StoreError,
    check_dsn,
    connect_error,
    one_line,
    schema_missing,
    translate,
)


@dataclass(frozen=True)
class Claimed:
    id: str
    queue: str
    priority: int
    max_attempts: int | None
    envelope: str


# The array type of each column of ``pgevents.Batch``, in its order.
EVENT_COLUMNS = (Texts, Int4s, Texts, Texts, Float8s, Float8s, Texts, Int4s, Texts)
FAILURE_COLUMNS = (Texts, Texts, Float8s)


class AsyncStore:
    """One connection for a long-running process; reconnects after any failure."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 5.0) -> None:
        self.dsn = check_dsn(dsn)
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listen: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self, *, autocommit: bool) -> psycopg.AsyncConnection[Any]:
        try:
            # UTF-8 whatever the database's encoding: the column arrays are
            # encoded as UTF-8 by ``arrays`` (the server converts if it must).
            conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=autocommit,
                connect_timeout=int(self.connect_timeout_s),
                client_encoding="utf8",
            )
        except psycopg.Error as exc:
            raise connect_error(exc) from None
        register(conn.adapters)
        try:
            cur = await conn.execute(sql.VERSION_SQL)
            row = await cur.fetchone()
            if not autocommit:
                await conn.rollback()
        except psycopg.errors.UndefinedTable:
            await conn.close()
            raise schema_missing(None) from None
        version = row[0] if row else None
        if version is None or version < pgschema.LATEST:
            await conn.close()
            raise schema_missing(version)
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
            raise translate(exc) from None

    async def write_events(self, events: Sequence[JobEvent]) -> None:
        """One transaction of one or two statements in one round trip, whatever the batch size.

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
                await cur.execute(sql.APPLY_EVENTS, _typed(EVENT_COLUMNS, batch.events))
                if batch.failures[0]:
                    await cur.execute(sql.APPLY_FAILURES, _typed(FAILURE_COLUMNS, batch.failures))
        except psycopg.Error as exc:
            await self._forget()
            raise translate(exc) from None

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


def _typed(kinds: Sequence[type[list[Any]]], columns: Sequence[list[Any]]) -> list[list[Any]]:
    return [kind(column) for kind, column in zip(kinds, columns, strict=True)]
