"""The scaling decision, as a pure function.

``decide`` takes the world as arguments (resolved spec, what Redis showed, the
current replica count, the last scale times and ``now``) and returns a
:class:`Decision` that explains itself: the desired count, the action, the
reason and every limit that held it back. No I/O, no clock, no logging: the
tests drive it with tables and hypothesis (``tests/unit/operator/test_policy.py``).

The rules, in order:

0. **Untrustworthy input**: a poll with a NaN, an infinity or a negative number
   is a failed poll (rule 2); a last-scale time in the future counts as now.
1. **Paused**: hold whatever runs now.
2. **Missing data** (Redis unreachable): never scale down because of it. After
   ``fallback.failureThreshold`` failures in a row, raise to ``fallback.replicas``
   if that is more than now (KEDA's ``currentReplicasIfHigher``); otherwise hold.
3. **Scale up** when the depth reaches ``scaleUp.queueDepth`` OR the oldest job's
   age reaches ``scaleUp.queueLatencySeconds``. Aggressive: the step grows with
   the severity, i.e. how far past the threshold the worse signal is
   (≥1× → level 1, ≥2× → level 2, ≥4× → level 3), and is
   ``ceil(level × maxStep / 3)``, so 1, 2, 3 workers with the default maxStep 3.
   With a known capacity (concurrency and service time) the step is instead what
   the backlog, the arrivals and the start-up need, in one go (``sizing.py``);
   arrivals the running pods cannot keep up with are a signal of their own.
4. **Scale down** only when the depth is below ``scaleDown.queueDepth`` AND the
   age is below ``scaleDown.queueLatencySeconds``: ``scaleDown.step`` at a time,
   or with a known capacity straight to what still has headroom; never below the
   slots the running jobs fill plus the pods running an old job, never to zero
   while a job is in flight (unless ``scaleDown.allowDisruption``).
5. Between the two thresholds: the **hysteresis band**, hold.
6. **Cooldowns**: no scale-up within ``scaleUp.cooldownSeconds`` of the last
   scale-up; no scale-down within ``scaleDown.cooldownSeconds`` of the last scale
   in either direction (a fresh scale-up is not undone at once); whatever the
   cooldowns, no reversal within ``DIRECTION_DWELL_S`` of the last scale.
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
  busy, no delayed job is due within ``scaleUp.podStartupSeconds``, and none has
  been for ``scaleDown.scaleToZeroAfterSeconds``; this holds even with
  ``allowDisruption``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from jobqueue_operator.decision import Action, Decision, Limit, Reason
from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.observation import (
    Counters,
    MetricsMissing,
    Observation,
    Rates,
    WorkerLoad,
    first_non_finite,
    rates_between,
)
from jobqueue_operator.sizing import (
    Capacity,
    Need,
    ResourceSignal,
    capacity_need,
    in_flight_floor,
    resource_signal,
    resource_use,
    severity_level,
    slo_need,
    step_for,
)
from jobqueue_operator.timing import (
    DIRECTION_DWELL_S,
    Cooldowns,
    clamp_stamp,
    held_message,
    zero_held,
)

__all__ = [
    "DIRECTION_DWELL_S",
    "Action",
    "Counters",
    "Decision",
    "Limit",
    "MetricsMissing",
    "Need",
    "Observation",
    "Rates",
    "Reason",
    "ResourceSignal",
    "WorkerLoad",
    "decide",
    "rates_between",
    "resource_signal",
    "resource_use",
    "severity_level",
    "slo_need",
    "step_for",
]


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
    if not math.isfinite(now):
        observation = MetricsMissing(1, f"the clock read {now}")
        now = max(
            t for t in (last_scale_up, last_scale_down, 0.0) if t is not None and math.isfinite(t)
        )
    elif isinstance(observation, Observation) and (bad := first_non_finite(observation)):
        value = getattr(observation, bad)
        observation = MetricsMissing(1, f"the poll's {bad} is {value}")
    timing = Cooldowns(
        spec, clamp_stamp(last_scale_up, now), clamp_stamp(last_scale_down, now), now
    )
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


def _wake(
    spec: EffectiveSpec, obs: Observation, need: Need | None, capacity: Capacity | None
) -> _Proposal:
    """From zero straight to the needed count: no step, no cooldown (KEDA #4403)."""
    by_depth = math.ceil(obs.depth / spec.up_depth)
    target = max(1, by_depth, need.count if need else 0, capacity.up if capacity else 0)
    text = (
        f"scale from zero: {obs.depth} waiting, {obs.in_flight} in flight; "
        f"{by_depth} by depth (up at {spec.up_depth})"
    )
    for extra in (need, capacity):
        if extra is not None:
            text += f"; {extra.message}"
    return _Proposal(target, Reason.SCALE_FROM_ZERO, frozenset(), f"{text}: {target}")


@dataclass(frozen=True, slots=True)
class _Proposal:
    desired: int
    reason: Reason
    limits: frozenset[Limit]
    message: str
    severity: int = 0


def _on_missing(
    spec: EffectiveSpec, missing: MetricsMissing, current: int, timing: Cooldowns
) -> _Proposal:
    failures = missing.consecutive_failures
    if spec.fallback_replicas is None or failures < spec.fallback_threshold:
        return _Proposal(
            current,
            Reason.METRICS_UNAVAILABLE,
            frozenset({Limit.MISSING_DATA}),
            f"metrics unavailable ({failures} failures in a row: {missing.error}): "
            f"holding {current}, "
            "never scaling down on missing data",
        )
    target = max(current, spec.fallback_replicas)
    text = f"fallback after {failures} failures: {spec.fallback_replicas} replicas"
    wait, limit = timing.up_blocked_for()
    if target > current and wait > 0:
        return _Proposal(
            current,
            Reason.FALLBACK,
            frozenset({limit}),
            f"{text}; {held_message(limit, 'up', wait)}",
        )
    return _Proposal(target, Reason.FALLBACK, frozenset(), text)


def _on_observed(
    spec: EffectiveSpec, obs: Observation, current: int, timing: Cooldowns
) -> _Proposal:
    need = slo_need(spec, obs)
    capacity = capacity_need(spec, obs, current)
    if current == 0 and (obs.depth > 0 or obs.in_flight > 0):
        return _wake(spec, obs, need, capacity)
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
    short = capacity is not None and capacity.short
    if max(depth_ratio, age_ratio) >= 1.0 or slo_up or slo_breached or short or res.up_to:
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
            capacity=capacity,
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
        down = _scale_down(spec, obs, current, timing, need=need, capacity=capacity)
        if res.message:
            down = replace(down, message=f"{down.message} ({res.message})")
        return down
    return _Proposal(current, Reason.WITHIN_BAND, frozenset(), f"{signal}: within the band")


def _scale_up(
    spec: EffectiveSpec,
    current: int,
    *,
    timing: Cooldowns,
    depth_ratio: float,
    age_ratio: float,
    signal: str,
    need: Need | None = None,
    slo_breached: bool = False,
    resources: ResourceSignal | None = None,
    capacity: Capacity | None = None,
) -> _Proposal:
    """The threshold step, the SLO count or the resource count, whichever asks for most.

    One cooldown for all. The resource count (CPU or memory past its threshold) is
    bounded by ``maxStep`` like the threshold step: both are noisy signals.

    The threshold step is bounded by ``maxStep``; the SLO and capacity counts are
    computed sizes, not steps, so they are bounded by ``maxReplicas`` only: a
    surge is met in one step. A breached SLO whose count does not ask for more
    (the estimate was wrong) adds one worker.
    """
    level = severity_level(max(depth_ratio, age_ratio))
    by_threshold = current + step_for(level, spec.max_step) if level else current
    by_slo = current
    if need is not None:
        by_slo = max(by_slo, need.count)
    if slo_breached and by_slo <= current:
        by_slo = current + 1
    if capacity is not None and capacity.up > by_slo:
        by_slo = capacity.up
        need = Need(capacity.up, capacity.message)
    by_resource, resource_reason = current, None
    if resources is not None and resources.up_to is not None:
        by_resource = min(resources.up_to, current + spec.max_step)
        resource_reason = resources.reason
    resource_wins = by_resource > max(by_threshold, by_slo)
    if resource_wins:
        by_threshold, level = by_resource, max(level, 1)
    slo_wins = by_slo > by_threshold
    if slo_wins:
        reason = Reason.SLO_DEMAND if spec.slo_max_wait_s is not None else Reason.CAPACITY
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
    wait, limit = timing.up_blocked_for(severe=level == 3)
    if wait > 0:
        return _Proposal(
            current, reason, frozenset({limit}), f"{text}: {held_message(limit, 'up', wait)}", level
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
    timing: Cooldowns,
    *,
    need: Need | None = None,
    capacity: Capacity | None = None,
) -> _Proposal:
    """Down by ``scaleDown.step``, or with a known capacity straight to what still has
    headroom; never below what the running jobs fill (unless ``allowDisruption``)."""
    signal = (
        f"depth {obs.depth} < {spec.down_depth} and oldest {obs.oldest_age_s:.1f}s "
        f"< {spec.down_latency_s:g}s"
    )
    wait, limit = timing.down_blocked_for()
    if wait > 0:
        return _Proposal(
            current,
            Reason.QUEUE_DRAINED,
            frozenset({limit}),
            f"{signal}: {held_message(limit, 'down', wait)}",
        )
    if capacity is not None:
        if capacity.keep >= current:
            return _Proposal(
                current,
                Reason.WITHIN_BAND,
                frozenset(),
                f"{signal}; {capacity.message}: no surplus",
            )
        target = max(capacity.keep, need.count if need else 0)
    else:
        target = max(current - spec.down_step, need.count if need else 0)
    # Keep the slots the running jobs fill, and never go to zero while a job is in
    # flight (its worker may not heartbeat busy yet): KEDA's scale-to-zero-mid-job bug.
    floor = max(in_flight_floor(spec, obs), 1 if obs.in_flight else 0)
    if floor > max(target, 0) and not spec.allow_disruption:
        return _Proposal(
            min(current, floor),
            Reason.QUEUE_DRAINED,
            frozenset({Limit.BUSY_WORKERS}),
            f"{signal}: keeping {floor} workers for {obs.in_flight} jobs in flight "
            f"({obs.busy_workers} busy)",
        )
    if target <= 0 and (held := zero_held(spec, obs, timing.now)):
        return _Proposal(
            min(current, 1), Reason.QUEUE_DRAINED, frozenset({held[0]}), f"{signal}: {held[1]}"
        )
    step = current - max(target, 0)
    return _Proposal(target, Reason.QUEUE_DRAINED, frozenset(), f"{signal}: -{step}")


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
