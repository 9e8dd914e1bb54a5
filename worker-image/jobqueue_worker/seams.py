"""Hooks around fetching and running jobs.

- ``Admission`` is asked how many jobs may be taken BEFORE the fetch script runs
  (default: all free slots). Rate limits and per-type concurrency do not use it:
  they are checked per job inside the fetch script itself (``step.lua``), which
  knows each job's type; this hook stays for worker-wide throttles.
- ``ExecutionGuard`` wraps each handler call. The default is
  ``execution.Supervisor`` (soft/hard/adaptive timeouts, isolated processes);
  ``NoGuard`` runs the handler bare.
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
