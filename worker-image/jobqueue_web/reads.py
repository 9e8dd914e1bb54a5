"""The ONLY module of the web UI that talks to Redis (through the worker's broker).

Every method is one bounded round trip or a documented small number of them, and
counts itself in ``round_trips`` so each response can report how many it took
(the ``Server-Timing`` header; the benchmark reads it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from jobqueue_protocol import keys
from jobqueue_protocol.stats import QueueStats
from jobqueue_web.cursor import Cursor, advance
from jobqueue_worker import dlq
from jobqueue_worker.broker import Broker, describe_redis_error
from jobqueue_worker.envelope import JobEnvelope
from jobqueue_worker.records import DeadFilter, JobRecord

# Per request (a ContextVar): the middleware sets a fresh [0] for each request.
round_trips: ContextVar[list[int] | None] = ContextVar("round_trips", default=None)

_ROW_FIELDS = ("envelope", "dead_reason", "error", "attempt")
_SCAN_BATCH = 500  # dead ids read per round trip while filtering
_SCAN_CAP = 5_000  # rows one filtered page reads at most before handing back a cursor
_QUEUE_CACHE_S = 30.0

JobState = Literal["queued", "delayed", "running"]


def _count(n: int = 1) -> None:
    counter = round_trips.get()
    if counter is not None:
        counter[0] += n


def redis_problem(exc: BaseException) -> str | None:
    """A one-line reason for a Redis failure, else None (not ours to describe)."""
    found = describe_redis_error(exc)
    return None if found is None else found[1]


@dataclass(frozen=True)
class DeadRow:
    id: str
    dead_at: float  # epoch seconds
    type: str | None
    reason: str | None
    error: str | None
    attempt: int


@dataclass(frozen=True)
class DeadPage:
    rows: list[DeadRow]
    next_cursor: Cursor | None  # None: the end
    scanned: int


def _type_of(envelope: str | None) -> str | None:
    """The type as the worker's DLQ filter reads it, so a page and its action agree."""
    if not envelope:
        return None
    try:
        return JobEnvelope.from_json(envelope).type
    except ValueError:
        return None


class Reads:
    def __init__(self, redis_url: str, queues: Sequence[str] = ()) -> None:
        self.broker = Broker(redis_url)
        self._fixed = list(queues)
        self._cached: tuple[float, list[str]] = (0.0, [])

    async def close(self) -> None:
        await self.broker.close()

    async def queues(self, *, rescan: bool = False) -> list[str]:
        """The configured queues, else every queue Redis knows.

        Only the sampler passes ``rescan`` (every 30 s at most): finding queues is a
        SCAN over the keyspace, which a page request must not pay for. A page scans
        only before the first sample has run.
        """
        if self._fixed:
            return self._fixed
        at, names = self._cached
        stale = time.monotonic() - at > _QUEUE_CACHE_S
        if not names or (rescan and stale):
            _count()
            names = await self.broker.known_queues()
            self._cached = (time.monotonic(), names)
        return names

    async def stats(self, queues: Sequence[str], heartbeat_ttl_s: float) -> dict[str, QueueStats]:
        _count()
        return await self.broker.stats(queues, heartbeat_ttl_s=heartbeat_ttl_s)

    async def job(self, job_id: str, queues: Sequence[str]) -> JobRecord | None:
        try:
            keys.job_key(queues[0] if queues else "default", job_id)
        except ValueError:
            return None
        _count()
        try:
            queue, raw = await self.broker.find_job(queues, job_id)
        except KeyError:
            return None
        return JobRecord.from_hash(queue, job_id, raw)

    async def jobs_in_state(
        self, queue: str, state: JobState | Literal["dead"], limit: int
    ) -> list[JobRecord]:
        _count(2)
        if state == "dead":
            ids = [i for i, _ in await self.broker.dead_ids(queue, 0, limit)]
        else:
            ids = await self.broker.ids_by_state(queue, state, limit)
        raws = await self.broker.jobs(queue, ids)
        return [JobRecord.from_hash(queue, i, r) for i, r in zip(ids, raws, strict=True) if r]

    async def dead_page(
        self,
        queue: str,
        cursor: Cursor,
        limit: int,
        flt: DeadFilter,
    ) -> DeadPage:
        """``limit`` dead jobs matching ``flt`` from ``cursor``; unfiltered: 2 round trips.

        A filter reads batches until the page is full or ``_SCAN_CAP`` rows were
        read, then returns a cursor to go on from, so no request walks the whole set.
        """
        rows: list[DeadRow] = []
        scanned = 0
        filtering = flt.type is not None or flt.reason is not None
        batch = _SCAN_BATCH if filtering else limit
        while len(rows) < limit and scanned < _SCAN_CAP:
            _count(2)
            ids = await self.broker.dead_page(queue, cursor.max_score_ms, cursor.skip, batch)
            if not ids:
                return DeadPage(rows, None, scanned)
            fields = await self.broker.job_fields(queue, [i for i, _ in ids], _ROW_FIELDS)
            consumed: list[float] = []
            for (job_id, score), raw in zip(ids, fields, strict=True):
                consumed.append(score)
                scanned += 1
                row = DeadRow(
                    id=job_id,
                    dead_at=score / 1000.0,
                    type=_type_of(raw.get("envelope")),
                    reason=raw.get("dead_reason") or None,
                    error=raw.get("error") or None,
                    attempt=int(raw.get("attempt") or 0),
                )
                if (flt.type is None or row.type == flt.type) and (
                    flt.reason is None or row.reason == flt.reason
                ):
                    rows.append(row)
                    if len(rows) == limit:
                        break
            cursor = advance(cursor, consumed)
            if len(ids) < batch and len(rows) < limit:
                return DeadPage(rows, None, scanned)
        return DeadPage(rows, cursor, scanned)

    async def dead_select(
        self, queue: str, ids: Sequence[str], flt: DeadFilter
    ) -> tuple[list[str], list[str]]:
        """(dead ids to act on, given ids no longer dead): the ids, else all matching ``flt``."""
        _count()
        return await dlq.select(self.broker, queue, list(ids) or None, flt)

    async def dead_apply(self, queue: str, action: dlq.Action, ids: Sequence[str]) -> int:
        _count(max(1, -(-len(ids) // 500)))
        return await dlq.apply(self.broker, action, queue, ids)
