"""How many workers the signals ask for: the threshold step, the SLO and capacity
counts, and the CPU and memory triggers. Pure arithmetic over the spec and one poll.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobqueue_operator.decision import Reason
from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.observation import Observation

#: Size a scale-up for this much more than the arrivals need, so the pool keeps
#: up with the noise of a rate measured over a few polls.
UP_HEADROOM = 1.1
#: Scale down only to a count that still has this much headroom over the arrivals:
#: the gap to UP_HEADROOM is the hysteresis that keeps a steady load from flapping.
DOWN_HEADROOM = 1.25


def pod_concurrency(spec: EffectiveSpec, obs: Observation) -> int | None:
    """Jobs one Pod runs at once: what the workers report, else ``spec.slo``'s figure.

    ``None`` when neither says: the policy then falls back to counting busy pods.
    """
    if obs.pod_concurrency is not None and obs.pod_concurrency > 0:
        return obs.pod_concurrency
    if spec.slo_max_wait_s is not None:
        return spec.concurrency_per_pod
    return None


#: A job that has already run this long is kept on its pod: run times are heavy
#: tailed, so an old job is the one likely to outlast a removed pod's grace period
#: (30 s by default). Younger jobs drain within the grace on a removed pod.
LONG_JOB_S = 10.0


def long_running_pods(obs: Observation) -> int:
    """Pods running a job that has run LONG_JOB_S or more."""
    return sum(1 for w in obs.worker_loads if w.active_jobs > 0 and w.longest_s >= LONG_JOB_S)


def in_flight_floor(spec: EffectiveSpec, obs: Observation) -> int:
    """The pods the running jobs fill: ``ceil(in_flight / concurrency)``.

    Redis spreads jobs over every idle slot, so counting pods with at least one
    job would hold a mostly idle pool (12 jobs on 10 pods of 10 slots need 2
    pods, not 10). Without a known concurrency, the busy pods are the floor.
    Pods running a job deep in the tail are kept too: the victim choice takes
    the pods with the least run time first, so keeping that many spares them.
    """
    per_pod = pod_concurrency(spec, obs)
    if per_pod is None:
        return max(obs.busy_workers, 1 if obs.in_flight else 0)
    long_running = long_running_pods(obs)
    if long_running:
        return max(long_running, math.ceil(max(obs.in_flight, obs.busy_workers) / per_pod))
    # A busy worker runs at least one job: the leases and the heartbeats are read
    # at slightly different moments, so the larger of the two counts is the truth.
    return math.ceil(max(obs.in_flight, obs.busy_workers) / per_pod)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the arrivals and the backlog need, for a scale-up and for a scale-down."""

    up: int  # the count a scale-up goes to in one step
    keep: int  # a scale-down never goes below this: it still has DOWN_HEADROOM
    short: bool  # the running count cannot even keep up with the arrivals
    message: str


def capacity_need(spec: EffectiveSpec, obs: Observation, current: int) -> Capacity | None:
    """Pods for the arrival rate, the backlog and the start-up time; ``None`` if unknown.

    One pod finishes ``r = c/S`` jobs a second; arrivals ``λ`` keep ``λ/r`` pods
    busy (Little's law). Within the latency target ``W`` (``slo.maxWaitSeconds``,
    else the scale-up latency threshold) the pool must clear the backlog plus what
    arrives meanwhile, ``depth + λ·W``. The running pods give ``current·r·W`` of
    that; a new pod gives only ``r·(W − start-up)``, since it does nothing while
    it starts (at least half of ``W`` is counted: a target shorter than the
    start-up cannot be met by any count). The shortfall, divided by what one new
    pod gives, is the step, taken at once.
    """
    per_pod = pod_concurrency(spec, obs)
    service = obs.mean_service_s
    if per_pod is None or not service or service <= 0:
        return None
    rate = obs.arrival_rate or 0.0
    pod_rate = per_pod / service
    steady = rate / pod_rate
    target_s = spec.slo_max_wait_s if spec.slo_max_wait_s is not None else spec.up_latency_s
    new_pod_s = max(target_s - spec.pod_startup_s, target_s / 2)
    shortfall = obs.depth + rate * target_s - current * pod_rate * target_s
    up = math.ceil(steady * UP_HEADROOM - 1e-9)
    if obs.depth and shortfall > 0:
        up = max(up, current + math.ceil(shortfall / (pod_rate * new_pod_s) - 1e-9))
    elif obs.depth:
        up = max(up, 1)
    keep = max(up, math.ceil(steady * DOWN_HEADROOM + obs.depth / (pod_rate * target_s) - 1e-9))
    short = math.ceil(steady - 1e-9) > current
    text = (
        f"capacity: {rate:.2f}/s × {service:.2f}s / {per_pod} = {steady:.2f} pods busy"
        f", {obs.depth} waiting within {target_s:g}s: {up} pods"
    )
    return Capacity(up, keep, short, text)


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
