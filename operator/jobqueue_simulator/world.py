"""The simulated world as data: service times, the run's settings, what a policy sees,
the policy interface, and what a run produces. No behaviour beyond validation and
drawing one service time; the event loop is ``engine.py``.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Distribution(enum.StrEnum):
    """Service-time distributions."""

    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"
    CONSTANT = "constant"


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """How long one job takes on one worker slot.

    ``cv`` (coefficient of variation, std/mean) only shapes the lognormal; the
    exponential's is 1 by definition and the constant's 0.
    """

    distribution: Distribution
    mean_s: float
    cv: float = 1.0

    def __post_init__(self) -> None:
        if not (self.mean_s > 0 and math.isfinite(self.mean_s)):
            raise ValueError(f"mean service time must be positive, got {self.mean_s}")
        if not (self.cv >= 0 and math.isfinite(self.cv)):
            raise ValueError(f"cv must be >= 0, got {self.cv}")

    def draw(self, rng: random.Random) -> float:
        """One service time; always > 0."""
        if self.distribution is Distribution.CONSTANT:
            return self.mean_s
        if self.distribution is Distribution.EXPONENTIAL:
            return rng.expovariate(1.0 / self.mean_s)
        # lognormal with the requested mean and cv: σ² = ln(1 + cv²), μ = ln(mean) − σ²/2
        sigma2 = math.log1p(self.cv * self.cv)
        mu = math.log(self.mean_s) - sigma2 / 2.0
        return rng.lognormvariate(mu, math.sqrt(sigma2))


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything about the world that is not the policy or the trace."""

    service: ServiceModel
    concurrency: int
    startup_delay_s: float
    initial_replicas: int
    horizon_s: float
    sample_every_s: float = 5.0
    #: A removed pod stops taking work but finishes its jobs for this long (the
    #: pod's terminationGracePeriodSeconds); jobs still running then are lost.
    grace_s: float = 30.0
    #: Pod start-up times are lognormal with this median (``startup_delay_s``) and
    #: sigma; 0 gives every pod exactly ``startup_delay_s``.
    startup_sigma: float = 0.0
    #: Seconds from a policy's write of the replica count to the ReplicaSet acting on it.
    actuation_s: float = 0.0
    #: How old the queue figures a policy sees are (a metrics pipeline, a cache).
    staleness_s: float = 0.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.startup_delay_s < 0:
            raise ValueError("startup delay must be >= 0")
        if self.initial_replicas < 0:
            raise ValueError("initial replicas must be >= 0")
        if not (self.horizon_s >= 0 and math.isfinite(self.horizon_s)):
            raise ValueError("horizon must be a finite number of seconds >= 0")
        if self.sample_every_s <= 0:
            raise ValueError("sample interval must be positive")
        for name in ("grace_s", "startup_sigma", "actuation_s", "staleness_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name.removesuffix('_s')} must be a finite number >= 0")


@dataclass(frozen=True, slots=True)
class Timer:
    """A periodic decision timer of a policy: first at ``first_at_s``, then every ``period_s``.

    ``order`` decides which of a policy's timers runs first when two are due at
    the same instant (the KEDA model needs the HPA sync before KEDA's poll).
    """

    name: str
    period_s: float
    first_at_s: float
    order: int = 0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a policy may see on a tick: what Redis and the Deployment would show."""

    now: float
    replicas: int
    ready_pods: int
    busy_pods: int
    depth: int
    oldest_age_s: float
    in_flight: int
    arrived_total: int
    completed_total: int
    completed_service_s: float
    concurrency: int = 1
    #: Every pod, as the API server and the workers' heartbeats show the operator.
    pods: tuple[PodState, ...] = ()


@dataclass(frozen=True, slots=True)
class PodState:
    """One pod: its name, whether it is Ready, and its jobs (count, summed and longest run)."""

    name: str
    ready: bool
    jobs: int = 0
    busy_s: float = 0.0
    longest_s: float = 0.0


class Policy(Protocol):
    """A scaling policy under test. Stateful: build a fresh one for every run."""

    @property
    def label(self) -> str:
        """A short name for tables and plot legends."""
        ...

    def timers(self) -> Sequence[Timer]:
        """The policy's decision timers."""
        ...

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        """The replica count to set now, or None to leave it."""
        ...


def pod_name(pid: int) -> str:
    """The name a simulated pod goes by in drain requests and deletion costs."""
    return f"pod-{pid}"


@runtime_checkable
class PodChoosingPolicy(Protocol):
    """A policy that also acts on pods, as the operator does (read after every tick)."""

    def drain_requests(self) -> frozenset[str]:
        """The pods listed in the drain hash now: they finish their jobs and fetch nothing."""
        ...

    def deletion_costs(self) -> dict[str, int]:
        """``pod-deletion-cost`` per pod: the ReplicaSet removes the lowest first."""
        ...

    def capacity(self) -> int:
        """The replicas it counts on after its last tick: those written, drained apart."""
        ...


def chooses_pods(policy: object) -> PodChoosingPolicy | None:
    """The policy as a :class:`PodChoosingPolicy`, or None for one blind to pods (KEDA)."""
    return policy if isinstance(policy, PodChoosingPolicy) else None


@dataclass(frozen=True, slots=True)
class Sample:
    """The state at one sampling instant, for the plot."""

    t: float
    depth: int
    replicas: int
    ready: int
    busy: int


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """One change of the capacity a policy counts on: a ``/scale`` write, or a drain
    requested or withdrawn (the replicas that fetch, drained pods apart)."""

    t: float
    from_replicas: int
    to_replicas: int
    timer: str


@dataclass(frozen=True, slots=True)
class SimResult:
    """Everything one run produced; ``report.summarize`` turns it into the table row."""

    policy: str
    horizon_s: float
    arrived: int
    completed: int
    completed_service_s: float
    """Total service time of the completed jobs (equal across policies that complete all)."""
    waiting_end: int
    in_service_end: int
    interrupted: int
    replica_seconds: float
    max_depth: int
    waits: tuple[float, ...]
    """Enqueue → start of the attempt that ran (or runs) to the end, per started job."""
    scale_events: tuple[ScaleEvent, ...]
    samples: tuple[Sample, ...]
