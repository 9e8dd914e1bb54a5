"""A worker's job status, written back to PostgreSQL in batches off the hot path.

The dispatcher only appends to an in-memory buffer (``started``/``finished``);
``run`` writes the buffer out every ``flush_interval_s`` or as soon as
``flush_events`` are waiting, one transaction per batch. Writes are at least
once and idempotent (see ``pgevents``), so a batch that failed half-way is simply
sent again.

During a PostgreSQL outage events wait in the buffer, bounded by ``buffer_max``;
past it the oldest are dropped (a metric and an error log say so). Job
processing never waits for PostgreSQL. What a dropped or unsent event would
have said about a FINISHED job is not lost: Redis holds the job's record, and
the migrator's reconciler copies it into the row.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from typing import TYPE_CHECKING

from jobqueue_worker import metrics
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.pgevents import FINISH_STATUS, JobEvent
from jobqueue_worker.seams import JobEvents, NoEvents

if TYPE_CHECKING:
    from jobqueue_worker.broker import Fetched, FinishOp
    from jobqueue_worker.pgstore import AsyncStore
    from jobqueue_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
CLOSE_TIMEOUT_S = 5.0


def events_for(settings: WorkerSettings, worker_id: str) -> JobEvents:
    """The sink the settings ask for: PostgreSQL with a DSN, else none."""
    if not settings.postgres_dsn:
        return NoEvents()
    try:
        from jobqueue_worker.pgstore import AsyncStore
    except ImportError:
        raise ConfigError(
            "JQW_POSTGRES_DSN is set but psycopg is not installed:"
            " pip install 'jobqueue-worker[postgres]'"
        ) from None
    return PgWriteback(
        AsyncStore(settings.postgres_dsn),
        worker_id,
        flush_interval_s=settings.postgres_flush_interval_s,
        flush_events=settings.postgres_flush_events,
        buffer_max=settings.postgres_buffer_max,
    )


class PgWriteback:
    def __init__(
        self,
        store: AsyncStore,
        worker_id: str,
        *,
        flush_interval_s: float = 0.1,
        flush_events: int = 500,
        buffer_max: int = 100_000,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.flush_interval_s = flush_interval_s
        self.flush_events = flush_events
        self.buffer_max = buffer_max
        self.buffer: collections.deque[JobEvent] = collections.deque()
        # job id → (attempt, start time) of the attempts this worker is running
        self._running: dict[str, tuple[int, float]] = {}
        # ... and those whose start no event has reported yet: started since the
        # last flush (young), and before it (due at the next flush)
        self._young: set[str] = set()
        self._unreported: set[str] = set()
        self._full = asyncio.Event()
        self._dropped_in_flight = 0
        self._overflowing = False
        self._failing_since: float | None = None
        self._backoff_s = flush_interval_s

    # -- the hot path: no event for a start ------------------------------------
    # A start is only remembered: a job that ends soon needs no ``running`` event
    # (its finish carries the start time). One still running at the second flush
    # after its start is reported then (``_report_running``), so a row says
    # ``running`` at most two flush intervals late. Waiting one flush more than
    # needed spares the events of the jobs in flight at any flush, which mostly
    # end a moment later: about one event in ten at full speed, each then
    # overwritten, at twice the PostgreSQL cost of an event that lands once.
    def started(self, fetched: Fetched, at: float) -> None:
        self._running[fetched.id] = (fetched.attempt, at)
        self._young.add(fetched.id)

    def finished(self, op: FinishOp, acked: bool) -> None:
        attempt, started_at = self._running.pop(op.id, (0, 0.0))
        unreported = op.id in self._young or op.id in self._unreported
        if unreported:
            self._young.discard(op.id)
            self._unreported.discard(op.id)
        if not acked or attempt == 0:
            # Lease lost: the worker that holds the job now reports its end; the
            # start of this attempt still happened, as the row must say.
            if unreported and attempt:
                self._add(
                    JobEvent(op.id, attempt, "running", self.worker_id, started_at, started_at)
                )
            return
        status = FINISH_STATUS[op.op]
        self._add(
            JobEvent(
                op.id,
                attempt,
                status,
                self.worker_id,
                time.time(),
                started_at,
                error=op.error,
                duration_ms=op.duration_ms,
                traceback=op.traceback,
            )
        )

    def _add(self, event: JobEvent) -> None:
        if len(self.buffer) >= self.buffer_max:
            self.buffer.popleft()
            self._dropped_in_flight += 1
            metrics.PG_EVENTS_DROPPED.inc()
            if not self._overflowing:
                self._overflowing = True
                log.error(
                    "PostgreSQL write-back buffer full: dropping the oldest status events"
                    " (jobs keep running; the migrator's reconciler repairs finished jobs)",
                    extra={"buffer_max": self.buffer_max},
                )
        self.buffer.append(event)
        if len(self.buffer) >= self.flush_events:
            self._full.set()

    # -- background ------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._backoff_s)
                self._full.clear()
                await self.flush_once()
        finally:
            metrics.PG_EVENTS_BUFFERED.set(len(self.buffer))

    async def flush_once(self, *, every_start: bool = False) -> bool:
        """Write up to 4 × ``flush_events`` buffered events; False if PostgreSQL failed.

        ``every_start`` reports the young starts too (at close, no later flush comes).
        """
        from jobqueue_worker.pgstore import StoreError

        self._report_running(every_start=every_start)
        metrics.PG_EVENTS_BUFFERED.set(len(self.buffer))
        if not self.buffer:
            return True
        batch = list(itertools.islice(self.buffer, self.flush_events * 4))
        self._dropped_in_flight = 0
        try:
            await self.store.write_events(batch)
        except StoreError as exc:
            metrics.PG_WRITE_ERRORS.inc()
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning(
                    "PostgreSQL write-back failing: status events wait in memory",
                    extra={"error": str(exc), "buffered": len(self.buffer)},
                )
            self._backoff_s = min(MAX_BACKOFF_S, self._backoff_s * 2)
            return False
        except Exception:
            # Not PostgreSQL failing: the batch itself cannot be sent (a value the
            # encoder refuses). Sent again it would fail the same way and hold up
            # every later event, so it goes; the migrator's reconciler repairs the
            # finished jobs among it from Redis.
            log.exception(
                "PostgreSQL write-back: a batch that cannot be sent was dropped",
                extra={"events": len(batch)},
            )
            metrics.PG_EVENTS_DROPPED.inc(len(batch))
            self._forget_sent(batch)
            return False
        self._forget_sent(batch)
        metrics.PG_EVENTS_WRITTEN.inc(len(batch))
        if self._failing_since is not None:
            log.info(
                "PostgreSQL write-back recovered",
                extra={"outage_s": round(time.monotonic() - self._failing_since, 1)},
            )
            self._failing_since = None
            self._overflowing = False
        self._backoff_s = self.flush_interval_s
        if len(self.buffer) >= self.flush_events:
            self._full.set()
        metrics.PG_EVENTS_BUFFERED.set(len(self.buffer))
        return True

    def _forget_sent(self, batch: list[JobEvent]) -> None:
        # Events dropped meanwhile came off the front, i.e. out of this batch.
        for _ in range(max(0, len(batch) - self._dropped_in_flight)):
            self.buffer.popleft()

    def _report_running(self, *, every_start: bool) -> None:
        """A ``running`` event for every attempt still running since before the last flush."""
        if every_start:
            self._unreported |= self._young
            self._young = set()
        for job_id in self._unreported:
            attempt, at = self._running[job_id]
            self._add(JobEvent(job_id, attempt, "running", self.worker_id, at, at))
        self._unreported, self._young = self._young, set()

    async def close(self) -> None:
        """Write out what is left, for at most ``CLOSE_TIMEOUT_S``; then close."""
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        with contextlib.suppress(Exception):
            while (self.buffer or self._unreported or self._young) and time.monotonic() < deadline:
                ok = await asyncio.wait_for(
                    self.flush_once(every_start=True), max(0.1, deadline - time.monotonic())
                )
                if not ok:
                    break
        if self.buffer:
            log.warning(
                "Stopped with status events not written to PostgreSQL"
                " (the migrator's reconciler repairs finished jobs from Redis)",
                extra={"events": len(self.buffer)},
            )
        with contextlib.suppress(Exception):
            await self.store.close()
