"""The worker process: fetch, run, ack, renew, reap, heartbeat, shut down.

One dispatcher coroutine owns the conversation with Redis for jobs: it batches
the finished jobs and the free slots into ONE ``step`` script call, so ack plus
next fetch is one round trip. When nothing is ready it blocks on the queues'
wake lists (BLPOP) instead of polling, bounded by the next delayed due time.
Shutdown has three phases: stop fetching; let in-flight jobs finish within the
grace period; hand the rest back to the front of their queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
import threading
import time
import traceback as tb
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jobqueue_protocol import logformat
from jobqueue_protocol.stats import ActiveJob, WorkerHeartbeat, heartbeat_json
from jobqueue_worker import identity, metrics
from jobqueue_worker.backoff import GiveUp, RetryLater, next_outcome
from jobqueue_worker.broker import (
    Broker,
    Fetched,
    FetchPlan,
    FinishOp,
    StepResult,
    SyncBroker,
    is_transient,
)
from jobqueue_worker.envelope import DeadReason, JobEnvelope, describe, jsonable
from jobqueue_worker.errors import ConfigError, JobTimeout, MemoryLimitExceeded, PermanentError
from jobqueue_worker.execution import Supervisor
from jobqueue_worker.memlimit import MemoryPolicy, cgroup_limit, default_policy
from jobqueue_worker.registry import Job, JobType, Registry
from jobqueue_worker.renewer import Held, LeaseRenewer
from jobqueue_worker.seams import Admission, AdmitAll, ExecutionGuard, JobEvents
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.timeouts import History, timeout_retry_delay
from jobqueue_worker.writeback import events_for

log = logging.getLogger(__name__)

_MAX_ERROR = 4000
_MAX_TRACEBACK = 16000


@dataclass
class _Active:
    queue: str
    id: str
    token: str
    type: str
    started_at: float  # epoch seconds
    task: asyncio.Task[None] | None = None


#: How often a worker whose Pod was chosen to go asks whether it still is.
DRAIN_RECHECK_S = 1.0


class Worker:
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
        self.memory: MemoryPolicy = default_policy(
            settings.memory_soft_limit,
            settings.memory_hard_limit,
            cgroup_limit() if settings.use_cgroup_limit else None,
        )
        self.recycle_reason: str | None = None
        self._memory_state = "ok"
        self.id = identity.worker_id(settings.pod_name)
        self.events: JobEvents = events or events_for(settings, self.id)
        unknown = settings.unknown_type_keys(registry.names())
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)}: no registered job type has this name"
                f" (known: {', '.join(registry.names()) or 'none'}; <TYPE> is the name"
                " upper-cased, other characters as _)"
            )
        rate_limits = tuple(
            (name, settings.limits_for(name))
            for name in registry.names()
            if settings.limits_for(name)
        )
        # Per-type caps of this worker (WORKER_CONCURRENCY_<TYPE>).
        self.type_caps: dict[str, int] = {
            name: cap
            for name in registry.names()
            if (cap := settings.concurrency_for(name)) is not None
        }
        self.plan = FetchPlan(
            queues=tuple(settings.queues),
            mode=settings.mode,
            weights=tuple(settings.weights),
            aging_ms=int(settings.aging_s * 1000),
            rate_limits=rate_limits,
            limiter_queue=settings.queues[0] if settings.on_cluster else None,
        )
        self.broker = Broker(
            settings.redis_url, settings.limits(), max_block_s=settings.idle_block_s
        )
        self._active: dict[str, _Active] = {}
        self._active_lock = threading.Lock()  # the renewal thread reads _active
        self._pending: list[FinishOp] = []
        self._executor = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="jq-job"
        )
        self.started_at = time.time()
        self.processed = 0
        self.failed = 0
        self.step_calls = 0  # round trips for acks + fetches (the per-job cost)
        self._busy_s = 0.0
        self._cpu = identity.CpuMeter()
        self.last_heartbeat_tick = time.monotonic()
        self.last_heartbeat_ok = time.monotonic()  # start-up counts as fresh
        self.last_redis_ok = 0.0
        self.draining = False
        self.drain_requested = False  # the operator listed this Pod in a drain hash
        self.fast = False
        self._changed: asyncio.Event | None = None
        self._retry_s = 0.05
        self._stop_requested: asyncio.Event | None = None
        self._fast_requested: asyncio.Event | None = None

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
        return "busy" if self._active else "idle"

    def held_leases(self) -> list[Held]:
        """Running jobs and finished ones whose ack has not landed yet (Redis slow or down)."""
        with self._active_lock:
            held = [(a.queue, a.id, a.token) for a in self._active.values()]
        # A list copy is atomic under the GIL; the loop thread only appends/swaps.
        held += [(op.queue, op.id, op.token) for op in list(self._pending) if op.op != "release"]
        return held

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
            self.held_leases,
            interval_s=self.settings.lease_s / 3,
        )
        renewer.start()
        dispatcher = asyncio.create_task(self._dispatch(), name="jq-dispatch")
        background = [
            asyncio.create_task(self._reap_loop(), name="jq-reap"),
            asyncio.create_task(self._heartbeat_loop(), name="jq-heartbeat"),
            asyncio.create_task(self._limits_loop(), name="jq-limits"),
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
        self._changed.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send_heartbeat(), 1.0)
        if self._active and not self.fast:
            log.info(
                "Draining in-flight jobs",
                extra={"jobs": len(self._active), "grace_s": self.settings.grace_period_s},
            )
            deadline = time.monotonic() + self.settings.grace_period_s
            while self._active and not self.fast and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._fast_requested.wait(), min(0.05, deadline - time.monotonic())
                    )
        with self._active_lock:
            leftovers = list(self._active.values())
            self._active.clear()
        for a in leftovers:
            # Back to the front of its band without using a delivery.
            self._pending.append(FinishOp(queue=a.queue, id=a.id, token=a.token, op="release"))
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

    # -- dispatcher ------------------------------------------------------------
    async def _dispatch(self) -> None:
        assert self._changed is not None
        idle = False
        res: StepResult | None = None
        wake: asyncio.Task[bool] | None = None
        try:
            while True:
                self._changed.clear()
                if self.draining and not self._active and not self._pending:
                    return
                free = 0 if self.draining else self.settings.concurrency - len(self._active)
                if self._pending or (free > 0 and not idle):
                    # Acks always carry a fetch for the free slots: one round trip.
                    fetch_n = self.admission.admit(free) if free > 0 else 0
                    got = await self._exchange(fetch_n)
                    if got is not None:
                        res = got
                        if fetch_n > 0:
                            idle = len(res.jobs) < fetch_n
                    continue
                waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
                recheck: asyncio.Future[Any] | None = None
                if free > 0 and idle and self.drain_requested:
                    # No BLPOP while drained: it would take the wake tokens meant
                    # for the workers that stay. Ask again now and then instead.
                    recheck = asyncio.ensure_future(asyncio.sleep(DRAIN_RECHECK_S))
                    waiters.append(recheck)
                elif free > 0 and idle:
                    if wake is None:
                        wake = asyncio.create_task(
                            self.broker.wait_for_wake(self.plan, self._block_s(res))
                        )
                    waiters.append(wake)
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                waiters[0].cancel()
                if recheck is not None:
                    idle = not recheck.done()
                    recheck.cancel()
                if wake is not None and wake.done():
                    err = wake.exception()
                    wake = None
                    idle = False
                    if err is not None:
                        metrics.REDIS_ERRORS.labels(op="wait").inc()
                        log.warning("Blocking wait failed", extra={"error": repr(err)})
                        await self._back_off()
        finally:
            if wake is not None:
                wake.cancel()
                # A cancelled BLPOP closes its connection; never let that stall shutdown.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(wake, 2.0)

    def _block_s(self, res: StepResult | None) -> float:
        """Block until woken, but no longer than until the next delayed job is due."""
        timeout = self.settings.idle_block_s
        if res is not None and res.next_due_ms is not None:
            timeout = min(timeout, max(0.0, (res.next_due_ms - res.now_ms) / 1000))
        return timeout

    async def _back_off(self) -> None:
        await asyncio.sleep(self._retry_s)
        self._retry_s = min(self._retry_s * 2, 5.0)

    async def _exchange(self, fetch_n: int) -> StepResult | None:
        """Send pending acks and fetch; on a Redis failure keep the acks for the next try."""
        ops, self._pending = self._pending, []
        self.step_calls += 1
        metrics.ROUND_TRIPS.labels(op="step").inc()
        try:
            res = await self.broker.step(
                self.plan,
                self.id,
                ops,
                fetch_n,
                self.rng.random(),
                caps=self._free_caps(),
                pod_name=self.settings.pod_name,
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._pending = ops + self._pending
            metrics.REDIS_ERRORS.labels(op="step").inc()
            log.warning(
                "Redis unavailable, backing off",
                extra={"error": repr(exc), "retry_in_s": self._retry_s},
            )
            await self._back_off()
            return None
        self._retry_s = 0.05
        self.last_redis_ok = time.monotonic()
        if res.drained != self.drain_requested:
            self.drain_requested = res.drained
            metrics.DRAIN_REQUESTED.set(int(res.drained))
            log.info(
                "The operator chose this Pod to go on a scale-down: fetching nothing more"
                if res.drained
                else "Drain request withdrawn: fetching again",
                extra={"pod": self.settings.pod_name},
            )
        for op, ok in zip(ops, res.acks, strict=True):
            self.events.finished(op, ok)
            if not ok and op.op != "release":
                metrics.JOBS.labels(op.queue, "?", "rejected").inc()
                log.warning(
                    "Ack refused: lease lost, another worker may run the job",
                    extra={"job_id": op.id, "queue": op.queue, "op": op.op},
                )
        for queue, job_type, n in res.throttled:
            metrics.RATE_LIMITED.labels(queue, job_type).inc(n)
            log.debug(
                "Rate limit: jobs deferred",
                extra={"queue": queue, "job_type": job_type, "jobs": n},
            )
        for fetched in res.jobs:
            self._start(fetched, res.now_ms / 1000)
        # Once per round trip, not per job: the acks just sent and the jobs just
        # started are exactly the changes since the last write.
        metrics.IN_FLIGHT.set(len(self._active))
        return res

    def _free_caps(self) -> dict[str, int] | None:
        """Free slots per capped job type in this worker, for the fetch script."""
        if not self.type_caps:
            return None
        with self._active_lock:
            running: dict[str, int] = {}
            for a in self._active.values():
                running[a.type] = running.get(a.type, 0) + 1
        return {t: max(0, cap - running.get(t, 0)) for t, cap in self.type_caps.items()}

    def running_by_type(self) -> dict[str, int]:
        with self._active_lock:
            out: dict[str, int] = {}
            for a in self._active.values():
                out[a.type] = out.get(a.type, 0) + 1
        return out

    def _start(self, fetched: Fetched, started_at: float) -> None:
        """``started_at`` is Redis time, like every timestamp the operator compares."""
        active = _Active(
            queue=fetched.queue,
            id=fetched.id,
            token=fetched.token,
            type=fetched.type or "?",
            started_at=started_at,
        )
        with self._active_lock:
            self._active[fetched.id] = active
        self.events.started(fetched, started_at)
        active.task = asyncio.create_task(self._run_job(fetched, active), name=f"job-{fetched.id}")

    async def _run_job(self, fetched: Fetched, active: _Active) -> None:
        op = await self._execute(fetched, active)
        with self._active_lock:
            current = self._active.get(fetched.id)
            if current is not active:
                return  # handed back at shutdown; the result is dropped
            del self._active[fetched.id]
        self._pending.append(op)
        n = self.settings.recycle_after_jobs
        if n is not None and self.processed >= n:
            self.recycle("jobs", f"processed {self.processed} jobs (WORKER_RECYCLE_AFTER_JOBS={n})")
        if self._changed is not None:
            self._changed.set()

    # -- one attempt -----------------------------------------------------------
    def _dead(self, f: Fetched, reason: DeadReason, error: str, dur_ms: int = 0) -> FinishOp:
        metrics.DEAD_LETTERS.labels(f.queue, reason.value).inc()
        log.error(
            "Dead-lettered job",
            extra={"job_id": f.id, "queue": f.queue, "reason": reason.value, "error": error},
        )
        return FinishOp(
            queue=f.queue,
            id=f.id,
            token=f.token,
            op="dead",
            reason=reason.value,
            error=error[:_MAX_ERROR],
            duration_ms=dur_ms,
        )

    async def _execute(self, f: Fetched, active: _Active) -> FinishOp:
        if len(f.envelope_raw.encode()) > self.settings.max_payload_bytes:
            return self._dead(
                f, DeadReason.TOO_LARGE, f"envelope over {self.settings.max_payload_bytes} bytes"
            )
        try:
            env = JobEnvelope.from_json(f.envelope_raw)
        except ValueError as exc:
            return self._dead(f, DeadReason.MALFORMED, f"invalid envelope: {describe(exc)}")
        jt = self.registry.get(env.type)
        if jt is None:
            return self._dead(f, DeadReason.UNKNOWN_TYPE, f"no handler for job type {env.type!r}")
        active.type = env.type
        max_attempts = env.max_attempts or jt.backoff.max_attempts
        job = Job(
            id=f.id,
            type=env.type,
            queue=f.queue,
            payload=env.payload,
            priority=env.priority,
            attempt=f.attempt,
            max_attempts=max_attempts,
            deliveries=f.deliveries,
            idempotency_key=env.idempotency_key,
            timeout_s=env.timeout_s,
        )
        deferred = self._memory_precheck(f, jt, active)
        if deferred is not None:
            return deferred
        ctx = {"job_id": f.id, "job_type": env.type, "queue": f.queue, "attempt": f.attempt}
        if self.settings.log_payloads:
            ctx["payload"] = env.payload
        series = metrics.job_series(f.queue, env.type)
        series.wait.observe(max(0.0, time.time() - env.enqueued_at.timestamp()))
        t0 = time.monotonic()
        try:
            result = await self.guard.run(job, jt, lambda: self._call(jt, job))
            result_json = jsonable(result)
            if len(result_json) > self.settings.max_payload_bytes:
                # Results live in Redis next to the queue; an unbounded one could
                # exhaust its memory. Running the job again would not shrink it.
                raise PermanentError(
                    f"result is {len(result_json)} bytes, over the"
                    f" {self.settings.max_payload_bytes}-byte limit"
                )
        except Exception as exc:
            dur = time.monotonic() - t0
            return self._failed(f, jt, job, exc, dur=dur, ctx=ctx)
        dur = time.monotonic() - t0
        self.processed += 1
        self._busy_s += dur
        self.history.add(env.type, dur)
        series.duration.observe(dur)
        series.completed.inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Completed job", extra={**ctx, "duration_s": round(dur, 6)})
        return FinishOp(
            queue=f.queue,
            id=f.id,
            token=f.token,
            op="complete",
            result=result_json,
            duration_ms=int(dur * 1000),
        )

    async def _call(self, jt: JobType, job: Job) -> Any:
        # A handler's own log lines carry the job's fields too; a thread gets a
        # copy of the context, since the executor would not pass it on.
        fields = {
            "job_id": job.id,
            "job_type": job.type,
            "queue": job.queue,
            "attempt": job.attempt,
        }
        with logformat.bound(**fields):
            if jt.is_async:
                return await jt.handler(job)
            loop = asyncio.get_running_loop()
            run = contextvars.copy_context().run
            return await loop.run_in_executor(self._executor, run, jt.handler, job)

    def _failed(
        self, f: Fetched, jt: JobType, job: Job, exc: Exception, *, dur: float, ctx: dict[str, Any]
    ) -> FinishOp:
        self.processed += 1
        self.failed += 1
        self._busy_s += dur
        metrics.DURATION.labels(f.queue, jt.name).observe(dur)
        trace = "".join(tb.format_exception(exc))[-_MAX_TRACEBACK:]
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        outcome = next_outcome(exc, job.attempt, job.max_attempts, jt.failure_policy, self.rng)
        common: dict[str, Any] = {
            "queue": f.queue,
            "id": f.id,
            "token": f.token,
            "duration_ms": int(dur * 1000),
            "error": error,
            "traceback": trace,
        }
        if isinstance(outcome, RetryLater) and isinstance(exc, JobTimeout):
            outcome = RetryLater(
                timeout_retry_delay(outcome.delay_s, self.settings.timeout_backoff_multiplier)
            )
        if isinstance(outcome, RetryLater):
            metrics.RETRIES.labels(f.queue, jt.name).inc()
            metrics.JOBS.labels(f.queue, jt.name, "retried").inc()
            log.warning(
                "Job failed, retry scheduled",
                exc_info=exc,
                extra={**ctx, "retry_in_s": round(outcome.delay_s, 3)},
            )
            return FinishOp(op="retry", delay_ms=int(outcome.delay_s * 1000), **common)
        assert isinstance(outcome, GiveUp)
        reason = (
            DeadReason.PERMANENT
            if outcome.permanent
            else DeadReason.TIMEOUT
            if isinstance(exc, JobTimeout)
            else DeadReason.MEMORY_LIMIT
            if isinstance(exc, MemoryLimitExceeded)
            else DeadReason.EXCEPTION
        )
        if not jt.dead_letter:
            metrics.JOBS.labels(f.queue, jt.name, "failed").inc()
            log.error("Job failed for good", exc_info=exc, extra=ctx)
            return FinishOp(op="failed", **common)
        metrics.JOBS.labels(f.queue, jt.name, "dead").inc()
        metrics.DEAD_LETTERS.labels(f.queue, reason.value).inc()
        log.error("Job failed, dead-lettered", exc_info=exc, extra={**ctx, "reason": reason.value})
        return FinishOp(op="dead", reason=reason.value, **common)

    # -- runtime limits: memory, recycling -------------------------------------
    def recycle(self, reason: str, why: str) -> None:
        """Stop fetching, finish in-flight jobs (grace period), exit 0 so the pod restarts."""
        if self.recycle_reason is not None:
            return
        self.recycle_reason = reason
        metrics.RECYCLES.labels(reason).inc()
        log.warning("Recycling the worker", extra={"reason": reason, "why": why})
        self.request_stop()

    def _expected_memory(self, jt: JobType) -> int:
        return self.settings.memory_for(jt.name) or jt.memory_bytes

    def _memory_precheck(self, f: Fetched, jt: JobType, active: _Active) -> FinishOp | None:
        """Defer (no attempt, no delivery) a job whose expected memory would pass the hard limit."""
        expected = self._expected_memory(jt)
        if expected <= 0 or self.memory.hard is None:
            return None
        with self._active_lock:
            others = [a for a in self._active.values() if a is not active]
        if not others:
            return None  # alone it always runs: a too-big type cannot wedge the queue
        reserved = sum(
            self._expected_memory(j) for a in others if (j := self.registry.get(a.type)) is not None
        )
        if self.memory.fits(self._rss(), reserved, expected):
            return None
        metrics.MEMORY_EVENTS.labels("deferred").inc()
        log.info(
            "Deferred a job: its expected memory would pass the hard limit",
            extra={"job_id": f.id, "job_type": jt.name, "expected_bytes": expected},
        )
        return FinishOp(queue=f.queue, id=f.id, token=f.token, op="defer", delay_ms=1000)

    def _rss(self) -> int:
        """The worker's RSS plus its isolated job processes'."""
        total = identity.rss_bytes()
        for proc in list(self.supervisor.children.values()):
            if proc.pid is not None:
                total += identity.rss_bytes(proc.pid)
        return total

    async def _limits_loop(self) -> None:
        metrics.MEMORY_LIMIT.set(self.memory.hard or 0)
        metrics.MEMORY_SOFT_LIMIT.set(self.memory.soft or 0)
        hours = self.settings.recycle_after_hours
        while True:
            await asyncio.sleep(self.settings.memory_check_interval_s)
            if hours is not None and time.time() - self.started_at >= hours * 3600:
                self.recycle("age", f"running {hours} h (WORKER_RECYCLE_AFTER_HOURS)")
            rss = self._rss()
            metrics.MEMORY_RSS.set(rss)
            state = self.memory.state(rss)
            if state != self._memory_state:
                extra = {"rss_bytes": rss, "soft": self.memory.soft, "hard": self.memory.hard}
                if state == "soft":
                    metrics.MEMORY_EVENTS.labels("soft").inc()
                    log.warning("Worker memory over its soft limit", extra=extra)
                elif state == "hard":
                    metrics.MEMORY_EVENTS.labels("hard").inc()
                    log.error("Worker memory over its hard limit", extra=extra)
                self._memory_state = state
            if state == "hard":
                # An isolated job is the likely culprit: kill the biggest child first.
                children = [
                    (identity.rss_bytes(p.pid), jid)
                    for jid, p in list(self.supervisor.children.items())
                    if p.pid is not None
                ]
                if children and max(children)[0] > 0:
                    _, jid = max(children)
                    if self.supervisor.kill_child(jid):
                        metrics.MEMORY_EVENTS.labels("child_killed").inc()
                        log.error("Killed an isolated job over the memory limit: %s", jid)
                        continue
                self.recycle("memory_hard", f"RSS {rss} bytes ≥ hard limit {self.memory.hard}")

    # -- background ------------------------------------------------------------
    async def _reap_loop(self) -> None:
        gate_ms = int(self.settings.reap_interval_s * 1000)
        while True:
            for q in self.plan.queues:
                try:
                    requeued, dead = await self.broker.reap(q, self.id, gate_ms)
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

    def heartbeat(self) -> WorkerHeartbeat:
        with self._active_lock:
            jobs = tuple(
                ActiveJob(id=a.id, type=a.type, started_at=a.started_at)
                for a in self._active.values()
            )
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
        )

    async def _send_heartbeat(self) -> None:
        await self.broker.heartbeat(
            self.plan.queues,
            self.id,
            heartbeat_json(self.heartbeat()),
            stale_s=self.settings.heartbeat_ttl_s * 4,
        )

    async def _heartbeat_loop(self) -> None:
        while True:
            self.last_heartbeat_tick = time.monotonic()
            try:
                await self._send_heartbeat()
                self.last_redis_ok = self.last_heartbeat_ok = time.monotonic()
                await self._publish_exec_stats()
                if self.settings.http_port:
                    await self._publish_queue_gauges()
            except Exception as exc:
                metrics.REDIS_ERRORS.labels(op="heartbeat").inc()
                log.warning("Heartbeat failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.heartbeat_interval_s)

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
            self.plan.queues, self.id, json.dumps(body), ttl_s=self.settings.heartbeat_ttl_s * 4
        )

    async def _publish_queue_gauges(self) -> None:
        # The queues' depth, age, delayed, in-flight and dead counts are the
        # operator's series (jobqueue_operator_queue_*): one exporter, not one per
        # worker Pod, and present at 0 workers.
        if self.plan.rate_limits:
            usage = await self.broker.limit_usage(self.plan.rate_limits)
            for (job_type, label), (used, cap) in usage.items():
                metrics.RATE_LIMIT_USED.labels(job_type, label).set(used)
                metrics.RATE_LIMIT_CAPACITY.labels(job_type, label).set(cap)
