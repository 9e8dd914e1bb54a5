"""The migrator: moves committed job rows from PostgreSQL into the Redis queues.

Each batch is one PostgreSQL transaction: claim up to ``batch`` due ``queued``
rows with ``FOR UPDATE SKIP LOCKED`` (so replicas share the work without waiting
on each other), push them to Redis in ONE pipelined round trip, mark them
``migrated``, commit. The row id is the job id in Redis, and the enqueue script
returns the existing job for an id it already holds: a migrator killed between
the push and the commit leaves the rows ``queued``, the next batch pushes them
again, and no job is created twice.

Delayed jobs wait in PostgreSQL until due (the claim takes ``run_at <= now()``):
far-future work costs no Redis memory, and the row stays the only copy until it
is due. The loop sleeps until the earliest ``run_at``, a NOTIFY from a committed
insert, or the poll interval, whichever comes first; the poll covers a lost
notification (e.g. while the LISTEN connection was being re-established).

The reconciler repairs rows whose write-back never arrived (a worker killed
before its flush, an event dropped during a long PostgreSQL outage): rows still
open after ``reconcile_after_s`` are compared with Redis's job record, and a
job Redis knows as finished gets its finishing event applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from jobqueue_worker.broker import Broker, NewJob, is_transient
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.pgevents import JobEvent, from_redis_record
from jobqueue_worker.pgstore import AsyncStore, Claimed, StoreError
from jobqueue_worker.records import JobRecord

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0


@dataclass
class MigratorStats:
    migrated: int = 0
    batches: int = 0
    repaired: int = 0
    errors: int = 0
    #: ``clock()`` when the loop last finished a pass, a failed one included.
    last_pass: float = 0.0


class Migrator:
    def __init__(
        self,
        store: AsyncStore,
        broker: Broker,
        *,
        batch: int = 500,
        poll_interval_s: float = 1.0,
        reconcile_after_s: float = 30.0,
        reconcile_batch: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.broker = broker
        self.batch = batch
        self.poll_interval_s = poll_interval_s
        self.reconcile_after_s = reconcile_after_s
        self.reconcile_batch = reconcile_batch
        self.clock = clock
        self.stats = MigratorStats(last_pass=clock())
        self._next_reconcile = 0.0
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def push(self, rows: list[Claimed]) -> None:
        """All the batch's queues in one pipelined round trip."""
        by_queue: dict[str, list[NewJob]] = defaultdict(list)
        for r in rows:
            by_queue[r.queue].append(
                NewJob(
                    id=r.id,
                    envelope_json=r.envelope,
                    priority=r.priority,
                    max_attempts=r.max_attempts or 0,
                )
            )
        await self.broker.enqueue(by_queue)

    async def migrate_once(self) -> int:
        n = await self.store.migrate_batch(self.batch, self.push)
        if n:
            self.stats.migrated += n
            self.stats.batches += 1
        return n

    async def reconcile_once(self) -> int:
        """Apply Redis's finished records to rows still open; how many were repaired."""
        rows = await self.store.open_rows(self.reconcile_after_s, self.reconcile_batch)
        by_queue: dict[str, list[str]] = defaultdict(list)
        for job_id, queue in rows:
            by_queue[queue].append(job_id)
        events: list[JobEvent] = []
        for queue, ids in by_queue.items():
            for job_id, raw in zip(ids, await self.broker.jobs(queue, ids), strict=True):
                if not raw:
                    continue
                rec = JobRecord.from_hash(queue, job_id, raw)
                ev = from_redis_record(
                    job_id,
                    rec.status.value,
                    rec.attempt,
                    rec.worker,
                    rec.finished_at or rec.dead_at,
                    rec.started_at,
                    rec.error,
                    rec.duration_s,
                )
                if ev is not None:
                    events.append(ev)
        await self.store.write_events(events)
        self.stats.repaired += len(events)
        return len(events)

    async def _sleep_s(self) -> float:
        due = await self.store.next_due_s()
        wait = self.poll_interval_s
        if due is not None:
            wait = min(wait, max(0.0, due))
        return wait

    async def run(self) -> None:
        """Until ``stop()``; PostgreSQL or Redis outages are waited out, never fatal.

        A refusal (no schema, a wrong password) is configuration, not an outage: it
        ends the run with its one-line message.
        """
        log.info(
            "Started migrator",
            extra={"batch": self.batch, "poll_interval_s": self.poll_interval_s},
        )
        backoff = 0.1
        while not self._stopping:
            try:
                n = await self.migrate_once()
                if self.clock() >= self._next_reconcile:
                    self._next_reconcile = self.clock() + max(1.0, self.reconcile_after_s / 3)
                    repaired = await self.reconcile_once()
                    if repaired:
                        log.info("Reconciled rows from Redis", extra={"rows": repaired})
                if n < self.batch and not self._stopping:
                    await self.store.wait_for_notify(await self._sleep_s())
                backoff = 0.1
                self.stats.last_pass = self.clock()
            except ConfigError:
                raise
            except (StoreError, OSError) as exc:
                await self._failed(exc, backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self._failed(exc, backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    async def _failed(self, exc: BaseException, backoff: float) -> None:
        self.stats.errors += 1
        log.warning("Migrator batch failed, retrying", extra={"error": str(exc) or repr(exc)})
        await asyncio.sleep(backoff)
        self.stats.last_pass = self.clock()
