"""The worker dispatcher's calls: the step (acks + fetch) and the idle wait.

A mixin of :class:`jobqueue_worker.broker.Broker`, kept apart so the broker's
own module holds what the producers and the command line need.

With durable acks (``BrokerSettings.durable_replicas``) every step is followed by
WAIT on the same connection, and the broker turns the dedicated connections off
(the idle wait then carries no step), so no step reaches Redis without its WAIT.

An idle worker waits with BLPOP on its queues' wake lists. On a plain Redis the
wait and the next step go out in ONE write (``wait_then_step``): Redis runs the
step the moment the BLPOP ends, so a job enqueued to an idle worker is leased,
with its fencing token and by the same script as always, without a second round
trip from the worker. A wait that must end early (shutdown) is interrupted with
CLIENT UNBLOCK, which ends it as a timeout would: the step still runs, and any job
it leased comes back in the reply for the worker to hand back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from jobqueue_protocol import keys
from jobqueue_worker import slot_fanout
from jobqueue_worker.broker.stepconn import StepConnection
from jobqueue_worker.wire import (
    BrokerSettings,
    FetchPlan,
    FinishOp,
    StepResult,
    step_args,
    step_result,
)


class DispatchCalls:
    redis: Redis
    limits: BrokerSettings
    cluster: bool
    _blocking: Redis
    _scripts: dict[str, AsyncScript]
    _single: dict[str, tuple[FetchPlan, FetchPlan]]
    _step_conn: StepConnection
    _wait_conn: StepConnection

    async def _evalsha_pipelined(
        self,
        script: AsyncScript,
        calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
        *,
        wait: bool = False,
        on: Redis | None = None,
    ) -> list[Any]:
        raise NotImplementedError

    async def step(
        self,
        plan: FetchPlan,
        worker_id: str,
        finishes: Sequence[FinishOp],
        n_fetch: int,
        rnd: float,
        *,
        caps: Mapping[str, int] | None = None,
        pod_name: str | None = None,
    ) -> StepResult:
        """Apply finished jobs and lease up to ``n_fetch`` new ones: one round trip.

        With ``pod_name``, a Pod the operator listed in a served queue's drain hash
        fetches nothing (``StepResult.drained``); acks still go through.
        """
        if self.cluster and len(plan.queues) > 1:

            async def one_queue(
                sub: FetchPlan, ops: Sequence[FinishOp], want: int, left: Mapping[str, int] | None
            ) -> StepResult:
                return await self.step(sub, worker_id, ops, want, rnd, caps=left, pod_name=pod_name)

            return await slot_fanout.step_each_queue(
                one_queue, self._single, plan, finishes, n_fetch, rnd, caps
            )
        args = step_args(plan, self.limits, worker_id, finishes, n_fetch, rnd, caps, pod_name)
        if self.limits.durable_replicas > 0:
            reply, replicas = await self._evalsha_pipelined(
                self._scripts["step"], [(plan.step_keys, args)], wait=True
            )
            confirmed = int(replicas) >= self.limits.durable_replicas
            return dataclasses.replace(step_result(plan, reply), confirmed=confirmed)
        if self._step_conn.available:
            return step_result(plan, await self._step_conn.call(plan.step_keys, args))
        return step_result(plan, await self._scripts["step"](keys=plan.step_keys, args=args))

    async def confirm(self, plan: FetchPlan) -> bool:
        """Durable acks: have enough replicas caught up with every earlier write?

        WAIT counts the replicas holding this connection's last write, and replication
        is one ordered stream, so a fresh write on whichever connection the pool gives
        covers every step sent before it.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(keys.counters_key(plan.queues[0]), keys.COUNTER_DURABLE_WAITS, 1)
        pipe.execute_command("WAIT", self.limits.durable_replicas, self.limits.durable_timeout_ms)
        _, replicas = await pipe.execute()
        return int(replicas) >= self.limits.durable_replicas

    async def wait_for_wake(self, plan: FetchPlan, timeout_s: float) -> bool:
        """Block until a producer (or a retry, reap, replay) leaves a wake token."""
        wake = [keys.wake_key(q) for q in plan.queues]
        if self.cluster and len(wake) > 1:  # one BLPOP per slot
            return await slot_fanout.wait_for_any(self._blocking.blpop, wake, timeout_s)
        got = await self._blocking.blpop(wake, timeout=max(0.01, timeout_s))
        return got is not None

    @property
    def waits_with_step(self) -> bool:
        """Whether ``wait_then_step`` is available (a plain Redis: direct or TLS)."""
        return self._wait_conn.available

    async def wait_then_step(  # noqa: PLR0917 - step's parameters and the wait's
        self,
        plan: FetchPlan,
        timeout_s: float,
        worker_id: str,
        n_fetch: int,
        rnd: float,
        caps: Mapping[str, int] | None = None,
        pod_name: str | None = None,
    ) -> StepResult:
        """Block on the wake lists up to ``timeout_s``, then step (no acks): one round trip."""
        wake = [keys.wake_key(q) for q in plan.queues]
        args = step_args(plan, self.limits, worker_id, (), n_fetch, rnd, caps, pod_name)
        reply = await self._wait_conn.call_after_wait(wake, timeout_s, plan.step_keys, args)
        return step_result(plan, reply)

    async def interrupt_wait(self) -> bool:
        """End a ``wait_then_step`` now (its step still runs); False if none was waiting."""
        return await self._wait_conn.unblock()
