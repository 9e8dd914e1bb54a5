"""``spec`` of a JobQueue as pydantic models, and :class:`EffectiveSpec`, its resolved form.

The CRD in ``crds/jobqueues.yaml`` is the schema the API server enforces; these
models are the same schema as the operator reads it. ``tests/unit/operator/
test_crd_agreement.py`` keeps the two in step (fields, required, defaults).
``effective.resolve`` fills what a JobQueue leaves unset; ``redis_spec`` holds
``spec.redis`` and ``status_models`` the status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from jobqueue_operator.camel_model import CamelModel as _Model
from jobqueue_operator.camel_model import K8sName
from jobqueue_operator.redis_spec import RedisConnection
from jobqueue_operator.targets import (
    API_VERSION_PATTERN,
    DEFAULT_API_VERSION,
    DEFAULT_KIND,
    KIND_PATTERN,
    TargetRef,
)

#: Annotation that pauses a JobQueue like ``spec.paused: true``, for a tool (or a
#: person during an incident) that may annotate but should not own the spec.
PAUSED_ANNOTATION = "jobqueue.dev/paused"

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


#: Default (min, max) replicas per priority tier: a critical queue keeps two workers
#: so one can fail without a gap, a background queue may not take more than a few;
#: normal is the operator-wide 1..10.
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
    """What to scale: any kind with a ``/scale`` subresource, in the JobQueue's own namespace."""

    api_version: Annotated[
        str, StringConstraints(min_length=1, max_length=253, pattern=API_VERSION_PATTERN)
    ] = DEFAULT_API_VERSION
    kind: Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=KIND_PATTERN)] = (
        DEFAULT_KIND
    )
    name: K8sName

    def ref(self) -> TargetRef:
        """The target as the loop and the Kubernetes port name it."""
        return TargetRef(self.name, self.kind, self.api_version)


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
    #: With ``paused``: the count to set and then hold;
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
