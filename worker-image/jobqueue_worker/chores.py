"""The worker's periodic chores besides running jobs: the heartbeat (and with it
the per-type execution statistics and rate-limit gauges) and reaping expired
leases. Each loop survives a Redis outage: it logs, counts and tries again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from jobqueue_protocol.heartbeat import WorkerHeartbeat, heartbeat_json
from jobqueue_worker import metrics
from jobqueue_worker.broker import Broker
from jobqueue_worker.execution import Supervisor
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.timeouts import History
from jobqueue_worker.wire import FetchPlan

log = logging.getLogger(__name__)


class Chores:
    def __init__(
        self,
        *,
        worker_id: str,
        settings: WorkerSettings,
        broker: Broker,
        plan: FetchPlan,
        registry: Registry,
        supervisor: Supervisor,
        history: History,
        snapshot: Callable[[], WorkerHeartbeat],
    ) -> None:
        self.worker_id = worker_id
        self.settings = settings
        self.broker = broker
        self.plan = plan
        self.registry = registry
        self.supervisor = supervisor
        self.history = history
        self.snapshot = snapshot
        # For the liveness probe: the loop ticking, and the last heartbeat Redis took.
        self.last_tick = time.monotonic()
        self.last_ok = time.monotonic()  # start-up counts as fresh

    async def send_heartbeat(self) -> None:
        await self.broker.heartbeat(
            self.plan.queues,
            self.worker_id,
            heartbeat_json(self.snapshot()),
            stale_s=self.settings.heartbeat_ttl_s * 4,
        )

    async def heartbeat_loop(self) -> None:
        while True:
            self.last_tick = time.monotonic()
            try:
                await self.send_heartbeat()
                self.last_ok = time.monotonic()
                await self._publish_exec_stats()
                if self.settings.http_port:
                    await self._publish_rate_limit_gauges()
            except Exception as exc:
                metrics.REDIS_ERRORS.labels(op="heartbeat").inc()
                log.warning("Heartbeat failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def reap_loop(self) -> None:
        gate_ms = int(self.settings.reap_interval_s * 1000)
        while True:
            for q in self.plan.queues:
                try:
                    requeued, dead = await self.broker.reap(q, self.worker_id, gate_ms)
                except Exception as exc:
                    metrics.REDIS_ERRORS.labels(op="reap").inc()
                    log.debug("Reap failed", extra={"error": repr(exc)})
                    continue
                if requeued > 0 or dead > 0:
                    metrics.REAPED.inc(requeued + dead)
                    log.warning(
                        "Reaped expired leases",
                        extra={"queue": q, "requeued": requeued, "dead_lettered": dead},
                    )
            await asyncio.sleep(self.settings.reap_interval_s)

    async def _publish_exec_stats(self) -> None:
        """Per-type execution statistics and timeouts: gauges and the ``exec`` hash."""
        summary = self.history.summary()
        if not summary:
            return
        body: dict[str, dict[str, float]] = {}
        for job_type, st in summary.items():
            # Quantiles stay out of Prometheus (a p95 gauge per worker cannot be
            # aggregated); jobqueue_job_duration_seconds is the histogram to query.
            row = st.as_dict()
            jt = self.registry.get(job_type)
            if jt is not None:
                probe = Job(job_type, job_type, "", None, 5, 1, 1, 1)
                row["timeout_s"] = self.supervisor.timeouts(probe, jt).hard_s or 0.0
            body[job_type] = row
        await self.broker.publish_exec_stats(
            self.plan.queues,
            self.worker_id,
            json.dumps(body),
            ttl_s=self.settings.heartbeat_ttl_s * 4,
        )

    async def _publish_rate_limit_gauges(self) -> None:
        # The queues' depth, age, delayed, in-flight and dead counts are the
        # operator's series (jobqueue_operator_queue_*): one exporter, not one per
        # worker Pod, and present at 0 workers.
        if self.plan.rate_limits:
            usage = await self.broker.limit_usage(self.plan.rate_limits)
            for (job_type, label), (used, cap) in usage.items():
                metrics.RATE_LIMIT_USED.labels(job_type, label).set(used)
                metrics.RATE_LIMIT_CAPACITY.labels(job_type, label).set(cap)
