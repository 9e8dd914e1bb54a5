"""What one poll of the queues shows the policy, and what a failed poll says.

Plain data and one pure helper (:func:`rates_between`); no I/O. ``observe.py``
builds these from Redis, the simulator from its model of the world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One worker's heartbeat as the victim choice needs it, keyed by its Pod.

    ``busy_s`` is the summed run time of its in-flight jobs (on Redis's clock):
    the work a removal would throw away or make the worker hand back.
    """

    pod_name: str
    state: str
    active_jobs: int
    busy_s: float = 0.0
    #: How long its longest-running job has run (0 when idle).
    longest_s: float = 0.0
    processed: int = 0
    rss_bytes: int = 0
    #: CPU in cores (1.0 = one core busy) if the heartbeat carries it; the
    #: heartbeat format has no such field yet (see docs/operator.md, CPU trigger).
    cpu_cores: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One successful poll, summed over the JobQueue's queues."""

    depth: int
    oldest_age_s: float
    in_flight: int = 0
    busy_workers: int = 0
    delayed: int = 0
    dead: int = 0
    workers: int = 0
    worker_loads: tuple[WorkerLoad, ...] = ()
    #: Jobs enqueued per second since the previous poll (``None`` until two polls).
    arrival_rate: float | None = None
    #: Mean handler time of a finished attempt in seconds (``None`` with no data).
    mean_service_s: float | None = None
    #: When anything last waited, ran or kept a worker busy (the loop's clock);
    #: ``None`` means never seen, so scale-to-zero need not wait.
    last_busy_at: float | None = None
    #: The workers' cumulative counters, summed over the queues (for the rates).
    counters: Counters | None = None
    #: The worker container's CPU (cores) and memory (bytes) request, from the
    #: target's Pod template; the resource triggers count utilisation against them.
    cpu_request_cores: float | None = None
    memory_request_bytes: float | None = None
    #: The largest ``reservedReplicas`` among the queues that have work now: a
    #: floor a high-priority queue claims for itself (``spec.weightedQueues``).
    reserved_floor: int = 0
    #: Jobs one worker runs at once, from the heartbeats (``None``: no worker says).
    pod_concurrency: int | None = None
    #: Seconds until the earliest delayed job or retry is due (``None``: none is
    #: scheduled). A job due within a pod's start-up time is work already.
    next_delayed_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    """The counters the workers publish (``jobqueue_protocol.keys``), summed over queues."""

    enqueued: int
    finished: int  # completed + failed attempts: what busy_ms is the handler time of
    busy_ms: int


@dataclass(frozen=True, slots=True)
class Rates:
    """What two successive polls' counters say about the queue."""

    arrival_rate: float | None
    mean_service_s: float | None


def rates_between(
    previous: tuple[float, Counters] | None, now: float, current: Counters | None
) -> Rates:
    """Arrival rate and mean service time from two polls' counters (pure).

    The arrival rate needs two polls: a restarted operator waits one tick. The
    service time prefers the last interval's finished attempts and falls back to
    the lifetime mean, so it is known at once, even at zero replicas. A counter
    that went down (a reset, a flushed Redis) gives no rate rather than a
    negative one.
    """
    if current is None:
        return Rates(None, None)
    service = None
    if current.finished > 0:
        service = current.busy_ms / 1000.0 / current.finished
    arrival = None
    if previous is not None:
        then, before = previous
        dt = now - then
        d_enq = current.enqueued - before.enqueued
        d_fin = current.finished - before.finished
        d_busy = current.busy_ms - before.busy_ms
        if dt > 0 and d_enq >= 0:
            arrival = d_enq / dt
        if d_fin > 0 and d_busy >= 0:
            service = d_busy / 1000.0 / d_fin
    return Rates(arrival, service)


@dataclass(frozen=True, slots=True)
class MetricsMissing:
    """A failed poll; ``consecutive_failures`` counts this one."""

    consecutive_failures: int
    error: str


def first_non_finite(obs: Observation) -> str | None:
    """The name of a numeric field that is NaN, infinite or negative, if any.

    Such a poll cannot be trusted as a whole: a NaN compares false with every
    threshold (so it would mask a real backlog) and an infinity overflows the
    sizing. The policy treats the poll as a failed one.
    """
    for item in fields(obs):
        value = getattr(obs, item.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            return item.name
        if value < 0 and item.name != "next_delayed_in_s":
            return item.name
    return None


#: The arrival rate and the service time are measured over this many seconds of
#: polls: one 5 s poll of Poisson arrivals at 20/s is ±10 % noise, enough to flip a
#: capacity-sized count up and down on a steady load.
RATE_WINDOW_S = 30.0


@dataclass
class CounterWindow:
    """The polls' counters of the last RATE_WINDOW_S, oldest first (state for a loop)."""

    samples: list[tuple[float, Counters]] = field(default_factory=list)

    def rates(self, now: float, current: Counters | None) -> Rates:
        """Rates from the oldest sample still in the window to ``current``; then keep it."""
        if current is None:
            self.samples.clear()
            return rates_between(None, now, None)
        # keep one sample at least RATE_WINDOW_S old, so the window is full once it can be
        while len(self.samples) > 1 and self.samples[1][0] <= now - RATE_WINDOW_S:
            self.samples.pop(0)
        previous = self.samples[0] if self.samples else None
        rates = rates_between(previous, now, current)
        if previous is not None and rates.arrival_rate is None:
            self.samples.clear()  # a counter went down (a reset): start again
        self.samples.append((now, current))
        return rates
