"""How far one tick moves the count once the signals point up or down.

Rules 3 and 4 of ``policy`` (its docstring lists them all, in order): the
scale-up that the strongest signal asks for, and the scale-down with the floors
it keeps, each held by its cooldown. ``policy.decide`` chooses the direction and
clamps the result into the bounds; pure, like it.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobqueue_operator.decision import Limit, Reason
from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.observation import Observation
from jobqueue_operator.sizing import (
    Capacity,
    Need,
    ResourceSignal,
    in_flight_floor,
    severity_level,
    step_for,
)
from jobqueue_operator.timing import Cooldowns, held_message, zero_held


@dataclass(frozen=True, slots=True)
class Proposal:
    """What one rule asks for, before ``policy`` clamps it into [min, max]."""

    desired: int
    reason: Reason
    limits: frozenset[Limit]
    message: str
    severity: int = 0


def scale_up(
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
) -> Proposal:
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
        return Proposal(
            current, reason, frozenset({limit}), f"{text}: {held_message(limit, 'up', wait)}", level
        )
    if slo_wins:
        return Proposal(by_slo, reason, frozenset(), f"{text}: {by_slo}", level)
    step = by_threshold - current
    if resource_wins:
        return Proposal(by_threshold, reason, frozenset(), f"{signal}: +{step}", level)
    limits = frozenset({Limit.STEP}) if level == 3 else frozenset()
    return Proposal(by_threshold, reason, limits, f"{signal}: severity {level}, +{step}", level)


def scale_down(
    spec: EffectiveSpec,
    obs: Observation,
    current: int,
    timing: Cooldowns,
    *,
    need: Need | None = None,
    capacity: Capacity | None = None,
) -> Proposal:
    """Down by ``scaleDown.step``, or with a known capacity straight to what still has
    headroom; never below what the running jobs fill (unless ``allowDisruption``)."""
    signal = (
        f"depth {obs.depth} < {spec.down_depth} and oldest {obs.oldest_age_s:.1f}s "
        f"< {spec.down_latency_s:g}s"
    )
    wait, limit = timing.down_blocked_for()
    if wait > 0:
        return Proposal(
            current,
            Reason.QUEUE_DRAINED,
            frozenset({limit}),
            f"{signal}: {held_message(limit, 'down', wait)}",
        )
    if capacity is not None:
        if capacity.keep >= current:
            return Proposal(
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
        return Proposal(
            min(current, floor),
            Reason.QUEUE_DRAINED,
            frozenset({Limit.BUSY_WORKERS}),
            f"{signal}: keeping {floor} workers for {obs.in_flight} jobs in flight "
            f"({obs.busy_workers} busy)",
        )
    if target <= 0 and (held := zero_held(spec, obs, timing.now)):
        return Proposal(
            min(current, 1), Reason.QUEUE_DRAINED, frozenset({held[0]}), f"{signal}: {held[1]}"
        )
    step = current - max(target, 0)
    return Proposal(target, Reason.QUEUE_DRAINED, frozenset(), f"{signal}: -{step}")
