"""The worker's dispatcher loop: acks, fetches and the idle wait (a mixin of ``Worker``).

One coroutine owns the conversation with Redis for jobs: it batches the finished
jobs and the free slots into ONE ``step`` call, so ack plus next fetch is one
round trip. When nothing is ready it waits on the queues' wake lists instead of
polling, bounded by the next delayed due time. On a plain Redis that wait and the
next fetch are one call too (``Broker.wait_then_step``): a job enqueued to an idle
worker arrives leased in the wait's reply, with no wake-up-then-fetch exchange.

While such a wait is out, the slots it asked for are spoken for: exchanges that
carry acks fetch nothing, so the worker never holds more than it may. On shutdown
the wait is interrupted (its step still runs) and any job it leased is handed
back, never left to its lease. With durable acks, a step whose WAIT fell short
holds every fetch until a later WAIT confirms (``durable_acks``).

A worker may hold its concurrency in running jobs, plus, while jobs are short, as
many again fetched ahead (``fetch_ahead``). A short batch is over before its step
call comes back: without jobs in hand the worker idles through every round trip,
and a batch twice as large halves the calls per job. A fetched-ahead job waits
only for the slot of a job that takes a few milliseconds; longer jobs fetch
nothing ahead, so no job waits in one worker behind a slow one while another
worker is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from jobqueue_worker import metrics
from jobqueue_worker.broker import Broker, is_transient
from jobqueue_worker.durable_acks import DurableAcks
from jobqueue_worker.inflight import InFlight, Running, released
from jobqueue_worker.replies import report_acks, report_drain
from jobqueue_worker.seams import Admission, JobEvents
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.wire import Fetched, FetchPlan, FinishOp, StepResult, block_s

log = logging.getLogger("jobqueue_worker.runtime")

#: Jobs are fetched ahead only while the recent mean job takes at most this long.
FETCH_AHEAD_MAX_JOB_S = 0.010
#: How often a worker whose Pod was chosen to go asks whether it still is.
DRAIN_RECHECK_S = 1.0
#: How long shutdown tries to end an outstanding wait before cancelling it.
INTERRUPT_WAIT_S = 2.0

Wait = asyncio.Task["StepResult | bool"]


class DispatchLoop:
    settings: WorkerSettings
    plan: FetchPlan
    type_caps: dict[str, int]
    broker: Broker
    inflight: InFlight
    admission: Admission
    events: JobEvents
    rng: random.Random
    id: str
    step_calls: int
    draining: bool
    drain_requested: bool
    durable: DurableAcks
    _changed: asyncio.Event | None
    _retry_s: float
    #: Exponentially weighted mean of recent jobs' run time; None before the first.
    recent_job_s: float | None

    async def _run_job(self, fetched: Fetched, active: Running) -> None:
        raise NotImplementedError

    async def _dispatch(self) -> None:
        assert self._changed is not None
        idle = False
        res: StepResult | None = None
        wake: Wait | None = None
        wait_n = 0  # slots the outstanding wait asked for (0: a plain wake-up wait)
        try:
            while True:
                self._changed.clear()
                if wake is not None and self.draining and not wake.done():
                    await self._end_wait(wake)
                if wake is not None and wake.done():
                    idle, res = await self._waited(wake, wait_n, idle, res)
                    wake = None
                if self.draining and not self.inflight.running and not self.inflight.pending:
                    return
                if self.durable.held and not self.inflight.pending:
                    await self._confirm()
                    continue
                held = self.draining or self.durable.held
                free = 0 if held else self._may_hold() - len(self.inflight)
                waiting = wake is not None and wait_n > 0
                if self.inflight.pending or (free > 0 and not idle and not waiting):
                    # Acks always carry a fetch for the free slots: one round trip.
                    fetch_n = self.admission.admit(free) if free > 0 and not waiting else 0
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
                        wait_n = self.admission.admit(free) if self.broker.waits_with_step else 0
                        timeout_s = block_s(res, self.settings.idle_block_s)
                        wake = asyncio.create_task(self._wait(timeout_s, wait_n))
                    waiters.append(wake)
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                waiters[0].cancel()
                if recheck is not None:
                    idle = not recheck.done()
                    recheck.cancel()
        finally:
            if wake is not None:
                wake.cancel()
                # A cancelled BLPOP closes its connection; never let that stall shutdown.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(wake, 2.0)

    def _may_hold(self) -> int:
        """Jobs this worker may hold now: its concurrency, plus its fetch-ahead while
        jobs are short. Never with per-type caps (a job waiting for a slot would count
        against its type's cap) or durable acks (what a failover re-runs stays at the
        concurrency)."""
        ahead = self.settings.fetch_ahead
        if ahead is None:
            ahead = self.settings.concurrency
        short = self.recent_job_s is not None and self.recent_job_s <= FETCH_AHEAD_MAX_JOB_S
        if not short or self.type_caps or self.durable.replicas > 0:
            ahead = 0
        return self.settings.concurrency + ahead

    async def _wait(self, timeout_s: float, fetch_n: int) -> StepResult | bool:
        """Wait for a wake token; with ``fetch_n``, the step that follows it too."""
        if fetch_n <= 0:
            return await self.broker.wait_for_wake(self.plan, timeout_s)
        self.step_calls += 1
        metrics.ROUND_TRIPS.labels(op="step").inc()
        res = await self.broker.wait_then_step(
            self.plan,
            timeout_s,
            self.id,
            fetch_n,
            self.rng.random(),
            caps=self.inflight.free_caps(self.type_caps),
            pod_name=self.settings.pod_name,
        )
        # Started here, in the wait's own task: handed to the dispatcher first, a job
        # that an idle worker was waiting for would start two event-loop passes later.
        self._took(res, [])
        return res

    async def _waited(
        self, wake: Wait, wait_n: int, idle: bool, res: StepResult | None
    ) -> tuple[bool, StepResult | None]:
        """What a finished wait changes: (idle, the latest step result)."""
        err = wake.exception() if not wake.cancelled() else None
        if wake.cancelled() or err is not None:
            if err is not None:
                metrics.REDIS_ERRORS.labels(op="wait").inc()
                log.warning("Blocking wait failed", extra={"error": repr(err)})
                await self._back_off()
            return False, res
        got = wake.result()
        if not isinstance(got, StepResult):
            return False, res  # woken (or timed out): fetch now
        self._retry_s = 0.05  # its jobs were started by the wait itself
        return len(got.jobs) < wait_n, got

    async def _end_wait(self, wake: Wait) -> None:
        """Shutdown: end the wait now. Its step still runs; what it leased is handed back."""
        deadline = time.monotonic() + INTERRUPT_WAIT_S
        while not wake.done() and time.monotonic() < deadline:
            # CLIENT UNBLOCK misses a BLPOP that Redis has not read yet: try again.
            with contextlib.suppress(Exception):
                await self.broker.interrupt_wait()
            await asyncio.wait([wake], timeout=0.05)
        if not wake.done():
            wake.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(wake, 2.0)

    async def _back_off(self) -> None:
        await asyncio.sleep(self._retry_s)
        self._retry_s = min(self._retry_s * 2, 5.0)

    async def _exchange(self, fetch_n: int) -> StepResult | None:
        """Send pending acks and fetch; on a Redis failure keep the acks for the next try."""
        ops, self.inflight.pending = self.inflight.pending, []
        self.step_calls += 1
        metrics.ROUND_TRIPS.labels(op="step").inc()
        try:
            res = await self.broker.step(
                self.plan,
                self.id,
                ops,
                fetch_n,
                self.rng.random(),
                caps=self.inflight.free_caps(self.type_caps),
                pod_name=self.settings.pod_name,
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.inflight.pending = ops + self.inflight.pending
            metrics.REDIS_ERRORS.labels(op="step").inc()
            log.warning(
                "Redis unavailable, backing off",
                extra={"error": repr(exc), "retry_in_s": self._retry_s},
            )
            await self._back_off()
            return None
        self._retry_s = 0.05
        self.durable.note(res.confirmed)
        self._took(res, ops)
        return res

    async def _confirm(self) -> None:
        """Durable acks: wait (WAIT's timeout at a time) until the replicas hold them."""
        try:
            self.durable.note(await self.broker.confirm(self.plan))
        except Exception as exc:
            if not is_transient(exc):
                raise
            metrics.REDIS_ERRORS.labels(op="step").inc()
            await self._back_off()

    def _took(self, res: StepResult, ops: list[FinishOp]) -> None:
        """A step's reply: acks reported, fetched jobs started (handed back when draining)."""
        if res.drained != self.drain_requested:
            self.drain_requested = res.drained
            report_drain(res.drained, self.settings.pod_name)
        report_acks(ops, res, self.events)
        for fetched in res.jobs:
            if self.draining:
                # Leased by a wait that ended at shutdown: back to the front of its
                # band without counting a delivery (the next exchange sends it).
                self.inflight.pending.append(released(fetched))
            else:
                self._start(fetched, res.now_ms / 1000)
        # Once per round trip, not per job: the acks just sent and the jobs just
        # started are exactly the changes since the last write.
        metrics.IN_FLIGHT.set(len(self.inflight))

    def _start(self, fetched: Fetched, started_at: float) -> None:
        """``started_at`` is Redis time, like every timestamp the operator compares."""
        active = Running(
            queue=fetched.queue,
            id=fetched.id,
            token=fetched.token,
            type=fetched.type or "?",
            started_at=started_at,
        )
        self.inflight.start(active)
        self.events.started(fetched, started_at)
        active.task = asyncio.create_task(self._run_job(fetched, active), name=f"job-{fetched.id}")
