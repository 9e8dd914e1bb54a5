"""compare-keda's traces and the world they run in: pure, no I/O.

Three short arrival traces (step surge, flash crowd, drain to zero and back) and
the constants both sides of the comparison share: a worker pod's slots, the
replica bound that fits two cores, the jobs' service times, the HPA's sync.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from jobqueue_simulator import traces as sim_traces
from jobqueue_simulator.engine import Distribution, ServiceModel

CONCURRENCY = 10  # slots a worker pod, as in specs/bench
MAX_REPLICAS = 10  # 60 in specs/bench; 10 worker processes a side fit two cores
SERVICE = ServiceModel(Distribution.LOGNORMAL, 2.0, 0.5)  # each job's `sleep` seconds
TAIL_S = 45  # after the last arrival, inside the measured window
HPA_SYNC_S = 15  # the plane's HPA controller: Kubernetes' default
SAMPLE_EVERY_S = 1.0
SETTLE_TIMEOUT_S = 120.0
# The world the simulator's KEDA model runs in, as this machine shows it. A /scale
# write reaches the ReplicaSet in about a second, and a worker process of the dev
# pod runner is ready about a second after that: real KEDA's writes were followed
# by ready Pods 1-3 s later (median 1 s, sampled each second) on every rise of
# every trace. Set from that measurement, not from the timelines' agreement.
SIM_ACTUATION_S = 1.0
SIM_STARTUP_S = 1.0
# The HPA reads the metric when it syncs: without useCachedMetrics, KEDA's adapter
# asks the operator, which asks our scaler, which reads Redis then. The figures a
# sync reads are as old as that round trip, not the bench's 2 s.
SIM_STALENESS_S = 0.0


@dataclass(frozen=True)
class Trace:
    """One short arrival trace: jobs a second, where the surge is and what it needs."""

    name: str
    description: str
    seed: int
    duration_s: int
    rate: Callable[[int], float]
    surge_at_s: int
    surge_rate: float
    #: A window with no arrivals (drain to zero and back), or None.
    idle: tuple[int, int] | None = None

    def rows(self) -> list[tuple[int, int]]:
        """(second, jobs arriving in it): Poisson counts from the trace's seed."""
        rng = random.Random(self.seed)
        return [(t, sim_traces.poisson(rng, self.rate(t))) for t in range(self.duration_s)]

    def services(self, jobs: int) -> list[float]:
        """Each job's sleep, in arrival order, from its own stream of the seed."""
        rng = random.Random(self.seed * 7919 + 1)
        return [round(SERVICE.draw(rng), 3) for _ in range(jobs)]

    @property
    def needed_replicas(self) -> int:
        """Pods whose slots cover the surge's arrival rate × mean service time."""
        return math.ceil(self.surge_rate * SERVICE.mean_s / CONCURRENCY - 1e-9)


TRACES: tuple[Trace, ...] = (
    Trace(
        "step",
        "2 jobs/s for 30 s, then 20 jobs/s until 3 min",
        21,
        180,
        lambda t: 20.0 if t >= 30 else 2.0,
        surge_at_s=30,
        surge_rate=20.0,
    ),
    Trace(
        "flash-crowd",
        "2 jobs/s; 40 jobs/s for 30 s at 30 s; 2 jobs/s until 3 min",
        22,
        180,
        lambda t: 40.0 if 30 <= t < 60 else 2.0,
        surge_at_s=30,
        surge_rate=40.0,
    ),
    Trace(
        "drain-and-back",
        "15 jobs/s for 60 s, nothing for 90 s, 15 jobs/s for 60 s",
        23,
        210,
        lambda t: 0.0 if 60 <= t < 150 else 15.0,
        surge_at_s=150,
        surge_rate=15.0,
        idle=(60, 150),
    ),
)
