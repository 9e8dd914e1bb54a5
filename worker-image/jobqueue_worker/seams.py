"""Seams for the next issue (rate limits, per-type concurrency, timeouts, memory).

The runtime already calls these at the right places with no-op defaults, so the
next issue adds implementations without reshaping the fetch loop:
- ``Admission`` is asked how many jobs may be taken BEFORE the fetch script runs
  (rate limits and per-type concurrency as admission control, anchors R7);
- ``ExecutionGuard`` wraps each handler call (soft/hard timeouts, memory limits, R8).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from jobqueue_worker.registry import Job, JobType


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
