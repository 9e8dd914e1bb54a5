"""The queue facts the operator scales on, read in ONE pipelined round trip.

No Lua and no writes, so a read-only Redis ACL user is enough for the operator.
Ages are computed against Redis's own clock (``TIME`` is part of the same
pipeline), never the caller's, because pods' clocks drift and the scores were
written with Redis time.

Heartbeats are parsed with ``heartbeat.WorkerHeartbeat`` (re-exported here for
the readers that import it from this module).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
import redis.asyncio as redis_asyncio

from jobqueue_protocol import keys
from jobqueue_protocol.heartbeat import ActiveJob, WorkerHeartbeat, heartbeat_json

__all__ = ["ActiveJob", "QueueStats", "WorkerHeartbeat", "heartbeat_json", "queue_stats"]


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting_by_priority: Mapping[int, int]
    waiting: int
    delayed: int
    in_flight: int
    dead: int
    oldest_ready_at: float | None  # epoch seconds of the oldest waiting job
    workers: tuple[WorkerHeartbeat, ...]
    counters: Mapping[str, int]
    server_time: float  # Redis TIME, epoch seconds
    # Delayed jobs already due but not yet promoted (no worker fetched since).
    # Counted against the caller's clock, so it is approximate; it matters when
    # the queue is scaled to zero and nothing promotes them.
    delayed_due: int = field(default=0)
    # When the earliest delayed job or retry is due (epoch seconds, Redis's clock
    # as the scores are written); None when nothing is scheduled.
    next_delayed_at: float | None = field(default=None)

    def oldest_age_s(self) -> float:
        if self.oldest_ready_at is None:
            return 0.0
        return max(0.0, self.server_time - self.oldest_ready_at)


# Commands per queue in the pipeline, in this order.
_PER_QUEUE = 2 * len(keys.PRIORITIES) + 7


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def queue_stats(
    redis: redis.asyncio.Redis,
    queues: Sequence[str],
    *,
    heartbeat_ttl_s: float = 30.0,
) -> dict[str, QueueStats]:
    """Depth per priority, delayed, in flight, dead, oldest age and heartbeats.

    ONE pipelined round trip (``transaction=False``) whatever the number of
    queues; heartbeats older than ``heartbeat_ttl_s`` (Redis clock) are dropped.
    """
    now_ms_client = int(time.time() * 1000)
    # A cluster pipeline refuses keyless commands (TIME): ask one node first; the
    # pipeline then goes out as one batch per node, all nodes at once.
    on_cluster = isinstance(redis, redis_asyncio.RedisCluster)
    clock = await redis.time() if on_cluster else None
    pipe = redis.pipeline(transaction=False)
    if clock is None:
        pipe.time()
    for queue in queues:
        for p in keys.PRIORITIES:
            pipe.zcard(keys.ready_key(queue, p))
        for p in keys.PRIORITIES:
            pipe.zrange(keys.ready_key(queue, p), 0, 0, withscores=True)
        pipe.zcard(keys.delayed_key(queue))
        pipe.zcount(keys.delayed_key(queue), "-inf", now_ms_client)
        pipe.zrange(keys.delayed_key(queue), 0, 0, withscores=True)
        pipe.zcard(keys.lease_key(queue))
        pipe.zcard(keys.dead_key(queue))
        pipe.hgetall(keys.workers_key(queue))
        pipe.hgetall(keys.counters_key(queue))
    replies = await pipe.execute()
    if clock is not None:
        replies = [clock, *replies]

    secs, micros = replies[0]
    server_time = int(secs) + int(micros) / 1_000_000
    out: dict[str, QueueStats] = {}
    for i, queue in enumerate(queues):
        r = replies[1 + i * _PER_QUEUE : 1 + (i + 1) * _PER_QUEUE]
        n = len(keys.PRIORITIES)
        depths = {p: int(r[j]) for j, p in enumerate(keys.PRIORITIES)}
        heads = [float(row[0][1]) for row in r[n : 2 * n] if row]
        delayed, due, first_due, in_flight, dead, raw_workers, raw_counters = r[2 * n :]
        workers = []
        for value in raw_workers.values():
            hb = WorkerHeartbeat.from_json(value)
            if hb is not None and server_time - hb.seen_at <= heartbeat_ttl_s:
                workers.append(hb)
        workers.sort(key=lambda w: w.worker_id)
        counters = {}
        for k, v in raw_counters.items():
            try:
                counters[_text(k)] = int(v)
            except ValueError:
                continue
        out[queue] = QueueStats(
            queue=queue,
            waiting_by_priority=depths,
            waiting=sum(depths.values()),
            delayed=int(delayed),
            in_flight=int(in_flight),
            dead=int(dead),
            oldest_ready_at=min(heads) / 1000.0 if heads else None,
            workers=tuple(workers),
            counters=counters,
            server_time=server_time,
            delayed_due=int(due),
            next_delayed_at=float(first_due[0][1]) / 1000.0 if first_due else None,
        )
    return out
