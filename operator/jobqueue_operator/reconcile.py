"""One poll of a JobQueue: parse, gather, decide, act, report.

Framework-free so it reads top to bottom; ``handlers.py`` runs it from a kopf
daemon every ``pollingIntervalSeconds``. Each phase has its module:

1. parse: the live spec with every default resolved (``parse``);
2. gather: every read of Kubernetes and Redis (``gather.Gatherer``);
3. decide: pure. ``policy.decide`` for the replica count and the
   ``scaledown.ScaleDown`` state machine for which Pods go and when a
   scale-down has settled;
4. act: the writes, ``/scale``, deletion costs, drain requests (``act.Actor``);
5. report: status from one typed model, Events, metrics (``report.Reporter``).

The loop knows Kubernetes and Redis only through the ports in ``ports.py``.
Every failure becomes a :class:`~jobqueue_operator.status.Problem` (a
condition, an Event on change) and the loop goes on, so fixing the spec,
creating the target or bringing Redis back is picked up on the next tick
without a restart.

State kept between ticks (the last scale times, the failure count, an
unsettled scale-down) starts from the JobQueue's status, which is where it is
also written: a restarted operator keeps its cooldowns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jobqueue_operator import metrics
from jobqueue_operator.act import Actor
from jobqueue_operator.claims import ClaimsOn, HpaClaims, no_claims
from jobqueue_operator.gather import Gatherer, Queues, Target
from jobqueue_operator.models import EffectiveSpec, JobQueueSpec
from jobqueue_operator.observation import CounterWindow
from jobqueue_operator.parse import SpecCache, interval
from jobqueue_operator.policy import Decision, MetricsMissing, Observation, decide
from jobqueue_operator.ports import KubeError, KubePort, QueuesFor
from jobqueue_operator.report import Reporter
from jobqueue_operator.scaledown import ScaleDown, unreadable
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status import (
    Problem,
    Tick,
    discovery_record,
    from_rfc3339,
)
from jobqueue_operator.status_writes import DirectStatusWrites, StatusWrites
from jobqueue_operator.targets import TargetRef
from jobqueue_operator.victims import PodView, drained_capacity, without_drained

log = logging.getLogger("jobqueue_operator")


@dataclass
class Context:
    """What every loop shares: the ports, the settings, the clock, the HPA cache."""

    kube: KubePort
    #: owner ("namespace/name") → that JobQueue's side of Redis.
    queues_for: QueuesFor
    settings: OperatorSettings
    clock: Callable[[], float] = time.time
    #: Where the scaling defaults in ``settings`` come from (``status.effective``).
    defaults_source: str = "operator environment"
    #: How statuses are written; ``None``: inline, each before its tick returns.
    status_writes: StatusWrites | None = None
    hpas: HpaClaims = field(init=False)
    writes: StatusWrites = field(init=False)

    def __post_init__(self) -> None:
        self.hpas = HpaClaims(self.kube)
        self.writes = self.status_writes or DirectStatusWrites(self.kube.patch_status)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the gather phase read: the target, an unsettled scale-down's Pods, the queues."""

    base: Tick
    target: Target
    pods: list[PodView] | KubeError | None
    queues: Queues | Problem


class Loop:
    """The loop of one JobQueue."""

    def __init__(
        self,
        ctx: Context,
        namespace: str,
        name: str,
        status: Mapping[str, Any] | None = None,
        claims_on: ClaimsOn = no_claims,
    ) -> None:
        """Resume from what a previous operator (or this one) wrote into ``status``."""
        status = status or {}
        self.ctx, self.namespace, self.name = ctx, namespace, name
        self.last_up = from_rfc3339(status.get("lastScaleUpTime"))
        self.last_down = from_rfc3339(status.get("lastScaleDownTime"))
        queues = ctx.queues_for(self.owner)
        self.gather = Gatherer(
            ctx.kube,
            queues,
            ctx.hpas,
            namespace,
            name,
            ctx.clock,
            claims_on,
            failures=int(status.get("consecutiveFailures") or 0),
        )
        self.scale_down = ScaleDown.from_status(
            status.get("podSelection"), status.get("drainingPods"), now=ctx.clock()
        )
        self.act = Actor(ctx.kube, queues, namespace, name)
        self.reporter = Reporter(
            ctx.kube, ctx.writes, namespace, name, previous_status=dict(status)
        )
        #: The previous poll's counters, for the arrival rate (memory only: a restart
        #: waits one tick) and when anything was last waiting, running or busy.
        self._counters = CounterWindow()
        self._specs = SpecCache()
        self._last_busy: float | None = None

    @property
    def owner(self) -> str:
        """The key of this JobQueue in the Redis pools."""
        return f"{self.namespace}/{self.name}"

    async def tick(self, body: Mapping[str, Any]) -> float:
        """Run one pass; returns the seconds to sleep before the next one."""
        started = time.monotonic()
        tick = await self._run(body)
        tick = replace(tick, draining=tuple(sorted(self.scale_down.draining)))
        await self.reporter.report(body, tick)
        metrics.LOOP_SECONDS.labels(self.namespace, self.name).observe(time.monotonic() - started)
        return interval(body)

    def close(self, *, keep_status: bool = False, keep_decision: bool = False) -> None:
        """The JobQueue is gone or the operator stops: release its pool, drop its series.

        Its status not written yet is dropped too, unless ``keep_status``: an
        operator that exits writes what it can before it goes (a new decision
        carries the cooldown stamps the next operator resumes from). With
        ``keep_decision`` (the lease was lost) only a status with a new decision
        is still written: the next leader takes over a lease duration later, and
        the urgent line gets it there first, where a routine refresh could land
        over what the next leader has written.
        """
        self.gather.queues.close()
        if not keep_status:
            key = (self.namespace, self.name)
            self.ctx.writes.forget(key, keep_decision=keep_decision)
        metrics.forget(self.namespace, self.name)

    async def _run(self, body: Mapping[str, Any]) -> Tick:
        now = self.ctx.clock()
        meta = body.get("metadata", {})
        base = Tick(
            now=now,
            generation=meta.get("generation"),
            consecutive_failures=self.gather.failures,
            last_scale_up=self.last_up,
            last_scale_down=self.last_down,
        )
        parsed = self._specs.parse(body, base, self.ctx.settings, self.ctx.defaults_source)
        if isinstance(parsed, Tick):
            return parsed
        spec, effective, base = parsed
        seen = await self._gather(spec, meta.get("creationTimestamp", ""), base)
        if isinstance(seen, Tick):
            return seen
        # An earlier scale-down settles once its Pods went (decide, then act).
        base = seen.base
        if isinstance(seen.pods, list):
            base = await self._settle(base, seen.pods)
        if isinstance(seen.queues, Problem):
            return replace(base, problem=seen.queues)
        drain_first = spec.scale_down.drain_chosen_pods and not effective.paused
        if not drain_first:
            self.scale_down.stop_draining()
        await self.act.withdraw(self.scale_down)
        if seen.queues.expansion is not None:
            base = replace(base, queue_discovery=discovery_record(seen.queues.expansion))
        observation = seen.queues.observation
        if isinstance(observation, Observation):
            observation = self._with_rates(observation, now)
            if _resource_triggers(effective):
                observation = await self.gather.with_requests(
                    observation, spec.scale_target_ref.ref(), now
                )
        decided = await self._decide_count(
            effective, observation, seen.target, base, spec, drain_first=drain_first
        )
        if isinstance(decided, Tick):
            return decided
        tick, current = decided
        decision = tick.decision
        if decision is None:
            return tick
        if drain_first and isinstance(observation, Observation):
            if decision.desired == current and not self.scale_down.draining:
                return tick
            return await self._drain_first(
                tick, spec, observation, decision, current=current, pods=seen.pods
            )
        if drain_first and decision.desired == self.scale_down.capacity(current):
            return tick  # no heartbeats to go by: the drains stay as they are
        return await self._act(tick, spec, observation, current, decision)

    async def _gather(self, spec: JobQueueSpec, created: str, base: Tick) -> Seen | Tick:
        """Every read the tick needs before it decides; a Tick when a problem ends it."""
        target = spec.scale_target_ref.ref()
        found = await self.gather.target(target, created, base.now)
        if isinstance(found, Problem):
            return replace(base, problem=found)
        base = replace(base, current_replicas=found.replicas)
        if found.conflict is not None:
            return replace(base, problem=found.conflict)
        pods = await self.gather.pods(target) if self.scale_down.pending else None
        return Seen(base, found, pods, await self.gather.queue_poll(spec))

    async def _decide_count(
        self,
        effective: EffectiveSpec,
        observation: Observation | MetricsMissing,
        target: Target,
        base: Tick,
        spec: JobQueueSpec,
        *,
        drain_first: bool,
    ) -> tuple[Tick, int] | Tick:
        """The policy's decision, made again from ``/scale`` when the watch's count may lag.

        Drain first, the policy decides on the Pods that fetch: ``/scale`` less
        the drained Pods, whose jobs are neither work for the others nor capacity.
        """
        now = base.now
        # A stamp from status written by a clock ahead of ours (another node, a clock
        # stepped back) counts as now, once, instead of freezing scaling.
        self.last_up, self.last_down = (
            None if t is None else min(t, now) for t in (self.last_up, self.last_down)
        )
        current = target.replicas
        drained = self.scale_down.draining if drain_first else {}
        seen = observation
        if drained and isinstance(observation, Observation):
            seen = without_drained(observation, drained)
        decision = self._decide(effective, seen, drained_capacity(current, drained), now)
        if decision.desired != drained_capacity(current, drained) and target.watched:
            # About to write: decide from /scale itself, not from the watch's copy,
            # so a change the watch has not delivered yet cannot skew the step.
            fresh = await self.gather.fresh_replicas(spec.scale_target_ref.ref())
            if isinstance(fresh, Problem):
                return replace(base, problem=fresh)
            if fresh != current:
                current = fresh
                base = replace(base, current_replicas=fresh)
                decision = self._decide(effective, seen, drained_capacity(current, drained), now)
        tick = replace(base, decision=decision, consecutive_failures=self.gather.failures)
        if drained:
            tick = replace(tick, capacity=drained_capacity(current, drained))
        if isinstance(observation, Observation):
            return replace(tick, observation=observation), current
        return replace(tick, metrics_error=observation.error), current

    async def _drain_first(
        self,
        tick: Tick,
        spec: JobQueueSpec,
        obs: Observation,
        decision: Decision,
        *,
        current: int,
        pods: list[PodView] | KubeError | None,
    ) -> Tick:
        """Drain the Pods to go, remove the drained ones a heartbeat shows idle.

        A scale-up withdraws drains before it raises ``/scale`` (a drained Pod is
        warm). Without the Pods or the drain write (a read-only Redis user) it
        scales as with drain-first off, and ``status.podSelection`` says why.
        """
        target = spec.scale_target_ref.ref()
        if not isinstance(pods, list):
            pods = await self.gather.pods(target)
        if isinstance(pods, KubeError):
            return await self._act(tick, spec, obs, current, decision)
        capacity = self.scale_down.capacity(current)
        if decision.desired > capacity:
            self.scale_down.scaling_up()  # Pods removed but not gone yet fetch again too
        step = self.scale_down.plan(
            pods, obs.worker_loads, replicas=current, desired=decision.desired, now=tick.now
        )
        if await self.act.drain(self.scale_down, step, tick.now) is not None:
            return await self._act(tick, spec, obs, current, decision)
        if step.removal is not None:
            record = await self.act.prepare_scale_down(self.scale_down, step.removal, target)
            tick = replace(tick, pod_selection=record)
        replicas = step.plan.replicas
        if replicas != current:
            failed = await self.act.scale(target, current, replicas, decision.reason.value)
            if failed is not None:
                return replace(tick, decision=None, problem=Problem("ScaleFailed", str(failed)))
        return self._stamp(tick, capacity, decision.desired)

    async def _act(
        self,
        tick: Tick,
        spec: JobQueueSpec,
        observation: Observation | MetricsMissing,
        current: int,
        decision: Decision,
    ) -> Tick:
        """``/scale`` straight to the decision, the Pods of a scale-down chosen first.

        Without drain-first, or when it could not run: Pods drained so far fetch again.
        """
        if self.scale_down.stop_draining():
            await self.act.withdraw(self.scale_down)
        if decision.desired == current:
            return tick
        if decision.desired < current and isinstance(observation, Observation):
            tick = await self._choose_pods(tick, spec, observation, current, decision.desired)
        elif self.scale_down.scaling_up():
            await self.act.withdraw(self.scale_down)
        return await self._scale(tick, spec.scale_target_ref.ref(), current, decision)

    def _decide(
        self,
        effective: EffectiveSpec,
        observation: Observation | MetricsMissing,
        current: int,
        now: float,
    ) -> Decision:
        return decide(effective, observation, current, self.last_up, self.last_down, now)

    async def _settle(self, base: Tick, pods: list[PodView]) -> Tick:
        """After a scale-down: once its Pods went, remove the costs and record what went."""
        live = [p.name for p in pods if not p.terminating]
        cleanup = self.scale_down.settle_due(live, base.now)
        if cleanup is None or not await self.act.remove_costs(cleanup):
            return base
        record = self.scale_down.settled(live)
        log.info("JobQueue %s: scale-down settled; removed: %s", self.owner, record.removed_pods)
        return replace(base, pod_selection=record)

    async def _choose_pods(
        self, tick: Tick, spec: JobQueueSpec, obs: Observation, current: int, desired: int
    ) -> Tick:
        """Choose the Pods to go and annotate them, right before ``/scale`` is lowered."""
        target = spec.scale_target_ref.ref()
        pods = await self.gather.pods(target)
        if isinstance(pods, KubeError):
            log.warning("JobQueue %s: cannot choose the Pods to remove: %s", self.owner, pods)
            return replace(tick, pod_selection=unreadable(tick.now, current, desired, str(pods)))
        choice = self.scale_down.choose(
            pods,
            obs.worker_loads,
            current=current,
            desired=desired,
            now=tick.now,
            drain=spec.scale_down.drain_chosen_pods,
        )
        record = await self.act.prepare_scale_down(self.scale_down, choice, target)
        return replace(tick, pod_selection=record)

    async def _scale(self, tick: Tick, target: TargetRef, current: int, decision: Decision) -> Tick:
        failed = await self.act.scale(target, current, decision.desired, decision.reason.value)
        if failed is not None:
            return replace(tick, decision=None, problem=Problem("ScaleFailed", str(failed)))
        return self._stamp(tick, current, decision.desired)

    def _stamp(self, tick: Tick, before: int, desired: int) -> Tick:
        """Record a change of the capacity (not of ``/scale``) for the cooldowns."""
        if desired > before:
            self.last_up = tick.now
        elif desired < before:
            self.last_down = tick.now
        return replace(tick, last_scale_up=self.last_up, last_scale_down=self.last_down)

    def _with_rates(self, obs: Observation, now: float) -> Observation:
        """Add the rates from the previous poll's counters and the last busy time.

        A restarted operator has neither: it waits one tick for the arrival rate,
        and counts its first poll as busy, so it never scales to zero sooner than
        ``scaleToZeroAfterSeconds`` after it started.
        """
        rates = self._counters.rates(now, obs.counters)
        if obs.depth or obs.in_flight or obs.busy_workers or self._last_busy is None:
            self._last_busy = now
        return replace(
            obs,
            arrival_rate=rates.arrival_rate,
            mean_service_s=rates.mean_service_s,
            last_busy_at=self._last_busy,
        )


def _resource_triggers(spec: EffectiveSpec) -> bool:
    """Whether any CPU or memory trigger is on (only then is the Pod template read)."""
    return any(
        v is not None
        for v in (spec.up_cpu_pct, spec.up_memory_pct, spec.down_cpu_pct, spec.down_memory_pct)
    )
