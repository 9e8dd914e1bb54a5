"""The worker process: fetch, run, ack, renew, reap, heartbeat, shut down.

One dispatcher coroutine (``dispatcher.py``) owns the conversation with Redis for
jobs: acks and the next fetch in ONE ``step`` call, and an idle wait that, on a
plain Redis, brings the first new jobs back leased. Shutdown has three phases:
stop fetching; let in-flight jobs finish within the grace period; hand the rest
back to the front of their queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor

from jobqueue_protocol.heartbeat import WorkerHeartbeat
from jobqueue_worker import identity, metrics
from jobqueue_worker.attempt import Attempts, Rejected, open_envelope, rejected_op
from jobqueue_worker.broker import Broker, SyncBroker
from jobqueue_worker.chores import Chores
from jobqueue_worker.dispatcher import DispatchLoop
from jobqueue_worker.durable_acks import DurableAcks
from jobqueue_worker.execution import Supervisor
from jobqueue_worker.inflight import InFlight, Running, released
from jobqueue_worker.registry import Registry
from jobqueue_worker.renewer import LeaseRenewer
from jobqueue_worker.seams import Admission, AdmitAll, ExecutionGuard, JobEvents
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.timeouts import History
from jobqueue_worker.watchdog import Watchdog
from jobqueue_worker.wire import Fetched, FinishOp
from jobqueue_worker.writeback import events_for

log = logging.getLogger(__name__)


class Worker(DispatchLoop):
    def __init__(
        self,
        settings: WorkerSettings,
        registry: Registry,
        *,
        rng: random.Random | None = None,
        admission: Admission | None = None,
        guard: ExecutionGuard | None = None,
        events: JobEvents | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.rng = rng or random.Random()
        self.admission: Admission = admission or AdmitAll()
        self.history = History()
        self.supervisor = Supervisor(settings, self.history)
        self.guard: ExecutionGuard = guard or self.supervisor
        self.recycle_reason: str | None = None
        self.watchdog = Watchdog(settings, registry, self.supervisor, self.recycle)
        self.id = identity.worker_id(settings.pod_name)
        self.events: JobEvents = events or events_for(settings, self.id)
        self.plan, self.type_caps = settings.fetch_plan(registry.names())
        self.broker = Broker(
            settings.redis_url, settings.limits(), max_block_s=settings.idle_block_s
        )
        self.inflight = InFlight()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="jq-job"
        )
        self.attempts = Attempts(
            guard=self.guard.run,
            executor=self._executor,
            rng=self.rng,
            max_payload_bytes=settings.max_payload_bytes,
            timeout_backoff_multiplier=settings.timeout_backoff_multiplier,
            log_payloads=settings.log_payloads,
        )
        self.started_at = time.time()
        self.processed = 0
        self.failed = 0
        self.step_calls = 0  # round trips for acks + fetches (the per-job cost)
        self._busy_s = 0.0
        self._cpu = identity.CpuMeter()
        self.chores = Chores(
            worker_id=self.id,
            settings=settings,
            broker=self.broker,
            plan=self.plan,
            registry=registry,
            supervisor=self.supervisor,
            history=self.history,
            snapshot=self.heartbeat,
        )
        self.draining = False
        self.drain_requested = False  # the operator listed this Pod in a drain hash
        self.fast = False
        self._changed: asyncio.Event | None = None
        self._retry_s = 0.05
        self.durable = DurableAcks(settings.durable_replicas, settings.durable_timeout_s)
        self._stop_requested: asyncio.Event | None = None
        self._fast_requested: asyncio.Event | None = None
        # At most `concurrency` jobs run; jobs fetched ahead wait here for a slot.
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._waiting_for_slot: dict[str, Running] = {}
        self.recent_job_s: float | None = None

    # -- control ---------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: drain. Second call: exit fast (leases still protect the jobs)."""
        if self._stop_requested is None or self._fast_requested is None:
            return
        if self._stop_requested.is_set():
            log.warning("Second stop signal: exiting fast", extra={"worker": self.id})
            self.fast = True
            self._fast_requested.set()
        else:
            log.info("Stop requested: draining", extra={"worker": self.id})
            self._stop_requested.set()
        if self._changed is not None:
            self._changed.set()

    @property
    def state(self) -> str:
        if self.draining:
            return "draining"
        return "busy" if self.inflight.running else "idle"

    # -- main ------------------------------------------------------------------
    async def run(self) -> int:
        self._changed = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._fast_requested = asyncio.Event()
        log.info(
            "Started worker",
            extra={
                "worker": self.id,
                "queues": list(self.plan.queues),
                "concurrency": self.settings.concurrency,
                "mode": self.plan.mode,
            },
        )
        with contextlib.suppress(Exception):
            for warning in await self.broker.server_warnings():
                log.warning("Redis is not configured for durability", extra={"problem": warning})
        renewer = LeaseRenewer(
            SyncBroker(self.settings.redis_url, self.settings.limits()),
            self.plan,
            self.inflight.held_leases,
            interval_s=self.settings.lease_s / 3,
        )
        renewer.start()
        dispatcher = asyncio.create_task(self._dispatch(), name="jq-dispatch")
        background = [
            asyncio.create_task(self.chores.reap_loop(), name="jq-reap"),
            asyncio.create_task(self.chores.heartbeat_loop(), name="jq-heartbeat"),
            asyncio.create_task(self.watchdog.run(), name="jq-limits"),
            asyncio.create_task(self.events.run(), name="jq-events"),
        ]
        stop_wait = asyncio.create_task(self._stop_requested.wait())
        await asyncio.wait([dispatcher, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if dispatcher.done() and dispatcher.exception() is not None:
            # Not a Redis outage (those are retried): a bug or a corrupt queue.
            # Exit non-zero so the pod restarts and the failure is visible.
            log.error("Dispatcher crashed", exc_info=dispatcher.exception())
            code = 1
        await self._shutdown(dispatcher)
        stop_wait.cancel()
        for task in background:
            task.cancel()
        # Bounded: a task cancelled inside a Redis call (e.g. while reconnecting)
        # must not keep the process from exiting; the process ends anyway.
        _, stuck = await asyncio.wait(background, timeout=3.0)
        for task in stuck:
            log.warning(
                "Background task did not stop after cancel; exiting without it",
                extra={"task": task.get_name(), "stack": repr(task.get_stack(limit=5))},
            )
        renewer.stop()
        await self.events.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.forget_worker(self.plan.queues, self.id), 2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.close(), 5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("Stopped worker", extra={"worker": self.id, "processed": self.processed})
        return code

    async def _shutdown(self, dispatcher: asyncio.Task[None]) -> None:
        assert self._changed is not None
        assert self._fast_requested is not None
        self.draining = True
        self._hand_back_unstarted()
        self._changed.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.chores.send_heartbeat(), 1.0)
        if self.inflight.running and not self.fast:
            log.info(
                "Draining in-flight jobs",
                extra={"jobs": len(self.inflight), "grace_s": self.settings.grace_period_s},
            )
            deadline = time.monotonic() + self.settings.grace_period_s
            while self.inflight.running and not self.fast and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._fast_requested.wait(), min(0.05, deadline - time.monotonic())
                    )
        leftovers = self.inflight.hand_back_all()
        for a in leftovers:
            if a.task is not None:
                a.task.cancel()
        if leftovers:
            log.info("Handing back unfinished jobs", extra={"jobs": [a.id for a in leftovers]})
            metrics.IN_FLIGHT.set(0)
        self._changed.set()
        try:
            await asyncio.wait_for(dispatcher, 2.0 if self.fast else 10.0)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("Could not hand back every job; their leases will expire")
        except Exception:
            log.exception("Dispatcher failed during shutdown")

    # -- one job (the dispatcher loop is dispatcher.DispatchLoop) ---------------
    async def _run_job(self, fetched: Fetched, active: Running) -> None:
        if self._slots.locked():  # fetched ahead: wait for a running job to finish
            self._waiting_for_slot[active.id] = active
            try:
                await self._slots.acquire()
            finally:
                self._waiting_for_slot.pop(active.id, None)
        else:
            await self._slots.acquire()
        try:
            op = (
                released(active)  # shutdown began while it waited: it never ran
                if self.draining
                else await self._execute(fetched, active)
            )
        finally:
            self._slots.release()
        if not self.inflight.finish(active, op):
            return  # handed back at shutdown; the result is dropped
        n = self.settings.recycle_after_jobs
        if n is not None and self.processed >= n:
            self.recycle("jobs", f"processed {self.processed} jobs (WORKER_RECYCLE_AFTER_JOBS={n})")
        if self._changed is not None:
            self._changed.set()

    def _hand_back_unstarted(self) -> None:
        """Jobs fetched ahead that never started go back now, not after the drain."""
        for active in list(self._waiting_for_slot.values()):
            if active.task is not None:
                active.task.cancel()
            self.inflight.finish(active, released(active))

    # -- one attempt -----------------------------------------------------------
    async def _execute(self, f: Fetched, active: Running) -> FinishOp:
        opened = open_envelope(f.envelope_raw, self.settings.max_payload_bytes, self.registry)
        if isinstance(opened, Rejected):
            return rejected_op(f, opened)
        env, jt = opened
        active.type = env.type
        deferred = self.watchdog.precheck(f, jt, lambda: self.inflight.types_besides(active))
        if deferred is not None:
            return deferred
        ran = await self.attempts.run(f, env, jt)
        self.processed += 1
        took, recent = ran.duration_s, self.recent_job_s
        self.recent_job_s = took if recent is None else 0.9 * recent + 0.1 * took
        self._busy_s += ran.duration_s
        if ran.op.op == "complete":
            self.history.add(env.type, ran.duration_s)
        else:
            self.failed += 1
        return ran.op

    # -- recycling --------------------------------------------------------------
    def recycle(self, reason: str, why: str) -> None:
        """Stop fetching, finish in-flight jobs (grace period), exit 0 so the pod restarts."""
        if self.recycle_reason is not None:
            return
        self.recycle_reason = reason
        metrics.RECYCLES.labels(reason).inc()
        log.warning("Recycling the worker", extra={"reason": reason, "why": why})
        self.request_stop()

    # -- background ------------------------------------------------------------
    def heartbeat(self) -> WorkerHeartbeat:
        jobs = self.inflight.jobs()
        return WorkerHeartbeat(
            worker_id=self.id,
            state=self.state,
            seen_at=0.0,
            active_jobs=len(jobs),
            jobs=jobs,
            started_at=self.started_at,
            rss_bytes=identity.rss_bytes(),
            processed=self.processed,
            failed=self.failed,
            mean_processing_s=self._busy_s / self.processed if self.processed else 0.0,
            pod_name=self.settings.pod_name,
            cpu_cores=self._cpu.sample(),
            concurrency=self.settings.concurrency,
            version=identity.worker_version(),
        )

    @property
    def last_heartbeat_tick(self) -> float:
        return self.chores.last_tick

    @property
    def last_heartbeat_ok(self) -> float:
        return self.chores.last_ok
