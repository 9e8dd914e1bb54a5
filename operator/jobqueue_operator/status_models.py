"""``status`` of a JobQueue as pydantic models; every field is declared in the CRD.

A structural schema prunes undeclared fields silently, so these models and the
CRD's status schema are kept in step by ``tests/unit/operator/test_crd_agreement.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jobqueue_operator.camel_model import CamelModel as _Model


class Condition(_Model):
    """A condition in the shape of ``metav1.Condition``, so kubectl and tools read it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class ObservedMetrics(_Model):
    """What the last successful poll saw, summed over the JobQueue's queues."""

    depth: int
    delayed: int
    in_flight: int
    dead: int
    oldest_age_seconds: float
    workers: int
    busy_workers: int
    observed_at: str
    arrival_per_second: float | None = None
    mean_service_seconds: float | None = None


class DecisionRecord(_Model):
    """One entry of ``status.decisions`` (the last 20 decisions that changed something)."""

    time: str
    action: str
    from_replicas: int
    to_replicas: int
    reason: str
    message: str
    limited_by: list[str] = Field(default_factory=list)


class PodSelectionRecord(_Model):
    """``status.podSelection``: the last scale-down's choice of Pods and what went."""

    time: str
    from_replicas: int
    to_replicas: int
    chosen_pods: list[str] = Field(default_factory=list)
    protected_pods: list[str] = Field(default_factory=list)
    drain_requested: list[str] = Field(default_factory=list)
    removed_pods: list[str] | None = None
    settled: bool = False
    message: str = ""


class QueueDiscoveryRecord(_Model):
    """``status.queueDiscovery``: what the patterns matched and what the cap left out."""

    watched_queues: int
    matched_queues: int
    truncated: bool
    scan_complete: bool
    queues: list[str] = Field(default_factory=list)


class EffectiveScaleUp(_Model):
    """The scale-up thresholds in force once the defaults are applied."""

    queue_depth: int
    queue_latency_seconds: float
    cooldown_seconds: float
    max_step: int
    cpu_percent: float | None = None
    memory_percent: float | None = None


class EffectiveScaleDown(_Model):
    """The scale-down thresholds in force once the defaults are applied."""

    queue_depth: int
    queue_latency_seconds: float
    cooldown_seconds: float
    step: int
    cpu_percent: float | None = None
    memory_percent: float | None = None


class EffectiveRecord(_Model):
    """``status.effective``: every threshold and bound the operator applies, defaults filled."""

    min_replicas: int
    max_replicas: int
    scale_up: EffectiveScaleUp
    scale_down: EffectiveScaleDown
    fallback_replicas: int | None = None
    defaults_source: str


class JobQueueStatus(_Model):
    """``status`` of a JobQueue; every field is declared in the CRD (no pruning surprises)."""

    observed_generation: int | None = None
    target: str | None = None
    current_replicas: int | None = None
    desired_replicas: int | None = None
    observed: ObservedMetrics | None = None
    last_scale_up_time: str | None = None
    last_scale_down_time: str | None = None
    last_action: str | None = None
    last_reason: str | None = None
    last_message: str | None = None
    consecutive_failures: int = 0
    pod_selection: PodSelectionRecord | None = None
    draining_pods: list[str] | None = None
    queue_discovery: QueueDiscoveryRecord | None = None
    effective: EffectiveRecord | None = None
    decisions: list[DecisionRecord] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
