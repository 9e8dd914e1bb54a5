"""The JobQueue resource as pydantic models, and the resolution of its defaults.

The CRD in ``crds/jobqueues.yaml`` is the schema the API server enforces; these
models are the same schema as the operator reads it. ``tests/unit/operator/
test_crd_agreement.py`` keeps the two in step (fields, required, defaults).

Thresholds, cooldowns and the replica bounds have **no** default in the CRD on
purpose: an API-server default would always win over the operator-wide
defaults (``SCALE_UP_QUEUE_DEPTH``, ``MIN_WORKERS``, ...). They are resolved
here, in this order: the JobQueue's own field, then (for min and max replicas)
its ``priorityClass`` when one is set, then the operator's settings. :func:`resolve` returns an
:class:`EffectiveSpec` in which nothing is optional any more, which is what the
pure policy works on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import Field, StringConstraints, model_validator

from jobqueue_operator.model_base import K8sName, _Model
from jobqueue_operator.redis_spec import (
    RedisConnection,
)

# The status models live in status_models.py; re-exported for the callers that
# read the whole resource from one place.
from jobqueue_operator.status_models import (
    Condition,
    DecisionRecord,
    EffectiveRecord,
    JobQueueStatus,
    ObservedMetrics,
    PodSelectionRecord,
    QueueDiscoveryRecord,
)

#: Annotation that pauses a JobQueue like ``spec.paused: true`` (KEDA's habit).
PAUSED_ANNOTATION = "jobqueue.dev/paused"

_T = TypeVar("_T")

#: Queue names become part of Redis keys inside a ``{queue}`` hash tag, so no braces.
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._-]*$"
#: A glob over queue names for SCAN MATCH: the queue-name characters plus * and ?
#: (no [ ] classes, no backslash, no braces: the name sits inside a hash tag).
QUEUE_GLOB_PATTERN = r"^[A-Za-z0-9:._*?-]*[*?][A-Za-z0-9:._*?-]*$"


class PriorityClass(enum.StrEnum):
    """How important a queue is; picks the default replica bounds."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"
    BACKGROUND = "background"


#: Default (min, max) replicas per priority class. The seeds give the ends
#: (critical 2..20, background 1..5); normal is the seeds' 1..10.
PRIORITY_BOUNDS: dict[PriorityClass, tuple[int, int]] = {
    PriorityClass.CRITICAL: (2, 20),
    PriorityClass.HIGH: (1, 15),
    PriorityClass.NORMAL: (1, 10),
    PriorityClass.LOW: (1, 8),
    PriorityClass.BACKGROUND: (1, 5),
}

QueueName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=QUEUE_NAME_PATTERN)
]


class ScaleTargetRef(_Model):
    """The Deployment to scale; always in the JobQueue's own namespace."""

    kind: Literal["Deployment"] = "Deployment"
    name: K8sName


class ScaleUp(_Model):
    """When and how fast to add workers."""

    queue_depth: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    queue_latency_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None
    cooldown_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None
    max_step: Annotated[int, Field(ge=1, le=50)] = 3
    pod_startup_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    cpu_percent: Annotated[int, Field(ge=1, le=1000)] | None = None
    memory_percent: Annotated[int, Field(ge=1, le=1000)] | None = None


class ScaleDown(_Model):
    """When and how fast to remove workers."""

    queue_depth: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    queue_latency_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None
    cooldown_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None
    step: Annotated[int, Field(ge=1, le=50)] = 1
    allow_disruption: bool = False
    drain_chosen_pods: bool = True
    cpu_percent: Annotated[int, Field(ge=1, le=1000)] | None = None
    memory_percent: Annotated[int, Field(ge=1, le=1000)] | None = None
    scale_to_zero_after_seconds: Annotated[int, Field(ge=0, le=86_400)] = 30


class Slo(_Model):
    """Latency-SLO and rate sizing beside the thresholds (docs/operator.md, SLO)."""

    max_wait_seconds: Annotated[float, Field(gt=0, le=86_400)]
    concurrency_per_pod: Annotated[int, Field(ge=1, le=1000)] = 1


class WeightedQueue(_Model):
    """One more queue, or a pattern of queues, with its weight, priority and reserved floor."""

    name: QueueName | None = None
    pattern: (
        Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=QUEUE_GLOB_PATTERN)]
        | None
    ) = None
    weight: Annotated[float, Field(gt=0, le=100)] = 1.0
    priority: Annotated[int, Field(ge=0, le=1000)] = 0
    reserved_replicas: Annotated[int, Field(ge=0, le=1000)] = 0

    @model_validator(mode="after")
    def _one_of(self) -> WeightedQueue:
        if (self.name is None) == (self.pattern is None):
            raise ValueError("set exactly one of name and pattern")
        return self


class QueueDiscovery(_Model):
    """How patterns are expanded: a bounded SCAN, cached for some polls, capped."""

    max_queues: Annotated[int, Field(ge=1, le=500)] = 100
    refresh_every_polls: Annotated[int, Field(ge=1, le=1000)] = 12


class Fallback(_Model):
    """Replicas to hold after the metrics have failed ``failureThreshold`` times in a row."""

    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    replicas: Annotated[int, Field(ge=0, le=1000)]


class JobQueueSpec(_Model):
    """``spec`` of a JobQueue."""

    scale_target_ref: ScaleTargetRef
    redis: RedisConnection
    queues: Annotated[list[QueueName], Field(min_length=1, max_length=20)]
    priority_tier: PriorityClass | None = None
    #: Deprecated name of ``priority_tier`` (it reads like the scheduler's PriorityClass);
    #: still accepted, with a warning at admission.
    priority_class: PriorityClass | None = None
    min_replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    max_replicas: Annotated[int, Field(ge=1, le=1000)] | None = None
    polling_interval_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    scale_up: ScaleUp = Field(default_factory=ScaleUp)
    scale_down: ScaleDown = Field(default_factory=ScaleDown)
    fallback: Fallback | None = None
    slo: Slo | None = None
    weighted_queues: Annotated[list[WeightedQueue], Field(min_length=1, max_length=20)] | None = (
        None
    )
    queue_discovery: QueueDiscovery = Field(default_factory=QueueDiscovery)
    paused: bool = False
    paused_replicas: Annotated[int, Field(ge=0, le=1000)] | None = None

    @property
    def tier(self) -> PriorityClass | None:
        """``priorityTier``, or the deprecated ``priorityClass`` when only that is set."""
        return self.priority_tier or self.priority_class

    @model_validator(mode="after")
    def _cross_field(self) -> JobQueueSpec:
        """The CRD's CEL rules, repeated so a model built in Python obeys them too."""
        if (
            self.priority_tier is not None
            and self.priority_class is not None
            and self.priority_tier != self.priority_class
        ):
            raise ValueError(
                "priorityClass (deprecated) and priorityTier disagree; keep priorityTier"
            )
        if len(set(self.queues)) != len(self.queues):
            raise ValueError("queues must not repeat")
        named = [w.name for w in self.weighted_queues or [] if w.name is not None]
        patterns = [w.pattern for w in self.weighted_queues or [] if w.pattern is not None]
        if len(set(named)) != len(named) or len(set(patterns)) != len(patterns):
            raise ValueError("weightedQueues must not repeat a name or a pattern")
        if self.slo is not None and self.slo.max_wait_seconds < self.polling_interval_seconds:
            raise ValueError("slo.maxWaitSeconds must not be below pollingIntervalSeconds")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError("minReplicas must not be greater than maxReplicas")
        up, down = self.scale_up, self.scale_down
        if (
            up.queue_depth is not None
            and down.queue_depth is not None
            and down.queue_depth >= up.queue_depth
        ):
            raise ValueError("scaleDown.queueDepth must be below scaleUp.queueDepth")
        if (
            up.queue_latency_seconds is not None
            and down.queue_latency_seconds is not None
            and down.queue_latency_seconds >= up.queue_latency_seconds
        ):
            raise ValueError(
                "scaleDown.queueLatencySeconds must be below scaleUp.queueLatencySeconds"
            )
        for what in ("cpuPercent", "memoryPercent"):
            field = "cpu_percent" if what == "cpuPercent" else "memory_percent"
            hi, lo = getattr(up, field), getattr(down, field)
            if hi is not None and lo is not None and lo >= hi:
                raise ValueError(f"scaleDown.{what} must be below scaleUp.{what}")
        if (
            self.fallback is not None
            and self.max_replicas is not None
            and self.fallback.replicas > self.max_replicas
        ):
            raise ValueError("fallback.replicas must not be greater than maxReplicas")
        return self


class OperatorDefaults(_Model):
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


@dataclass(frozen=True, slots=True)
class EffectiveSpec:
    """Everything the policy needs, with every default resolved."""

    min_replicas: int
    max_replicas: int
    up_depth: int
    up_latency_s: float
    up_cooldown_s: float
    max_step: int
    down_depth: int
    down_latency_s: float
    down_cooldown_s: float
    down_step: int
    fallback_replicas: int | None
    fallback_threshold: int
    paused: bool
    #: With ``paused``: the count to set and then hold (KEDA's paused-replicas);
    #: ``None`` holds whatever runs.
    paused_replicas: int | None = None
    #: Scale down below the busy workers (and to zero with jobs in flight); the
    #: workers' graceful shutdown hands their jobs back.
    allow_disruption: bool = False
    #: Idle time (nothing waiting, in flight or busy) before the last worker goes.
    scale_to_zero_after_s: float = 0.0
    #: ``spec.slo.maxWaitSeconds``; ``None`` turns the SLO/rate sizing off.
    slo_max_wait_s: float | None = None
    #: Jobs one Pod runs at once (the workers' JQW_CONCURRENCY), for the SLO sizing.
    concurrency_per_pod: int = 1
    #: Resource triggers, in percent of the worker container's request (as the HPA
    #: counts utilisation); ``None`` turns that trigger off.
    up_cpu_pct: float | None = None
    up_memory_pct: float | None = None
    down_cpu_pct: float | None = None
    down_memory_pct: float | None = None
    #: Seconds from a new Pod to a working worker (scheduling, image pull, start):
    #: how far ahead the sizing looks, and how soon a delayed job counts as work.
    pod_startup_s: float = 30.0


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


_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18,
}  # fmt: skip


def parse_quantity(value: object) -> float | None:
    """A Kubernetes resource quantity ("500m", "1.5", "512Mi", "1e9") as a number.

    ``None`` for anything unreadable: a resource trigger without a readable
    request is off, not a crash.
    """
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix) and not (suffix == "E" and "e" in text.lower()[:-1]):
            try:
                return float(text[: -len(suffix)]) * _SUFFIX[suffix]
            except ValueError:
                return None
    try:
        return float(text)
    except ValueError:
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


__all__ = [
    "Condition",
    "DecisionRecord",
    "EffectiveRecord",
    "JobQueueStatus",
    "ObservedMetrics",
    "PodSelectionRecord",
    "QueueDiscoveryRecord",
]
