"""Hooks around fetching and running jobs.

- ``Admission`` is asked how many jobs may be taken BEFORE the fetch script runs
  (default: all free slots). Rate limits and per-type concurrency do not use it:
  they are checked per job inside the fetch script itself (``step.lua``), which
  knows each job's type; this hook stays for worker-wide throttles.
- ``ExecutionGuard`` wraps each handler call. The default is
  ``execution.Supervisor`` (soft/hard/adaptive timeouts, isolated processes);
  ``NoGuard`` runs the handler bare.
- ``JobEvents`` hears every attempt's start and every acknowledged finish, for
  durable records elsewhere (``writeback.PgWriteback``). Its calls must not block:
  they run on the dispatcher's hot path, so a sink buffers and writes in ``run``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from jobqueue_worker.registry import Job, JobType

if TYPE_CHECKING:
    from jobqueue_worker.wire import Fetched, FinishOp


class Admission(Protocol):
    def admit(self, free_slots: int) -> int:
        """How many of ``free_slots`` the next fetch may fill."""
        ...


class ExecutionGuard(Protocol):
    async def run(self, job: Job, job_type: JobType, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` under this guard's limits; raise to fail the attempt."""
        ...


class AdmitAll:
    def admit(self, free_slots: int) -> int:
        return free_slots


class NoGuard:
    async def run(self, job: Job, job_type: JobType, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()


class JobEvents(Protocol):
    def started(self, fetched: Fetched, at: float) -> None:
        """A leased job is about to run (``at``: Redis time, epoch seconds)."""
        ...

    def finished(self, op: FinishOp, acked: bool) -> None:
        """Redis answered the finishing op; ``acked`` is False when the lease was lost."""
        ...

    async def run(self) -> None:
        """Background work until cancelled (writing out what was heard)."""
        ...

    async def close(self) -> None:
        """Last chance to write out, bounded in time; called once at shutdown."""
        ...


class NoEvents:
    """Redis-only mode: nothing else records jobs."""

    def started(self, fetched: Fetched, at: float) -> None:
        return None

    def finished(self, op: FinishOp, acked: bool) -> None:
        return None

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None
