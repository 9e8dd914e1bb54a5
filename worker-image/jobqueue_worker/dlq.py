"""Dead-letter queue operations: list, show, replay (one, all, by filter), purge.

Every read is a bounded page; "all" walks the DLQ in pages, which the retention
limits (count and age) keep finite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol

from jobqueue_worker.broker import Broker
from jobqueue_worker.records import DeadFilter, JobRecord

_PAGE = 500

#: replay: back to the original priority band with attempts reset (a durable
#: record goes back to ``queued`` with no attempts); purge: deleted for good (a
#: durable record is marked purged).
Action = Literal["replay", "purge"]
OnProgress = Callable[[int, int], None]  # (ids done, ids in all)


class DeadRecords(Protocol):
    """Durable job records told about a replay or a purge (``pgstore.AsyncStore``)."""

    async def replayed(self, ids: Sequence[str]) -> int: ...

    async def purged(self, ids: Sequence[str]) -> int: ...


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


async def select(
    broker: Broker, queue: str, ids: Sequence[str] | None, flt: DeadFilter | None
) -> tuple[list[str], list[str]]:
    """``(dead ids to act on, given ids that are not in the DLQ)``.

    Given ids are checked in one round trip, so a typo is reported instead of
    silently counting as zero; without ids, every dead job matching ``flt``.
    """
    if ids:
        present = await broker.dead_among(queue, ids)
        return (
            [i for i, p in zip(ids, present, strict=True) if p],
            [i for i, p in zip(ids, present, strict=True) if not p],
        )
    return await _matching_ids(broker, queue, flt or DeadFilter()), []


async def act(
    broker: Broker,
    action: Action,
    queue: str,
    ids: Sequence[str] | None = None,
    flt: DeadFilter | None = None,
    *,
    records: DeadRecords | None = None,
) -> int:
    """Replay or purge ``ids``, or without ids every dead job matching ``flt``.

    Returns how many were acted on; given ids are not checked first (:func:`select`
    does that, and says which are not in the DLQ).
    """
    chosen = list(ids) if ids else await _matching_ids(broker, queue, flt or DeadFilter())
    return await apply(broker, action, queue, chosen, records=records)


async def apply(
    broker: Broker,
    action: Action,
    queue: str,
    chosen: Sequence[str],
    on_progress: OnProgress | None = None,
    *,
    records: DeadRecords | None = None,
) -> int:
    """Replay or purge ``chosen`` a page at a time; returns how many were acted on.

    Pages keep each script call short, so a replay of 100,000 jobs never blocks
    Redis for long; ``on_progress`` hears after every page (a progress bar).
    """
    op: Callable[[str, list[str]], Awaitable[int]] = (
        broker.replay if action == "replay" else broker.purge
    )
    total = 0
    for i in range(0, len(chosen), _PAGE):
        page = list(chosen[i : i + _PAGE])
        total += await op(queue, page)
        if records is not None:
            await (records.replayed if action == "replay" else records.purged)(page)
        if on_progress is not None:
            on_progress(i + len(page), len(chosen))
    return total
