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

How far a scale-up or a scale-down goes (rules 3 and 4, once the direction is
known) is ``scale_steps.py``; the rest is here.

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
from dataclasses import replace

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
from jobqueue_operator.scale_steps import Proposal, scale_down, scale_up
from jobqueue_operator.sizing import (
    Capacity,
    Need,
    ResourceSignal,
    capacity_need,
    resource_signal,
    resource_use,
    severity_level,
    slo_need,
    step_for,
)
from jobqueue_operator.timing import DIRECTION_DWELL_S, Cooldowns, clamp_stamp, held_message

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
            proposal = Proposal(
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
) -> Proposal:
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
    return Proposal(target, Reason.SCALE_FROM_ZERO, frozenset(), f"{text}: {target}")


def _on_missing(
    spec: EffectiveSpec, missing: MetricsMissing, current: int, timing: Cooldowns
) -> Proposal:
    failures = missing.consecutive_failures
    if spec.fallback_replicas is None or failures < spec.fallback_threshold:
        return Proposal(
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
        return Proposal(
            current,
            Reason.FALLBACK,
            frozenset({limit}),
            f"{text}; {held_message(limit, 'up', wait)}",
        )
    return Proposal(target, Reason.FALLBACK, frozenset(), text)


def _on_observed(
    spec: EffectiveSpec, obs: Observation, current: int, timing: Cooldowns
) -> Proposal:
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
        return scale_up(
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
            return Proposal(
                current,
                Reason.WITHIN_BAND,
                frozenset({Limit.RESOURCES}),
                f"{signal}: no scale-down, {res.veto}",
            )
        if need is not None and need.count >= current:
            return Proposal(current, Reason.WITHIN_BAND, frozenset(), need.message)
        if spec.slo_max_wait_s is not None and obs.oldest_age_s >= spec.slo_max_wait_s / 2:
            return Proposal(
                current,
                Reason.WITHIN_BAND,
                frozenset({Limit.SLO}),
                f"oldest {obs.oldest_age_s:.1f}s is past half the SLO "
                f"{spec.slo_max_wait_s:g}s: no scale-down",
            )
        down = scale_down(spec, obs, current, timing, need=need, capacity=capacity)
        if res.message:
            down = replace(down, message=f"{down.message} ({res.message})")
        return down
    return Proposal(current, Reason.WITHIN_BAND, frozenset(), f"{signal}: within the band")


def _clamp(spec: EffectiveSpec, current: int, proposal: Proposal) -> Decision:
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
