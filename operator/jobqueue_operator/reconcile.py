"""One pass of a JobQueue's loop: parse, observe, decide, act, report.

Framework-free so it reads top to bottom; ``handlers.py`` runs it from a kopf
daemon every ``pollingIntervalSeconds``. Every failure becomes a
:class:`~jobqueue_operator.status.Problem` (a condition, an Event on change)
and the loop goes on, so fixing the spec, creating the Deployment or bringing
Redis back is picked up on the next tick without a restart.

State kept between ticks (the last scale times, the failure count) starts from
the JobQueue's status, which is where it is also written: a restarted operator
keeps its cooldowns.

**Busy-aware scale-down.** Right before ``/scale`` is lowered the loop lists
the target's Pods, lets :func:`~jobqueue_operator.victims.choose_victims` pick the
ones to go from the worker heartbeats, and writes a low
``pod-deletion-cost`` on those and a high one on the busy survivors, once. On a
later tick, when the ReplicaSet has acted (or after :data:`SETTLE_S`), it records
which Pods actually went and removes the annotations again: deletion cost is
meant to be set right before a scale-down, not kept up to date (anchors §1.3, §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from jobqueue_operator import metrics
from jobqueue_operator import status as status_mod
from jobqueue_operator.kube import Kube, KubeError, ObjectRef, SecretError
from jobqueue_operator.models import (
    PAUSED_ANNOTATION,
    EffectiveSpec,
    InvalidSpecError,
    JobQueueSpec,
    resolve,
)
from jobqueue_operator.observation import CounterWindow
from jobqueue_operator.observe import (
    DrainError,
    DrainTarget,
    Expansion,
    MetricsUnavailableError,
    PatternCache,
    QueueSource,
    RedisPools,
    endpoint_for,
    queue_samples,
    read,
)
from jobqueue_operator.policy import (
    Action,
    MetricsMissing,
    Observation,
    Reason,
    decide,
)
from jobqueue_operator.redis_spec import secret_refs
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status import Problem, Tick, effective_record
from jobqueue_operator.victims import choose_victims

log = logging.getLogger("jobqueue_operator")

DEFAULT_INTERVAL_S = 5.0
#: How long a conflict check (HPA/JobQueue lists) and a Secret read stay fresh. Both
#: change rarely; re-reading them every tick would cost two lists and a get per
#: JobQueue per poll. A change of target or Secret reference re-reads at once.
REFRESH_S = 30.0
#: The HPAs of a namespace are listed this often (one LIST shared by its JobQueues).
HPA_REFRESH_S = 10.0
#: A status whose decision did not change (only the queue sample and the messages
#: that quote it moved, :func:`status.same_decision`) is rewritten this often.
STATUS_REFRESH_S = 30.0
#: How long after a scale-down the loop waits for the ReplicaSet to remove the
#: Pods before it records what went and removes the deletion costs anyway.
SETTLE_S = 60.0
#: A drain entry outlives the settle window, so one left by a dead operator goes too.
DRAIN_TTL_S = SETTLE_S + 30.0
#: The most Pod names listed in ``status.podSelection`` per list.
MAX_LISTED_PODS = 50


@dataclass
class PodSelection:
    """A scale-down whose Pods were chosen and annotated, until it has settled."""

    at: float
    from_replicas: int
    to_replicas: int
    chosen: tuple[str, ...]
    protected: tuple[str, ...]
    annotated: tuple[str, ...]
    before: tuple[str, ...]
    note: str = ""
    #: Listed in the queues' drain hashes (scaleDown.drainChosenPods), until settled.
    drained: tuple[str, ...] = ()

    def record(self, *, removed: Sequence[str] | None = None) -> dict[str, Any]:
        """``status.podSelection``; ``removed`` is known only once it settled."""
        out: dict[str, Any] = {
            "time": status_mod.to_rfc3339(self.at),
            "fromReplicas": self.from_replicas,
            "toReplicas": self.to_replicas,
            "chosenPods": list(self.chosen[:MAX_LISTED_PODS]),
            "protectedPods": list(self.protected[:MAX_LISTED_PODS]),
            "drainRequested": list(self.drained[:MAX_LISTED_PODS]),
            "settled": removed is not None,
            "message": self.note,
            # null removes the previous selection's list (the status is merge-patched)
            "removedPods": None,
        }
        if removed is not None:
            out["removedPods"] = list(removed[:MAX_LISTED_PODS])
            unexpected = sorted(set(removed) - set(self.chosen))
            spared = sorted(set(self.chosen) - set(removed))
            if unexpected:
                text = f"the ReplicaSet removed {', '.join(unexpected)}, which were not chosen"
            elif spared:
                text = f"chosen but still running: {', '.join(spared)}"
            else:
                text = "the ReplicaSet removed exactly the chosen Pods"
            out["message"] = "; ".join(filter(None, [text, self.note]))
        return out

    @classmethod
    def from_status(cls, raw: object) -> PodSelection | None:
        """An unsettled selection a previous operator left, so its annotations get removed."""
        if not isinstance(raw, Mapping) or raw.get("settled", True):
            return None
        at = status_mod.from_rfc3339(raw.get("time"))
        chosen = tuple(str(n) for n in raw.get("chosenPods") or [])
        protected = tuple(str(n) for n in raw.get("protectedPods") or [])
        return cls(
            at=at or 0.0,
            from_replicas=int(raw.get("fromReplicas") or 0),
            to_replicas=int(raw.get("toReplicas") or 0),
            chosen=chosen,
            protected=protected,
            annotated=chosen + protected,
            before=chosen + protected,
            note=str(raw.get("message") or ""),
            drained=tuple(str(n) for n in raw.get("drainRequested") or []),
        )


@dataclass(frozen=True, order=True)
class Claim:
    """Something that scales a Deployment: a JobQueue (the older one keeps it) or an HPA."""

    created: str  # RFC 3339, sorts in time order
    name: str
    kind: str = "JobQueue"
    target: str = ""  # the Deployment, where the claim comes from a namespace-wide list


#: (namespace, Deployment) → the JobQueues that scale it, read from the operator's
#: in-memory index of its JobQueue watch (``handlers.py``): no API request.
ClaimsOn = Callable[[str, str], Iterable[Claim]]


def no_claims(namespace: str, target: str) -> Iterable[Claim]:
    """For a loop run outside kopf (tests, the simulator): nobody else claims anything."""
    return ()


def conflict(me: Claim, target: str, claims: Iterable[Claim]) -> str | None:
    """Why ``me`` must not scale ``target``: an HPA scales it, or an older JobQueue does.

    The oldest JobQueue (creation time, then name) keeps the target, so exactly one
    of several claimants acts and the choice survives operator restarts.
    """
    older: list[Claim] = []
    for claim in claims:
        if claim.kind != "JobQueue":
            return f"{claim.kind} {claim.name} already scales {target}"
        if claim < me:
            older.append(claim)
    if older:
        return f"JobQueue {min(older).name} already scales {target}"
    return None


@dataclass
class Context:
    """What every loop shares: the API client, the Redis pools, the settings, the clock."""

    kube: Kube
    pools: RedisPools
    settings: OperatorSettings
    clock: Callable[[], float] = time.time
    #: Where the scaling defaults in ``settings`` come from (``status.effective``).
    defaults_source: str = "operator environment"
    #: namespace → (read at, HPA claims): one LIST per namespace per HPA_REFRESH_S, shared
    #: by every loop there. (A watch would be cheaper still, but kopf holds every handler
    #: until an index's first list succeeds, so a missing HPA right would stop the whole
    #: operator instead of showing a condition on the JobQueues.)
    _hpas: dict[str, tuple[float, list[Claim]]] = field(default_factory=dict)
    _hpa_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def hpa_claims(self, namespace: str, now: float) -> list[Claim]:
        """The HPAs of ``namespace`` as claims on their Deployments (raises KubeError)."""
        lock = self._hpa_locks.setdefault(namespace, asyncio.Lock())
        async with lock:  # 1,000 loops starting together list once, not 1,000 times
            cached = self._hpas.get(namespace)
            if cached is not None and now - cached[0] < HPA_REFRESH_S:
                return cached[1]
            claims = [
                Claim("", name, kind="HorizontalPodAutoscaler", target=target)
                for name, target in await self.kube.hpa_targets(namespace)
            ]
            self._hpas[namespace] = (now, claims)
            return claims


@dataclass
class Loop:
    """The loop of one JobQueue."""

    ctx: Context
    namespace: str
    name: str
    last_up: float | None = None
    last_down: float | None = None
    failures: int = 0
    previous_status: dict[str, Any] = field(default_factory=dict)
    selection: PodSelection | None = None
    #: The previous poll's counters, for the arrival rate (memory only: a restart
    #: waits one tick) and when anything was last waiting, running or busy.
    _counters: CounterWindow = field(default_factory=CounterWindow)
    _last_busy: float | None = None
    _requests: tuple[str, float, tuple[float | None, float | None]] | None = None
    _patterns: PatternCache = field(default_factory=PatternCache)
    #: The last expansion of spec.weightedQueues (for status.queueDiscovery).
    discovery: Expansion | None = None
    _announced: str | None = None
    claims_on: ClaimsOn = no_claims
    _status_written_at: float | None = None  # memory only: a restart writes at once
    #: Where drain requests go (known after the first poll) and Pods to take off again.
    _drain: DrainTarget | None = None
    _undrain: set[str] = field(default_factory=set)
    #: (Secret name, key) -> (read at, value); re-read every REFRESH_S so rotation is seen.
    _secrets: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    #: This tick's replicas came from the namespace's Deployment watch, not /scale.
    _replicas_watched: bool = False

    @classmethod
    def from_status(
        cls,
        ctx: Context,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        claims_on: ClaimsOn = no_claims,
    ) -> Loop:
        """Resume from what a previous operator (or this one) wrote into status."""
        return cls(
            ctx,
            namespace,
            name,
            last_up=status_mod.from_rfc3339(status.get("lastScaleUpTime")),
            last_down=status_mod.from_rfc3339(status.get("lastScaleDownTime")),
            failures=int(status.get("consecutiveFailures") or 0),
            previous_status=dict(status),
            selection=PodSelection.from_status(status.get("podSelection")),
            claims_on=claims_on,
        )

    @property
    def owner(self) -> str:
        """The key of this JobQueue in the Redis pools."""
        return f"{self.namespace}/{self.name}"

    async def tick(self, body: Mapping[str, Any]) -> float:
        """Run one pass; returns the seconds to sleep before the next one."""
        started = time.monotonic()
        tick = await self._run(body)
        await self._report(body, tick)
        metrics.LOOP_SECONDS.labels(self.namespace, self.name).observe(time.monotonic() - started)
        return _interval(body)

    def close(self) -> None:
        """The JobQueue is gone or the operator stops: release its pool, drop its series."""
        self.ctx.pools.release(self.owner)
        metrics.forget(self.namespace, self.name)

    async def _run(self, body: Mapping[str, Any]) -> Tick:
        now = self.ctx.clock()
        meta = body.get("metadata", {})
        base = Tick(
            now=now,
            generation=meta.get("generation"),
            consecutive_failures=self.failures,
            last_scale_up=self.last_up,
            last_scale_down=self.last_down,
        )
        # 1. parse
        parsed = self._parse(body, base)
        if isinstance(parsed, Tick):
            return parsed
        spec, effective, base = parsed
        # 2. the target exists and nobody else scales it
        base = await self._check_target(base, meta.get("creationTimestamp", ""))
        if base.problem is not None or base.current_replicas is None:
            return base
        current = base.current_replicas
        if self.selection is not None:
            base = await self._settle(base, spec.scale_target_ref.name)
        # 3. observe
        observation = await self._observe(spec)
        if isinstance(observation, Problem):
            return _with(base, problem=observation)
        await self._withdraw_drains()
        if self.discovery is not None:
            base = _with(base, queue_discovery=_discovery_record(self.discovery))
        if isinstance(observation, Observation):
            observation = self._with_rates(observation, now)
            if _resource_triggers(effective):
                observation = await self._with_requests(observation, base.target, now)
        # 4. decide. A stamp from status written by a clock ahead of ours (another
        # node, a clock stepped back) counts as now, once, instead of freezing scaling.
        self.last_up, self.last_down = (
            None if t is None else min(t, now) for t in (self.last_up, self.last_down)
        )
        decision = decide(effective, observation, current, self.last_up, self.last_down, now)
        if decision.desired != current and self._replicas_watched:
            # About to write: decide from /scale itself, not from the watch's copy,
            # so a change the watch has not delivered yet cannot skew the step.
            fresh = await self._scale_replicas(spec.scale_target_ref.name)
            if isinstance(fresh, Problem):
                return _with(base, problem=fresh)
            if fresh != current:
                current = fresh
                base = _with(base, current_replicas=fresh)
                decision = decide(
                    effective, observation, current, self.last_up, self.last_down, now
                )
        tick = _with(base, decision=decision, consecutive_failures=self.failures)
        if isinstance(observation, Observation):
            tick = _with(tick, observation=observation)
        else:
            tick = _with(tick, metrics_error=observation.error)
        # 5. act, only on a change
        if decision.desired != current:
            if decision.desired < current and isinstance(observation, Observation):
                tick = await self._select_pods(
                    tick,
                    spec.scale_target_ref.name,
                    observation,
                    current,
                    decision.desired,
                    drain=spec.scale_down.drain_chosen_pods,
                )
            elif self.selection is not None and self.selection.drained:
                # Scaling up again before the scale-down settled: Pods the ReplicaSet
                # has not removed yet must fetch again now, not after SETTLE_S.
                self._undrain.update(self.selection.drained)
                self.selection.drained = ()
                await self._withdraw_drains()
            tick = await self._act(tick, spec.scale_target_ref.name, current, decision.desired, now)
        return tick

    async def _select_pods(
        self,
        tick: Tick,
        target: str,
        obs: Observation,
        current: int,
        desired: int,
        *,
        drain: bool,
    ) -> Tick:
        """Choose the Pods to go and annotate them, right before ``/scale`` is lowered.

        Best effort: if the Pods cannot be listed or annotated, the scale-down still
        happens (the policy has already kept the busy workers' count), and the
        reason is in ``status.podSelection.message``.
        """
        kube = self.ctx.kube
        try:
            pods = await kube.list_target_pods(self.namespace, target)
        except KubeError as exc:
            metrics.API_ERRORS.labels(self.namespace, self.name, "pods").inc()
            log.warning("JobQueue %s: cannot choose the Pods to remove: %s", self.owner, exc)
            selection = PodSelection(tick.now, current, desired, (), (), (), (), str(exc))
            return _with(tick, pod_selection=selection.record(removed=[]))
        plan = choose_victims(pods, obs.worker_loads, current - desired)
        annotated, problems = [], []
        if self.selection is not None:  # an earlier choice that has not settled yet
            for pod in set(self.selection.annotated) - set(plan.costs):
                with contextlib.suppress(KubeError):
                    await kube.set_deletion_cost(self.namespace, pod, None)
            self._undrain.update(set(self.selection.drained) - set(plan.victims))
        for pod, cost in plan.costs.items():
            try:
                await kube.set_deletion_cost(self.namespace, pod, cost)
                annotated.append(pod)
            except KubeError as exc:
                problems.append(str(exc))
        if problems:
            metrics.API_ERRORS.labels(self.namespace, self.name, "pods").inc()
        drained: tuple[str, ...] = ()
        if drain and plan.victims and self._drain is not None:
            try:
                await self._drain.request(plan.victims, tick.now, ttl_s=DRAIN_TTL_S)
                drained = plan.victims
                self._undrain.difference_update(drained)
            except DrainError as exc:
                problems.append(f"drain request failed: {exc}")
        note = "; ".join(filter(None, [plan.note, *problems[:3]]))
        self.selection = PodSelection(
            at=tick.now,
            from_replicas=current,
            to_replicas=desired,
            chosen=plan.victims,
            protected=plan.protected,
            annotated=tuple(annotated),
            before=tuple(p.name for p in pods if not p.terminating),
            note=note,
            drained=drained,
        )
        log.info(
            "JobQueue %s: scaling %s down to %d; chosen to go: %s; kept busy: %s",
            self.owner,
            target,
            desired,
            ", ".join(plan.victims) or "-",
            ", ".join(plan.protected) or "-",
        )
        return _with(tick, pod_selection=self.selection.record())

    async def _withdraw_drains(self) -> None:
        """Take settled or superseded Pods off the drain hashes (retried every tick)."""
        if not self._undrain or self._drain is None:
            return
        pods = sorted(self._undrain)
        try:
            await self._drain.withdraw(pods)
        except DrainError as exc:
            log.warning(
                "JobQueue %s: could not withdraw the drain of %s: %s", self.owner, pods, exc
            )
            return
        self._undrain.difference_update(pods)

    async def _settle(self, base: Tick, target: str) -> Tick:
        """After a scale-down: which Pods went, and remove the deletion costs again.

        Settled once no more Pods run than the scale-down asked for, or after
        :data:`SETTLE_S` (a Pod stuck in termination, a later scale-up).
        """
        selection = self.selection
        assert selection is not None
        try:
            pods = await self.ctx.kube.list_target_pods(self.namespace, target)
        except KubeError:
            metrics.API_ERRORS.labels(self.namespace, self.name, "pods").inc()
            return base
        live = {p.name for p in pods if not p.terminating}
        if len(live) > selection.to_replicas and base.now - selection.at < SETTLE_S:
            return base
        for pod in selection.annotated:
            if pod in live:
                try:
                    await self.ctx.kube.set_deletion_cost(self.namespace, pod, None)
                except KubeError:
                    metrics.API_ERRORS.labels(self.namespace, self.name, "pods").inc()
                    return base  # try again next tick; the annotation must not stay
        removed = [name for name in selection.before if name not in live]
        self._undrain.update(selection.drained)
        self.selection = None
        log.info("JobQueue %s: scale-down settled; removed: %s", self.owner, removed)
        return _with(base, pod_selection=selection.record(removed=removed))

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

    async def _with_requests(self, obs: Observation, target: str | None, now: float) -> Observation:
        """The worker container's requests, re-read every :data:`REFRESH_S` (rarely changes).

        A failed read leaves the triggers without a reference, so they neither
        scale up nor block a scale-down on this tick (the message says "no data").
        """
        assert target is not None
        cached = self._requests
        if cached is None or cached[0] != target or now - cached[1] >= REFRESH_S:
            try:
                found = await self.ctx.kube.get_worker_requests(self.namespace, target)
            except KubeError:
                metrics.API_ERRORS.labels(self.namespace, self.name, "read").inc()
                return obs
            cached = self._requests = (target, now, found)
        cpu, memory = cached[2]
        return replace(obs, cpu_request_cores=cpu, memory_request_bytes=memory)

    def _parse(
        self, body: Mapping[str, Any], base: Tick
    ) -> tuple[JobQueueSpec, EffectiveSpec, Tick] | Tick:
        """The live spec with every default resolved, or a tick carrying InvalidSpec."""
        meta = body.get("metadata", {})
        try:
            spec = JobQueueSpec.model_validate(body.get("spec") or {})
            paused = spec.paused or meta.get("annotations", {}).get(PAUSED_ANNOTATION) == "true"
            effective = resolve(spec, self.ctx.settings.scaling_defaults(), paused=paused)
        except (ValidationError, InvalidSpecError) as exc:
            return _with(base, problem=Problem("InvalidSpec", _short(exc)))
        return (
            spec,
            effective,
            _with(
                base,
                target=spec.scale_target_ref.name,
                paused=effective.paused,
                min_replicas=effective.min_replicas,
                max_replicas=effective.max_replicas,
                effective=effective_record(effective, self.ctx.defaults_source),
            ),
        )

    async def _check_target(self, base: Tick, created: str) -> Tick:
        """The target's replicas, or the reason it cannot be scaled (missing, conflict)."""
        target = base.target
        assert target is not None
        watched = self.ctx.kube.watched_replicas(self.namespace, target)
        self._replicas_watched = watched is not None
        current = watched if watched is not None else await self._scale_replicas(target)
        if isinstance(current, Problem):
            return _with(base, problem=current)
        try:
            hpas = await self.ctx.hpa_claims(self.namespace, base.now)
        except KubeError as exc:
            metrics.API_ERRORS.labels(self.namespace, self.name, "read").inc()
            return _with(base, problem=Problem("KubernetesAPIError", str(exc)))
        base = _with(base, current_replicas=current)
        claims = [
            *self.claims_on(self.namespace, target),
            *(hpa for hpa in hpas if hpa.target == target),
        ]
        found = conflict(Claim(created, self.name), target, claims)
        if found is not None:
            return _with(base, problem=Problem("TargetConflict", f"{found}; refusing to act"))
        return base

    async def _scale_replicas(self, target: str) -> int | Problem:
        """``spec.replicas`` read through ``/scale``, or why the tick cannot go on."""
        try:
            current = await self.ctx.kube.get_replicas(self.namespace, target)
        except KubeError as exc:
            metrics.API_ERRORS.labels(self.namespace, self.name, "read").inc()
            return Problem("KubernetesAPIError", str(exc))
        if current is None:
            text = f"Deployment {target} does not exist in {self.namespace}"
            return Problem("TargetNotFound", text)
        return current

    async def _observe(self, spec: JobQueueSpec) -> Observation | MetricsMissing | Problem:
        secrets: dict[str, str] = {}
        try:
            for role, (name, key) in secret_refs(spec.redis).items():
                secrets[role] = await self._secret_value(name, key)
        except SecretError as exc:
            return Problem("SecretNotFound", str(exc))
        endpoint = endpoint_for(spec.redis, secrets.get("password"), secrets)
        client = self.ctx.pools.client(self.owner, endpoint)
        try:
            expansion = await self._patterns.expand(
                client,
                _sources(spec),
                max_queues=spec.queue_discovery.max_queues,
                refresh_every=spec.queue_discovery.refresh_every_polls,
                timeout_s=endpoint.timeout_s,
            )
            self.discovery = expansion if spec.weighted_queues else None
            queues = tuple(q.name for q in expansion.queues)
            if (
                self._drain is None
                or self._drain.client is not client
                or self._drain.queues != queues
            ):
                self._drain = DrainTarget(client, queues, endpoint.display(), endpoint.timeout_s)
            observation, per_queue = await read(
                client,
                [q.name for q in expansion.queues],
                display=endpoint.display(),
                timeout_s=endpoint.timeout_s,
                weights={q.name: q for q in expansion.queues},
            )
        except MetricsUnavailableError as exc:
            self.failures += 1
            metrics.REDIS_ERRORS.labels(self.namespace, self.name).inc()
            return MetricsMissing(self.failures, str(exc))
        self.failures = 0
        metrics.set_queue_gauges(self.namespace, self.name, queue_samples(per_queue))
        return observation

    async def _secret_value(self, name: str, key: str) -> str:
        now = self.ctx.clock()
        cached = self._secrets.get((name, key))
        if cached is not None and now - cached[0] < REFRESH_S:
            return cached[1]
        value = await self.ctx.kube.read_secret_key(self.namespace, name, key)
        self._secrets[(name, key)] = (now, value)
        return value

    async def _act(self, tick: Tick, target: str, current: int, desired: int, now: float) -> Tick:
        try:
            await self.ctx.kube.set_replicas(self.namespace, target, desired)
        except KubeError as exc:
            metrics.API_ERRORS.labels(self.namespace, self.name, "scale").inc()
            return _with(tick, decision=None, problem=Problem("ScaleFailed", str(exc)))
        up = desired > current
        if up:
            self.last_up = now
        else:
            self.last_down = now
        metrics.SCALE_ACTIONS.labels(self.namespace, self.name, "up" if up else "down").inc()
        assert tick.decision is not None
        log.info(
            "Scaled Deployment %s of JobQueue %s from %d to %d (%s)",
            target,
            self.owner,
            current,
            desired,
            tick.decision.reason.value,
        )
        return _with(tick, last_scale_up=self.last_up, last_scale_down=self.last_down)

    async def _report(self, body: Mapping[str, Any], tick: Tick) -> None:
        new_status = status_mod.build(self.previous_status, tick)
        written = self._status_written_at
        # Only the queue sample moved: no PATCH until STATUS_REFRESH_S has passed.
        # With many JobQueues that removes most status writes (BENCHMARKS.md).
        unchanged = (
            written is not None
            and tick.now - written < STATUS_REFRESH_S
            and status_mod.same_decision(new_status, self.previous_status)
        )
        if not unchanged:
            try:
                await self.ctx.kube.patch_status(self.namespace, self.name, new_status)
                self.previous_status = new_status
                self._status_written_at = tick.now
            except KubeError:
                metrics.API_ERRORS.labels(self.namespace, self.name, "status").inc()
        await self._events(body, tick)
        self._gauges(tick)

    async def _events(self, body: Mapping[str, Any], tick: Tick) -> None:
        meta = body.get("metadata", {})
        ref = ObjectRef(self.namespace, self.name, meta.get("uid"))
        decision = tick.decision
        if decision is not None and decision.action is not Action.HOLD and tick.problem is None:
            reason = {
                Action.SCALE_UP: "ScaledUp",
                Action.SCALE_DOWN: "ScaledDown",
            }[decision.action]
            if decision.reason is Reason.FALLBACK:
                reason = "ScaledToFallback"
            text = (
                f"Scaled Deployment {tick.target} from {tick.current_replicas} to "
                f"{decision.desired}: {decision.reason.value}: {decision.message}"
            )
            await self.ctx.kube.post_event(ref, reason, text, warning=False)
        # Warnings only when the trouble changes, not on every tick of an outage.
        trouble = None
        if tick.problem is not None:
            trouble = (tick.problem.reason, tick.problem.message)
        elif tick.metrics_error is not None:
            trouble = ("MetricsUnavailable", tick.metrics_error)
        key = trouble[0] if trouble else None
        if key != self._announced:
            if trouble is not None:
                await self.ctx.kube.post_event(ref, trouble[0], trouble[1], warning=True)
            elif self._announced is not None:
                await self.ctx.kube.post_event(
                    ref, "Recovered", f"Recovered from {self._announced}", warning=False
                )
            self._announced = key

    def _gauges(self, tick: Tick) -> None:
        labels = (self.namespace, self.name)
        if tick.observation is not None:
            metrics.QUEUE_DEPTH.labels(*labels).set(tick.observation.depth)
            metrics.OLDEST_AGE.labels(*labels).set(tick.observation.oldest_age_s)
            metrics.IN_FLIGHT.labels(*labels).set(tick.observation.in_flight)
            metrics.DEAD_JOBS.labels(*labels).set(tick.observation.dead)
        if tick.current_replicas is not None:
            metrics.CURRENT_REPLICAS.labels(*labels).set(tick.current_replicas)
        if tick.decision is not None:
            metrics.DESIRED_REPLICAS.labels(*labels).set(tick.decision.desired)
        if tick.min_replicas is not None and tick.max_replicas is not None:
            metrics.MIN_REPLICAS.labels(*labels).set(tick.min_replicas)
            metrics.MAX_REPLICAS.labels(*labels).set(tick.max_replicas)


def _discovery_record(found: Expansion) -> dict[str, Any]:
    """``status.queueDiscovery``: what the patterns matched and what the cap left out."""
    return {
        "watchedQueues": len(found.queues),
        "matchedQueues": found.matched,
        "truncated": found.truncated,
        "scanComplete": found.complete,
        "queues": [q.name for q in found.queues[:MAX_LISTED_PODS]],
    }


def _sources(spec: JobQueueSpec) -> tuple[QueueSource, ...]:
    """``queues`` (weight 1) and ``weightedQueues``; a weighted entry overrides a plain name."""
    weighted = {w.name: w for w in spec.weighted_queues or [] if w.name is not None}
    out = [
        QueueSource(name=q)
        if q not in weighted
        else QueueSource(
            name=q,
            weight=weighted[q].weight,
            priority=weighted[q].priority,
            reserved=weighted[q].reserved_replicas,
        )
        for q in spec.queues
    ]
    for w in spec.weighted_queues or []:
        if w.name is not None and w.name in spec.queues:
            continue
        out.append(QueueSource(w.name, w.pattern, w.weight, w.priority, w.reserved_replicas))
    return tuple(out)


def _resource_triggers(spec: EffectiveSpec) -> bool:
    """Whether any CPU or memory trigger is on (only then is the Pod template read)."""
    return any(
        v is not None
        for v in (spec.up_cpu_pct, spec.up_memory_pct, spec.down_cpu_pct, spec.down_memory_pct)
    )


def _with(tick: Tick, **changes: Any) -> Tick:
    return replace(tick, **changes)


def _interval(body: Mapping[str, Any]) -> float:
    """The spec's interval even when the rest of the spec is invalid; 1..300 s."""
    raw = (body.get("spec") or {}).get("pollingIntervalSeconds", DEFAULT_INTERVAL_S)
    try:
        return min(max(float(raw), 1.0), 300.0)
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL_S


def _short(exc: Exception) -> str:
    """A one-paragraph message for a condition; pydantic's errors become one line each."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        return "invalid spec: " + "; ".join(parts)
    return f"invalid spec: {exc}"
