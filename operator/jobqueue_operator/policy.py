"""The scaling decision, as a pure function.

``decide`` takes the world as arguments (resolved spec, what Redis showed, the
current replica count, the last scale times and ``now``) and returns a
:class:`Decision` that explains itself: the desired count, the action, the
reason and every limit that held it back. No I/O, no clock, no logging: the
tests drive it with tables and hypothesis (``tests/unit/operator/test_policy.py``).

The rules, in order:

1. **Paused**: hold whatever runs now.
2. **Missing data** (Redis unreachable): never scale down because of it. After
   ``fallback.failureThreshold`` failures in a row, raise to ``fallback.replicas``
   if that is more than now (KEDA's ``currentReplicasIfHigher``); otherwise hold.
3. **Scale up** when the depth reaches ``scaleUp.queueDepth`` OR the oldest job's
   age reaches ``scaleUp.queueLatencySeconds``. Aggressive: the step grows with
   the severity, i.e. how far past the threshold the worse signal is
   (≥1× → level 1, ≥2× → level 2, ≥4× → level 3), and is
   ``ceil(level × maxStep / 3)``, so 1, 2, 3 workers with the default maxStep 3.
4. **Scale down** only when the depth is below ``scaleDown.queueDepth`` AND the
   age is below ``scaleDown.queueLatencySeconds``. Conservative: a fixed
   ``scaleDown.step``, never below the number of busy workers, never to zero
   while a job is in flight (unless ``scaleDown.allowDisruption``).
5. Between the two thresholds: the **hysteresis band**, hold.
6. **Cooldowns**: no scale-up within ``scaleUp.cooldownSeconds`` of the last
   scale-up; no scale-down within ``scaleDown.cooldownSeconds`` of the last scale
   in either direction (a fresh scale-up is not undone at once).
7. **Bounds**: the result is always clamped into [min, max]. Bringing a count
   that is outside the bounds back in is not subject to cooldowns.

Beside the thresholds (all optional, see :func:`slo_need`):

* **Scale from zero** (rule 3a): at zero replicas with anything waiting or in
  flight, go straight to the needed count (the SLO/rate count, or one worker
  per ``scaleUp.queueDepth`` waiting jobs, at least 1), with no step and no
  cooldown: nothing runs, so every second is pure wait.
* **SLO / rate sizing** (``spec.slo``): Little's law from the workers' counters,
  ``ceil(λ·S/c + depth·S/(c·maxWait))``; scales up when it needs more than run
  now or when the oldest job is older than ``maxWaitSeconds``, and holds the
  scale-down floor at that count while the oldest job is older than half the SLO.
* **Scale to zero** only when nothing waits, nothing is in flight, no worker is
  busy, and none has been for ``scaleDown.scaleToZeroAfterSeconds``; this holds
  even with ``allowDisruption``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from jobqueue_operator.models import EffectiveSpec


class Action(enum.StrEnum):
    """What the operator does to the target's replica count."""

    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    HOLD = "Hold"


class Reason(enum.StrEnum):
    """Why; CamelCase so it can be a condition or Event reason as is."""

    QUEUE_DEPTH = "QueueDepthHigh"
    QUEUE_LATENCY = "QueueLatencyHigh"
    QUEUE_DRAINED = "QueueDrained"
    WITHIN_BAND = "WithinBand"
    BELOW_MIN = "BelowMinReplicas"
    ABOVE_MAX = "AboveMaxReplicas"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    FALLBACK = "Fallback"
    PAUSED = "Paused"
    SCALE_FROM_ZERO = "ScaleFromZero"
    SLO_DEMAND = "SloDemand"
    CPU_HIGH = "CpuHigh"
    MEMORY_HIGH = "MemoryHigh"
    RESERVED = "ReservedReplicas"


class Limit(enum.StrEnum):
    """A rule that held the decision back from what the signal alone asked for."""

    MIN = "MinReplicas"
    MAX = "MaxReplicas"
    STEP = "MaxStep"
    COOLDOWN = "Cooldown"
    BUSY_WORKERS = "BusyWorkers"
    MISSING_DATA = "MissingData"
    SLO = "LatencySlo"
    RESOURCES = "ResourceUse"
    SCALE_TO_ZERO_DELAY = "ScaleToZeroDelay"


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One worker's heartbeat as the victim choice needs it, keyed by its Pod.

    ``busy_s`` is the summed run time of its in-flight jobs (on Redis's clock):
    the work a removal would throw away or make the worker hand back.
    """

    pod_name: str
    state: str
    active_jobs: int
    busy_s: float = 0.0
    processed: int = 0
    rss_bytes: int = 0
    #: CPU in cores (1.0 = one core busy) if the heartbeat carries it; the
    #: heartbeat format has no such field yet (see docs/operator.md, CPU trigger).
    cpu_cores: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One successful poll, summed over the JobQueue's queues."""

    depth: int
    oldest_age_s: float
    in_flight: int = 0
    busy_workers: int = 0
    delayed: int = 0
    dead: int = 0
    workers: int = 0
    worker_loads: tuple[WorkerLoad, ...] = ()
    #: Jobs enqueued per second since the previous poll (``None`` until two polls).
    arrival_rate: float | None = None
    #: Mean handler time of a finished attempt in seconds (``None`` with no data).
    mean_service_s: float | None = None
    #: When anything last waited, ran or kept a worker busy (the loop's clock);
    #: ``None`` means never seen, so scale-to-zero need not wait.
    last_busy_at: float | None = None
    #: The workers' cumulative counters, summed over the queues (for the rates).
    counters: Counters | None = None
    #: The worker container's CPU (cores) and memory (bytes) request, from the
    #: target's Pod template; the resource triggers count utilisation against them.
    cpu_request_cores: float | None = None
    memory_request_bytes: float | None = None
    #: The largest ``reservedReplicas`` among the queues that have work now: a
    #: floor a high-priority queue claims for itself (``spec.weightedQueues``).
    reserved_floor: int = 0


@dataclass(frozen=True, slots=True)
class Counters:
    """The counters the workers publish (``jobqueue_protocol.keys``), summed over queues."""

    enqueued: int
    finished: int  # completed + failed attempts: what busy_ms is the handler time of
    busy_ms: int


@dataclass(frozen=True, slots=True)
class Rates:
    """What two successive polls' counters say about the queue."""

    arrival_rate: float | None
    mean_service_s: float | None


def rates_between(
    previous: tuple[float, Counters] | None, now: float, current: Counters | None
) -> Rates:
    """Arrival rate and mean service time from two polls' counters (pure).

    The arrival rate needs two polls: a restarted operator waits one tick. The
    service time prefers the last interval's finished attempts and falls back to
    the lifetime mean, so it is known at once, even at zero replicas. A counter
    that went down (a reset, a flushed Redis) gives no rate rather than a
    negative one.
    """
    if current is None:
        return Rates(None, None)
    service = None
    if current.finished > 0:
        service = current.busy_ms / 1000.0 / current.finished
    arrival = None
    if previous is not None:
        then, before = previous
        dt = now - then
        d_enq = current.enqueued - before.enqueued
        d_fin = current.finished - before.finished
        d_busy = current.busy_ms - before.busy_ms
        if dt > 0 and d_enq >= 0:
            arrival = d_enq / dt
        if d_fin > 0 and d_busy >= 0:
            service = d_busy / 1000.0 / d_fin
    return Rates(arrival, service)


@dataclass(frozen=True, slots=True)
class MetricsMissing:
    """A failed poll; ``consecutive_failures`` counts this one."""

    consecutive_failures: int
    error: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one tick; ``message`` is a sentence a person can read."""

    desired: int
    action: Action
    reason: Reason
    limited_by: frozenset[Limit]
    message: str
    severity: int = 0


def decide(  # noqa: PLR0917 - the signature the issue prescribes
    spec: EffectiveSpec,
    observation: Observation | MetricsMissing,
    current_replicas: int,
    last_scale_up: float | None,
    last_scale_down: float | None,
    now: float,
) -> Decision:
    """Decide the replica count for one tick (see the module docstring for the rules)."""
    if spec.paused:
        pinned = spec.paused_replicas
        if pinned is None or pinned == current_replicas:
            return Decision(current_replicas, Action.HOLD, Reason.PAUSED, frozenset(), "paused")
        action = Action.SCALE_UP if pinned > current_replicas else Action.SCALE_DOWN
        return Decision(pinned, action, Reason.PAUSED, frozenset(), f"paused at {pinned} replicas")
    timing = _Cooldowns(spec, last_scale_up, last_scale_down, now)
    if isinstance(observation, MetricsMissing):
        proposal = _on_missing(spec, observation, current_replicas, timing)
    else:
        proposal = _on_observed(spec, observation, current_replicas, timing)
        if observation.reserved_floor > proposal.desired:
            # Like minReplicas, a floor is not subject to cooldowns or steps.
            proposal = _Proposal(
                observation.reserved_floor,
                Reason.RESERVED,
                proposal.limits,
                f"{proposal.message}; a queue with work reserves "
                f"{observation.reserved_floor} replicas",
                proposal.severity,
            )
    return _clamp(spec, current_replicas, proposal)


@dataclass(frozen=True, slots=True)
class Need:
    """The replicas the SLO/rate sizing asks for, and the sum that gave it."""

    count: int
    message: str


def slo_need(spec: EffectiveSpec, obs: Observation) -> Need | None:
    """Little's law plus the backlog, or ``None`` without an SLO or a service time.

    With per-pod concurrency ``c`` and mean service time ``S`` one pod finishes
    ``c/S`` jobs a second. Keeping up with arrivals ``λ`` takes ``λ·S/c`` pods
    (Little's law: ``λ·S`` jobs are in service on average); draining the
    ``depth`` already waiting within ``maxWait`` takes ``depth·S/(c·maxWait)``
    more. The sum is rounded up. Without a measured ``λ`` (first poll) only the
    backlog term counts.
    """
    if spec.slo_max_wait_s is None or not obs.mean_service_s or obs.mean_service_s <= 0:
        return None
    per_pod = spec.concurrency_per_pod / obs.mean_service_s
    rate = obs.arrival_rate or 0.0
    steady = rate / per_pod
    drain = obs.depth / (per_pod * spec.slo_max_wait_s)
    count = max(0, math.ceil(steady + drain - 1e-9))
    return Need(
        count,
        f"SLO {spec.slo_max_wait_s:g}s: arrivals {rate:.2f}/s × {obs.mean_service_s:.2f}s "
        f"/ {spec.concurrency_per_pod} = {steady:.2f} + backlog {obs.depth} → {drain:.2f}: "
        f"{count} pods",
    )


@dataclass(frozen=True, slots=True)
class ResourceSignal:
    """What the CPU and memory triggers say: the count they ask for, or a veto on scale-down."""

    up_to: int | None  # replicas the hotter resource asks for, when past its up threshold
    reason: Reason | None
    veto: str | None  # why a scale-down must wait, when a resource is above its down threshold
    message: str


def resource_use(obs: Observation) -> tuple[float | None, float | None]:
    """Average CPU and memory of the workers in % of the container's request (pure).

    Only workers whose heartbeat carries the value count. CPU is ``None`` until
    the heartbeat carries ``cpu_cores``; memory comes from ``rss_bytes``.
    """
    cpu = [w.cpu_cores for w in obs.worker_loads if w.cpu_cores is not None]
    mem = [w.rss_bytes for w in obs.worker_loads if w.rss_bytes > 0]
    cpu_pct = mem_pct = None
    if cpu and obs.cpu_request_cores:
        cpu_pct = 100.0 * sum(cpu) / len(cpu) / obs.cpu_request_cores
    if mem and obs.memory_request_bytes:
        mem_pct = 100.0 * sum(mem) / len(mem) / obs.memory_request_bytes
    return cpu_pct, mem_pct


def resource_signal(spec: EffectiveSpec, obs: Observation, current: int) -> ResourceSignal:
    """The CPU and memory triggers, like the HPA's utilisation: ``ceil(current × use / target)``.

    A trigger whose data is missing (no request in the Pod template, or no
    heartbeat that reports it) neither scales up nor blocks a scale-down; the
    message says so.
    """
    cpu_pct, mem_pct = resource_use(obs)
    parts, asks, vetoes = [], [], []
    for name, use, up, down, reason in (
        ("CPU", cpu_pct, spec.up_cpu_pct, spec.down_cpu_pct, Reason.CPU_HIGH),
        ("memory", mem_pct, spec.up_memory_pct, spec.down_memory_pct, Reason.MEMORY_HIGH),
    ):
        if up is None and down is None:
            continue
        if use is None:
            parts.append(f"no {name} data")
            continue
        parts.append(f"{name} {use:.0f}%")
        if up is not None and use >= up and current > 0:
            asks.append((max(current + 1, math.ceil(current * use / up - 1e-9)), reason))
        if down is not None and use >= down:
            vetoes.append(f"{name} {use:.0f}% is not below {down:g}%")
    up_to, why = max(asks, default=(None, None))
    return ResourceSignal(up_to, why, "; ".join(vetoes) or None, ", ".join(parts))


def _wake(spec: EffectiveSpec, obs: Observation, need: Need | None) -> _Proposal:
    """From zero straight to the needed count: no step, no cooldown (KEDA #4403)."""
    by_depth = math.ceil(obs.depth / spec.up_depth)
    target = max(1, by_depth, need.count if need else 0)
    text = (
        f"scale from zero: {obs.depth} waiting, {obs.in_flight} in flight; "
        f"{by_depth} by depth (up at {spec.up_depth})"
    )
    if need is not None:
        text += f"; {need.message}"
    return _Proposal(target, Reason.SCALE_FROM_ZERO, frozenset(), f"{text}: {target}")


@dataclass(frozen=True, slots=True)
class _Cooldowns:
    spec: EffectiveSpec
    last_up: float | None
    last_down: float | None
    now: float

    def up_blocked_for(self) -> float:
        """Seconds until a scale-up is allowed (0 when it is)."""
        return _remaining(self.last_up, self.spec.up_cooldown_s, self.now)

    def down_blocked_for(self) -> float:
        """Seconds until a scale-down is allowed; counted from the last scale either way."""
        last = max((t for t in (self.last_up, self.last_down) if t is not None), default=None)
        return _remaining(last, self.spec.down_cooldown_s, self.now)


def _remaining(last: float | None, cooldown_s: float, now: float) -> float:
    if last is None:
        return 0.0
    return max(0.0, last + cooldown_s - now)


@dataclass(frozen=True, slots=True)
class _Proposal:
    desired: int
    reason: Reason
    limits: frozenset[Limit]
    message: str
    severity: int = 0


def _on_missing(
    spec: EffectiveSpec, missing: MetricsMissing, current: int, timing: _Cooldowns
) -> _Proposal:
    failures = missing.consecutive_failures
    if spec.fallback_replicas is None or failures < spec.fallback_threshold:
        return _Proposal(
            current,
            Reason.METRICS_UNAVAILABLE,
            frozenset({Limit.MISSING_DATA}),
            f"metrics unavailable ({failures} failures in a row): holding {current}, "
            "never scaling down on missing data",
        )
    target = max(current, spec.fallback_replicas)
    text = f"fallback after {failures} failures: {spec.fallback_replicas} replicas"
    if target > current and (wait := timing.up_blocked_for()) > 0:
        return _Proposal(
            current,
            Reason.FALLBACK,
            frozenset({Limit.COOLDOWN}),
            f"{text}; scale-up cooldown for {wait:.0f}s",
        )
    return _Proposal(target, Reason.FALLBACK, frozenset(), text)


def _on_observed(
    spec: EffectiveSpec, obs: Observation, current: int, timing: _Cooldowns
) -> _Proposal:
    need = slo_need(spec, obs)
    if current == 0 and (obs.depth > 0 or obs.in_flight > 0):
        return _wake(spec, obs, need)
    depth_ratio = obs.depth / spec.up_depth
    age_ratio = obs.oldest_age_s / spec.up_latency_s
    signal = (
        f"depth {obs.depth} (up at {spec.up_depth}), oldest {obs.oldest_age_s:.1f}s "
        f"(up at {spec.up_latency_s:g}s)"
    )
    slo_breached = spec.slo_max_wait_s is not None and obs.oldest_age_s >= spec.slo_max_wait_s
    slo_up = need is not None and need.count > current
    res = resource_signal(spec, obs, current)
    if res.message:
        signal += f", {res.message}"
    if max(depth_ratio, age_ratio) >= 1.0 or slo_up or slo_breached or res.up_to is not None:
        return _scale_up(
            spec,
            current,
            timing=timing,
            depth_ratio=depth_ratio,
            age_ratio=age_ratio,
            signal=signal,
            need=need,
            slo_breached=slo_breached,
            resources=res,
        )
    if obs.depth < spec.down_depth and obs.oldest_age_s < spec.down_latency_s:
        if res.veto is not None:
            return _Proposal(
                current,
                Reason.WITHIN_BAND,
                frozenset({Limit.RESOURCES}),
                f"{signal}: no scale-down, {res.veto}",
            )
        if need is not None and need.count >= current:
            return _Proposal(current, Reason.WITHIN_BAND, frozenset(), need.message)
        if spec.slo_max_wait_s is not None and obs.oldest_age_s >= spec.slo_max_wait_s / 2:
            return _Proposal(
                current,
                Reason.WITHIN_BAND,
                frozenset({Limit.SLO}),
                f"oldest {obs.oldest_age_s:.1f}s is past half the SLO "
                f"{spec.slo_max_wait_s:g}s: no scale-down",
            )
        down = _scale_down(spec, obs, current, timing, need)
        if res.message:
            down = replace(down, message=f"{down.message} ({res.message})")
        return down
    return _Proposal(current, Reason.WITHIN_BAND, frozenset(), f"{signal}: within the band")


def severity_level(ratio: float) -> int:
    """How far past the scale-up threshold: 1 (≥1×), 2 (≥2×) or 3 (≥4×); 0 below it."""
    if ratio >= 4.0:
        return 3
    if ratio >= 2.0:
        return 2
    return 1 if ratio >= 1.0 else 0


def step_for(level: int, max_step: int) -> int:
    """Workers to add at a severity level: ``ceil(level × maxStep / 3)``, at least 1."""
    return max(1, math.ceil(level * max_step / 3))


def _scale_up(
    spec: EffectiveSpec,
    current: int,
    *,
    timing: _Cooldowns,
    depth_ratio: float,
    age_ratio: float,
    signal: str,
    need: Need | None = None,
    slo_breached: bool = False,
    resources: ResourceSignal | None = None,
) -> _Proposal:
    """The threshold step, the SLO count or the resource count, whichever asks for most.

    One cooldown for all. The resource count (CPU or memory past its threshold) is
    bounded by ``maxStep`` like the threshold step: both are noisy signals.

    The threshold step is bounded by ``maxStep``; the SLO count is a computed
    size, not a step, so it is bounded by ``maxReplicas`` only. A breached SLO
    whose count does not ask for more (the estimate was wrong) adds one worker.
    """
    level = severity_level(max(depth_ratio, age_ratio))
    by_threshold = current + step_for(level, spec.max_step) if level else current
    by_slo = current
    if need is not None:
        by_slo = max(by_slo, need.count)
    if slo_breached and by_slo <= current:
        by_slo = current + 1
    by_resource, resource_reason = current, None
    if resources is not None and resources.up_to is not None:
        by_resource = min(resources.up_to, current + spec.max_step)
        resource_reason = resources.reason
    resource_wins = by_resource > max(by_threshold, by_slo)
    if resource_wins:
        by_threshold, level = by_resource, max(level, 1)
    slo_wins = by_slo > by_threshold
    if slo_wins:
        reason = Reason.SLO_DEMAND
    elif resource_wins and resource_reason is not None:
        reason = resource_reason
    else:
        reason = Reason.QUEUE_DEPTH if depth_ratio >= age_ratio else Reason.QUEUE_LATENCY
    text = signal
    if slo_wins:
        why = [need.message] if need is not None else []
        if slo_breached:
            why.insert(0, f"oldest job past the SLO {spec.slo_max_wait_s:g}s")
        text = f"{signal}; {'; '.join(why)}"
    if (wait := timing.up_blocked_for()) > 0:
        return _Proposal(
            current,
            reason,
            frozenset({Limit.COOLDOWN}),
            f"{text}: scale-up cooldown for {wait:.0f}s",
            level,
        )
    if slo_wins:
        return _Proposal(by_slo, reason, frozenset(), f"{text}: {by_slo}", level)
    step = by_threshold - current
    if resource_wins:
        return _Proposal(by_threshold, reason, frozenset(), f"{signal}: +{step}", level)
    limits = frozenset({Limit.STEP}) if level == 3 else frozenset()
    return _Proposal(by_threshold, reason, limits, f"{signal}: severity {level}, +{step}", level)


def _scale_down(
    spec: EffectiveSpec,
    obs: Observation,
    current: int,
    timing: _Cooldowns,
    need: Need | None = None,
) -> _Proposal:
    signal = (
        f"depth {obs.depth} < {spec.down_depth} and oldest {obs.oldest_age_s:.1f}s "
        f"< {spec.down_latency_s:g}s"
    )
    if (wait := timing.down_blocked_for()) > 0:
        return _Proposal(
            current,
            Reason.QUEUE_DRAINED,
            frozenset({Limit.COOLDOWN}),
            f"{signal}: scale-down cooldown for {wait:.0f}s",
        )
    target = max(current - spec.down_step, need.count if need else 0)
    # Keep the busy workers, and never go to zero while a job is in flight (its
    # worker may not heartbeat busy yet): KEDA's scale-to-zero-mid-job bug.
    floor = max(obs.busy_workers, 1 if obs.in_flight else 0)
    if floor > max(target, 0) and not spec.allow_disruption:
        return _Proposal(
            min(current, floor),
            Reason.QUEUE_DRAINED,
            frozenset({Limit.BUSY_WORKERS}),
            f"{signal}: keeping {floor} workers for {obs.in_flight} jobs in flight "
            f"({obs.busy_workers} busy)",
        )
    if target <= 0 and (held := _zero_held(spec, obs, timing.now)):
        return _Proposal(
            min(current, 1), Reason.QUEUE_DRAINED, frozenset({held[0]}), f"{signal}: {held[1]}"
        )
    step = current - max(target, 0)
    return _Proposal(target, Reason.QUEUE_DRAINED, frozenset(), f"{signal}: -{step}")


def _zero_held(spec: EffectiveSpec, obs: Observation, now: float) -> tuple[Limit, str] | None:
    """Why the last worker must stay, if it must: anything waiting, running or busy lately.

    Not lifted by ``allowDisruption``: removing the last worker with work left
    only hands the work back to an empty pool, which wakes again at once.
    """
    if obs.depth or obs.in_flight or obs.busy_workers:
        return (
            Limit.BUSY_WORKERS,
            f"keeping 1 worker: {obs.depth} waiting, {obs.in_flight} in flight, "
            f"{obs.busy_workers} busy",
        )
    if obs.last_busy_at is not None:
        idle_s = now - obs.last_busy_at
        if idle_s < spec.scale_to_zero_after_s:
            return (
                Limit.SCALE_TO_ZERO_DELAY,
                f"idle for {idle_s:.0f}s of the {spec.scale_to_zero_after_s:g}s "
                "before scaling to zero",
            )
    return None


def _clamp(spec: EffectiveSpec, current: int, proposal: _Proposal) -> Decision:
    desired = min(max(proposal.desired, spec.min_replicas), spec.max_replicas)
    limits = set(proposal.limits)
    reason, message = proposal.reason, proposal.message
    if desired > proposal.desired:
        limits.add(Limit.MIN)
        message += f"; held at minReplicas {spec.min_replicas}"
        if desired > current and proposal.desired <= current:
            reason = Reason.BELOW_MIN
    elif desired < proposal.desired:
        limits.add(Limit.MAX)
        message += f"; capped at maxReplicas {spec.max_replicas}"
        if desired < current and proposal.desired >= current:
            reason = Reason.ABOVE_MAX
    if desired > current:
        action = Action.SCALE_UP
    elif desired < current:
        action = Action.SCALE_DOWN
    else:
        action = Action.HOLD
    return Decision(desired, action, reason, frozenset(limits), message, proposal.severity)


# ----------------------------------------------------------------------------- victims
#: Deletion cost of the pods chosen to go: below the default 0 of every other pod.
VICTIM_COST = -1000
#: Base deletion cost of busy pods that stay; their run time in seconds is added.
PROTECTED_COST = 1000
#: Cap on the seconds added to a protected pod's cost (one day, as Windmill does).
PROTECTED_CAP_S = 86_400


@dataclass(frozen=True, slots=True)
class PodView:
    """A Pod of the target as the victim choice needs it (from the API server)."""

    name: str
    ready: bool
    terminating: bool = False
    #: The owning ReplicaSet; pod-deletion-cost orders pods only within one.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class VictimPlan:
    """Which Pods should go on a scale-down and the deletion cost to write on each.

    ``costs`` holds only the Pods to annotate: victims (low) and busy survivors
    (high). Idle survivors keep the default 0, which is already between the two.
    """

    victims: tuple[str, ...]
    protected: tuple[str, ...]
    costs: Mapping[str, int]
    note: str = ""


def _removal_rank(pod: PodView, load: WorkerLoad | None) -> tuple[int, float, int, str]:
    """Sort key, lowest goes first; mirrors what the ReplicaSet itself must respect.

    NotReady pods go first whatever their cost (ReplicaSet rule 3 precedes the
    cost), so the plan names them first too. Then pods with no heartbeat (a worker
    that never came up or hung: nothing to lose), then idle workers, then busy
    ones with the least run time of their in-flight jobs, then the fewest jobs
    processed (the youngest). The name breaks ties so the choice is deterministic.
    """
    if not pod.ready:
        return (0, 0.0, 0, pod.name)
    if load is None:
        return (1, 0.0, 0, pod.name)
    if load.active_jobs <= 0:
        return (2, 0.0, load.processed, pod.name)
    return (3, load.busy_s, load.processed, pod.name)


def choose_victims(pods: Sequence[PodView], loads: Sequence[WorkerLoad], remove: int) -> VictimPlan:
    """The ``remove`` Pods to delete first and the costs that make the ReplicaSet agree.

    Pure: the caller lists the Pods and passes the heartbeats. Pods already
    terminating are not candidates (they are on their way out and do not count
    towards the replicas the ReplicaSet keeps). Costs are written once, right
    before ``/scale`` is lowered, and removed afterwards (anchors §6).
    """
    by_pod = {load.pod_name: load for load in loads}
    live = [p for p in pods if not p.terminating]
    ranked = sorted(live, key=lambda p: _removal_rank(p, by_pod.get(p.name)))
    count = max(0, min(remove, len(ranked)))
    victims = tuple(p.name for p in ranked[:count])
    costs = dict.fromkeys(victims, VICTIM_COST)
    protected = []
    for pod in ranked[count:]:
        load = by_pod.get(pod.name)
        if load is not None and load.active_jobs > 0:
            protected.append(pod.name)
            costs[pod.name] = PROTECTED_COST + int(min(max(load.busy_s, 0.0), PROTECTED_CAP_S))
    owners = {p.owner for p in live}
    note = ""
    if len(owners) > 1:
        note = (
            f"pods belong to {len(owners)} ReplicaSets (a rollout): deletion cost orders "
            "pods only within one, so the choice may not be honoured"
        )
    if count < remove:
        note = "; ".join(filter(None, [note, f"only {count} pods to choose from"]))
    return VictimPlan(victims, tuple(protected), costs, note)
