"""Dead-letter queue operations: list, show, replay (one, all, by filter), purge.

Every read is a bounded page; "all" walks the DLQ in pages, which the retention
limits (count and age) keep finite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from jobqueue_worker.broker import Broker
from jobqueue_worker.records import JobRecord

_PAGE = 500


class DeadRecords(Protocol):
    """Durable job records told about a replay or a purge (``pgstore.AsyncStore``)."""

    async def replayed(self, ids: Sequence[str]) -> int: ...

    async def purged(self, ids: Sequence[str]) -> int: ...


@dataclass(frozen=True)
class DeadFilter:
    type: str | None = None
    reason: str | None = None

    def matches(self, rec: JobRecord) -> bool:
        return (self.type is None or rec.type == self.type) and (
            self.reason is None or rec.dead_reason == self.reason
        )


async def list_dead(
    broker: Broker, queue: str, offset: int = 0, limit: int = 50
) -> list[JobRecord]:
    """Newest first."""
    rows = await broker.dead_ids(queue, offset, limit)
    raws = await broker.jobs(queue, [i for i, _ in rows])
    return [
        JobRecord.from_hash(queue, i, raw) for (i, _), raw in zip(rows, raws, strict=True) if raw
    ]


async def show(broker: Broker, queue: str, job_id: str) -> JobRecord | None:
    raw = await broker.job(queue, job_id)
    return JobRecord.from_hash(queue, job_id, raw) if raw else None


async def _matching_ids(broker: Broker, queue: str, flt: DeadFilter) -> list[str]:
    ids: list[str] = []
    offset = 0
    while True:
        rows = await broker.dead_ids(queue, offset, _PAGE)
        if not rows:
            return ids
        page = [i for i, _ in rows]
        raws = await broker.jobs(queue, page)
        for job_id, raw in zip(page, raws, strict=True):
            if not raw:
                if flt.type is None and flt.reason is None:
                    ids.append(job_id)  # its record expired: only the id is left
                continue
            if flt.matches(JobRecord.from_hash(queue, job_id, raw)):
                ids.append(job_id)
        offset += _PAGE


async def replay(
    broker: Broker,
    queue: str,
    ids: Sequence[str] | None = None,
    flt: DeadFilter | None = None,
    records: DeadRecords | None = None,
) -> int:
    """Back to the original priority band with attempts reset; returns how many moved.

    With ``records``, each replayed job's row goes back to ``queued`` with no attempts.
    """
    return await _in_pages(
        broker, queue, ids, flt, broker.replay, records.replayed if records else None
    )


async def purge(
    broker: Broker,
    queue: str,
    ids: Sequence[str] | None = None,
    flt: DeadFilter | None = None,
    records: DeadRecords | None = None,
) -> int:
    """Delete dead-lettered jobs for good; returns how many went (rows are marked purged)."""
    return await _in_pages(
        broker, queue, ids, flt, broker.purge, records.purged if records else None
    )


async def _in_pages(  # noqa: PLR0917 - private, called from two places
    broker: Broker,
    queue: str,
    ids: Sequence[str] | None,
    flt: DeadFilter | None,
    op: Callable[[str, list[str]], Awaitable[int]],
    then: Callable[[list[str]], Awaitable[int]] | None = None,
) -> int:
    """The given ids, or every dead job matching the filter, fed to `op` a page at a time.

    Pages keep each script call short, so a replay of 100,000 jobs never blocks
    Redis for long.
    """
    chosen = list(ids) if ids else await _matching_ids(broker, queue, flt or DeadFilter())
    total = 0
    for i in range(0, len(chosen), _PAGE):
        page = chosen[i : i + _PAGE]
        total += await op(queue, page)
        if then is not None:
            await then(page)
    return total
