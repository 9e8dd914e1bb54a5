"""What a scaling decision says: the action, the reason and the limits that held it.

Plain enums and one dataclass, shared by the policy, the status writer and the
metrics. The string values are CamelCase so they can be a condition or Event
reason as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
    CAPACITY = "CapacityShort"


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
    DWELL = "DirectionDwell"
    DELAYED_WORK = "DelayedWorkDue"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one tick; ``message`` is a sentence a person can read."""

    desired: int
    action: Action
    reason: Reason
    limited_by: frozenset[Limit]
    message: str
    severity: int = 0
