"""The ReplicaSet's part of the simulation: a pod, how long it takes to start, and
which pods go when the count drops.

Kept apart from the engine because these are Kubernetes' rules, not the queue's:
the engine decides *when* pods are added or removed, this module how long one
takes to start and *which* ones go. Pure like the engine: randomness only from
the ``random.Random`` passed in.

* **Start-up**: ``startup_delay_s``, or lognormal per pod around it
  (``startup_sigma``).
* **Which pods go**: the ReplicaSet's ranking: not-Ready first, then the lowest
  ``pod-deletion-cost`` (written by a policy that chooses pods), then Ready for
  a shorter time in log₂ buckets, ties at random; blind to jobs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping

from jobqueue_simulator.world import SimConfig, pod_name


class Pod:
    """One pod of the Deployment and the jobs on its slots."""

    __slots__ = ("created_at", "pid", "ready_at", "running")

    def __init__(self, pid: int, created_at: float, ready_at: float) -> None:
        self.pid = pid
        self.created_at = created_at
        self.ready_at = ready_at
        self.running: dict[int, int] = {}  # slot -> job


def startup_delay(config: SimConfig, rng: random.Random) -> float:
    """How long a new pod takes to become Ready."""
    if config.startup_sigma <= 0 or config.startup_delay_s <= 0:
        return config.startup_delay_s
    return rng.lognormvariate(math.log(config.startup_delay_s), config.startup_sigma)


def pods_to_remove(
    pods: Iterable[Pod], count: int, now: float, costs: Mapping[str, int], rng: random.Random
) -> list[Pod]:
    """The ``count`` pods the ReplicaSet deletes, in its order."""

    def deletion_rank(pod: Pod) -> tuple[int, int, int, float]:
        """Lower goes first: not Ready; the lowest pod-deletion-cost; Ready for less
        time (log₂ buckets); at random."""
        tie = rng.random()
        if pod.ready_at > now:
            return (0, 0, 0, tie)
        ready_for = now - pod.ready_at
        bucket = int(math.log2(ready_for)) if ready_for >= 1.0 else 0
        return (1, costs.get(pod_name(pod.pid), 0), bucket, tie)

    return sorted(pods, key=deletion_rank)[:count]
