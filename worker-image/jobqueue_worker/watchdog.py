"""The worker's memory and age limits: defer a job that would not fit, kill an
isolated job that passed the hard limit, recycle the worker when it must go.

Decisions are ``memlimit.MemoryPolicy``'s (pure); this module measures (RSS of
the worker and its isolated job processes) and acts on them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from jobqueue_worker import identity, metrics
from jobqueue_worker.execution import Supervisor
from jobqueue_worker.memlimit import MemoryPolicy, cgroup_limit, default_policy
from jobqueue_worker.registry import JobType, Registry
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.wire import Fetched, FinishOp

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(
        self,
        settings: WorkerSettings,
        registry: Registry,
        supervisor: Supervisor,
        recycle: Callable[[str, str], None],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.supervisor = supervisor
        self.recycle = recycle
        self.started_at = time.time()
        self.memory: MemoryPolicy = default_policy(
            settings.memory_soft_limit,
            settings.memory_hard_limit,
            cgroup_limit() if settings.use_cgroup_limit else None,
        )
        self._state = "ok"

    def _expected(self, jt: JobType) -> int:
        return self.settings.memory_for(jt.name) or jt.memory_bytes

    def precheck(
        self, f: Fetched, jt: JobType, other_types: Callable[[], Iterable[str]]
    ) -> FinishOp | None:
        """Defer (no attempt, no delivery) a job whose expected memory would pass the hard limit.

        ``other_types``: the types of the jobs running beside it, asked for only when
        this type has an expected memory (most jobs skip the list).
        """
        expected = self._expected(jt)
        if expected <= 0 or self.memory.hard is None:
            return None
        others = list(other_types())
        if not others:
            return None  # alone it always runs: a too-big type cannot wedge the queue
        reserved = sum(self._expected(j) for t in others if (j := self.registry.get(t)) is not None)
        if self.memory.fits(self.rss(), reserved, expected):
            return None
        metrics.MEMORY_EVENTS.labels("deferred").inc()
        log.info(
            "Deferred a job: its expected memory would pass the hard limit",
            extra={"job_id": f.id, "job_type": jt.name, "expected_bytes": expected},
        )
        return FinishOp(queue=f.queue, id=f.id, token=f.token, op="defer", delay_ms=1000)

    def rss(self) -> int:
        """The worker's RSS plus its isolated job processes'."""
        total = identity.rss_bytes()
        for proc in list(self.supervisor.children.values()):
            if proc.pid is not None:
                total += identity.rss_bytes(proc.pid)
        return total

    async def run(self) -> None:
        metrics.MEMORY_LIMIT.set(self.memory.hard or 0)
        metrics.MEMORY_SOFT_LIMIT.set(self.memory.soft or 0)
        hours = self.settings.recycle_after_hours
        while True:
            await asyncio.sleep(self.settings.memory_check_interval_s)
            if hours is not None and time.time() - self.started_at >= hours * 3600:
                self.recycle("age", f"running {hours} h (WORKER_RECYCLE_AFTER_HOURS)")
            rss = self.rss()
            metrics.MEMORY_RSS.set(rss)
            state = self.memory.state(rss)
            if state != self._state:
                extra = {"rss_bytes": rss, "soft": self.memory.soft, "hard": self.memory.hard}
                if state == "soft":
                    metrics.MEMORY_EVENTS.labels("soft").inc()
                    log.warning("Worker memory over its soft limit", extra=extra)
                elif state == "hard":
                    metrics.MEMORY_EVENTS.labels("hard").inc()
                    log.error("Worker memory over its hard limit", extra=extra)
                self._state = state
            if state == "hard" and not self._kill_biggest_child():
                self.recycle("memory_hard", f"RSS {rss} bytes ≥ hard limit {self.memory.hard}")

    def _kill_biggest_child(self) -> bool:
        """An isolated job is the likely culprit: kill the biggest child first."""
        children = [
            (identity.rss_bytes(p.pid), jid)
            for jid, p in list(self.supervisor.children.items())
            if p.pid is not None
        ]
        if not children or max(children)[0] <= 0:
            return False
        _, jid = max(children)
        if not self.supervisor.kill_child(jid):
            return False
        metrics.MEMORY_EVENTS.labels("child_killed").inc()
        log.error("Killed an isolated job over the memory limit: %s", jid)
        return True
