"""The effective spec: a JobQueue's unset fields filled from its tier and the operator.

Thresholds, cooldowns and the replica bounds have **no** default in the CRD on
purpose: an API-server default would always win over the operator-wide
defaults (``SCALE_UP_QUEUE_DEPTH``, ``MIN_WORKERS``, ...). They are resolved
here, in this order: the JobQueue's own field, then (for min and max replicas)
its priority tier when one is set, then the operator's settings.
:func:`resolve` returns an :class:`~jobqueue_operator.models.EffectiveSpec` in
which nothing is optional any more, which is what the pure policy works on.
"""

from __future__ import annotations

from typing import TypeVar

from jobqueue_operator.camel_model import CamelModel
from jobqueue_operator.models import PRIORITY_BOUNDS, EffectiveSpec, JobQueueSpec

_T = TypeVar("_T")


class OperatorDefaults(CamelModel):
    """The operator-wide defaults a JobQueue's unset fields fall back to."""

    scale_up_queue_depth: int = 100
    scale_up_queue_latency_s: float = 30.0
    scale_down_queue_depth: int = 10
    scale_down_queue_latency_s: float = 5.0
    min_workers: int = 1
    max_workers: int = 10
    scale_up_cooldown_s: int = 60
    scale_down_cooldown_s: int = 300
    scale_up_cpu_percent: int | None = None
    scale_up_memory_percent: int | None = None
    scale_down_cpu_percent: int | None = None
    scale_down_memory_percent: int | None = None


class InvalidSpecError(ValueError):
    """The schema let a spec through but its resolved values cannot work."""


def resolve(spec: JobQueueSpec, defaults: OperatorDefaults, *, paused: bool) -> EffectiveSpec:
    """Fill every unset field: the JobQueue, then its priority class, then the operator.

    ``paused`` is the spec field OR the annotation, decided by the caller. Raises
    :class:`InvalidSpecError` when the resolved values contradict each other, for
    example ``minReplicas: 8`` on a background queue whose default max is 5.
    """
    class_min, class_max = PRIORITY_BOUNDS[spec.tier] if spec.tier else (None, None)
    lo = _first(spec.min_replicas, class_min, defaults.min_workers)
    hi = _first(spec.max_replicas, class_max, defaults.max_workers)
    up, down = spec.scale_up, spec.scale_down
    eff = EffectiveSpec(
        min_replicas=lo,
        max_replicas=hi,
        up_depth=_first(up.queue_depth, defaults.scale_up_queue_depth),
        up_latency_s=_first(up.queue_latency_seconds, defaults.scale_up_queue_latency_s),
        up_cooldown_s=_first(up.cooldown_seconds, defaults.scale_up_cooldown_s),
        max_step=up.max_step,
        down_depth=_first(down.queue_depth, defaults.scale_down_queue_depth),
        down_latency_s=_first(down.queue_latency_seconds, defaults.scale_down_queue_latency_s),
        down_cooldown_s=_first(down.cooldown_seconds, defaults.scale_down_cooldown_s),
        down_step=down.step,
        fallback_replicas=spec.fallback.replicas if spec.fallback else None,
        fallback_threshold=spec.fallback.failure_threshold if spec.fallback else 3,
        paused=paused or spec.paused_replicas is not None,
        paused_replicas=spec.paused_replicas,
        allow_disruption=down.allow_disruption,
        scale_to_zero_after_s=down.scale_to_zero_after_seconds,
        slo_max_wait_s=spec.slo.max_wait_seconds if spec.slo else None,
        concurrency_per_pod=spec.slo.concurrency_per_pod if spec.slo else 1,
        up_cpu_pct=_maybe(up.cpu_percent, defaults.scale_up_cpu_percent),
        up_memory_pct=_maybe(up.memory_percent, defaults.scale_up_memory_percent),
        down_cpu_pct=_maybe(down.cpu_percent, defaults.scale_down_cpu_percent),
        down_memory_pct=_maybe(down.memory_percent, defaults.scale_down_memory_percent),
        pod_startup_s=up.pod_startup_seconds,
    )
    _check_effective(eff)
    return eff


def _first(*values: _T | None) -> _T:
    for value in values:
        if value is not None:
            return value
    raise AssertionError("the last candidate is never None")


def _maybe(*values: int | None) -> float | None:
    """The first value set, as a float; ``None`` when none is (the trigger is off)."""
    for value in values:
        if value is not None:
            return float(value)
    return None


def _check_effective(eff: EffectiveSpec) -> None:
    problems = []
    if eff.min_replicas > eff.max_replicas:
        problems.append(
            f"minReplicas {eff.min_replicas} is above maxReplicas {eff.max_replicas} "
            "(after priority-class and operator defaults)"
        )
    if eff.down_depth >= eff.up_depth:
        problems.append(
            f"scale-down depth {eff.down_depth} must be below scale-up depth {eff.up_depth}"
        )
    if eff.down_latency_s >= eff.up_latency_s:
        problems.append(
            f"scale-down latency {eff.down_latency_s}s must be below "
            f"scale-up latency {eff.up_latency_s}s"
        )
    for what, hi, lo in (
        ("CPU", eff.up_cpu_pct, eff.down_cpu_pct),
        ("memory", eff.up_memory_pct, eff.down_memory_pct),
    ):
        if hi is not None and lo is not None and lo >= hi:
            problems.append(f"scale-down {what} {lo:g}% must be below scale-up {what} {hi:g}%")
    if eff.fallback_replicas is not None and eff.fallback_replicas > eff.max_replicas:
        problems.append(
            f"fallback replicas {eff.fallback_replicas} exceed maxReplicas {eff.max_replicas}"
        )
    if problems:
        raise InvalidSpecError("; ".join(problems))
