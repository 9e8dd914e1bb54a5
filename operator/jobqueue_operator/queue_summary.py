"""One JobQueue's queue statistics summed into the policy's :class:`Observation` (pure).

``observe.py`` reads the statistics (one round trip, ``jobqueue_protocol.stats``);
this module only adds them up, so the sums are tested without a Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from jobqueue_operator.policy import Counters, Observation, WorkerLoad
from jobqueue_operator.ports import QueueSample, WatchedQueue
from jobqueue_protocol import keys

if TYPE_CHECKING:  # the types only; the module that reads them talks to Redis
    from jobqueue_protocol.stats import QueueStats, WorkerHeartbeat


def summarise(
    stats: Mapping[str, QueueStats], weights: Mapping[str, WatchedQueue] | None = None
) -> Observation:
    """Depth and counts add up over the queues; latency is the oldest job anywhere.

    With weights (``spec.weightedQueues``) the depth is the weighted sum (a job of
    a weight-2 queue counts as two: the pool's work in worker-seconds) and the
    age is the largest weighted age (a weight-2 queue's job at 10 s presses like
    one at 20 s). In flight, delayed, dead and the workers are plain counts. The
    reserved floor is the largest ``reservedReplicas`` of a queue that has work.

    A worker that consumes several of the queues heartbeats into each, so workers
    are counted once by id.
    """
    weights = weights or {}

    def weight(queue: str) -> float:
        found = weights.get(queue)
        return found.weight if found is not None else 1.0

    workers = {hb.worker_id: hb for s in stats.values() for hb in s.workers}
    server_time = max((s.server_time for s in stats.values()), default=0.0)
    reserved = [
        w.reserved
        for q, w in weights.items()
        if q in stats and (stats[q].waiting or stats[q].delayed_due or stats[q].in_flight)
    ]
    return Observation(
        # A delayed job that is already due waits like a ready one; only a worker's
        # fetch promotes it, so at zero replicas it would otherwise never wake a pool.
        depth=round(sum((s.waiting + s.delayed_due) * weight(q) for q, s in stats.items())),
        oldest_age_s=max((s.oldest_age_s() * weight(q) for q, s in stats.items()), default=0.0),
        reserved_floor=max(reserved, default=0),
        in_flight=sum(s.in_flight for s in stats.values()),
        busy_workers=sum(1 for hb in workers.values() if hb.active_jobs > 0),
        delayed=sum(s.delayed for s in stats.values()),
        dead=sum(s.dead for s in stats.values()),
        workers=len(workers),
        worker_loads=tuple(
            _load(hb, server_time) for hb in workers.values() if hb.pod_name is not None
        ),
        counters=_counters(stats) if stats else None,
        pod_concurrency=max(
            (hb.concurrency for hb in workers.values() if hb.concurrency), default=None
        ),
        next_delayed_in_s=min(
            (
                s.next_delayed_at - s.server_time
                for s in stats.values()
                if s.next_delayed_at is not None
            ),
            default=None,
        ),
    )


def queue_samples(stats: Mapping[str, QueueStats]) -> dict[str, QueueSample]:
    """Each queue's numbers for the per-queue gauges (``metrics.set_queue_gauges``)."""
    return {
        queue: QueueSample(
            waiting_by_priority=dict(s.waiting_by_priority),
            oldest_age_s=s.oldest_age_s(),
            delayed=s.delayed,
            in_flight=s.in_flight,
            dead=s.dead,
        )
        for queue, s in stats.items()
    }


def _counters(stats: Mapping[str, QueueStats]) -> Counters:
    """The workers' cumulative counters summed over the queues, for the SLO/rate sizing."""

    def total(name: str) -> int:
        return sum(s.counters.get(name, 0) for s in stats.values())

    return Counters(
        enqueued=total(keys.COUNTER_ENQUEUED),
        finished=total(keys.COUNTER_COMPLETED) + total(keys.COUNTER_FAILED),
        busy_ms=total(keys.COUNTER_BUSY_MS),
    )


def _load(hb: WorkerHeartbeat, server_time: float) -> WorkerLoad:
    """The heartbeat fields the victim choice and the resource triggers use."""
    return WorkerLoad(
        pod_name=hb.pod_name or "",
        state=hb.state,
        active_jobs=hb.active_jobs,
        busy_s=sum(max(0.0, server_time - job.started_at) for job in hb.jobs),
        longest_s=max((max(0.0, server_time - job.started_at) for job in hb.jobs), default=0.0),
        processed=hb.processed,
        rss_bytes=hb.rss_bytes,
        cpu_cores=hb.cpu_cores,
    )
