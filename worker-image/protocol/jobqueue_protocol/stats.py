"""The queue facts the operator scales on, read in ONE pipelined round trip.

No Lua and no writes, so a read-only Redis ACL user is enough for the operator.
Ages are computed against Redis's own clock (``TIME`` is part of the same
pipeline), never the caller's, because pods' clocks drift and the scores were
written with Redis time.

The heartbeat JSON format is defined here too (``heartbeat_json``), so the
worker that writes it and the operator that reads it cannot disagree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
import redis.asyncio as redis_asyncio

from jobqueue_protocol import keys

HEARTBEAT_STATES = ("idle", "busy", "draining")


@dataclass(frozen=True)
class ActiveJob:
    id: str
    type: str
    started_at: float  # epoch seconds


@dataclass(frozen=True)
class WorkerHeartbeat:
    worker_id: str
    state: str  # "idle" | "busy" | "draining"
    seen_at: float  # epoch seconds, Redis clock
    active_jobs: int
    jobs: tuple[ActiveJob, ...]
    started_at: float
    rss_bytes: int
    processed: int
    failed: int
    mean_processing_s: float
    pod_name: str | None
    # Cores the worker process (and its reaped children) used on average since
    # its previous heartbeat; None from a worker that does not report it, so the
    # operator's CPU trigger stays off instead of reading an old worker as idle.
    cpu_cores: float | None = None
    # Jobs this worker runs at once (JQW_CONCURRENCY); None from an older worker.
    # The operator's floor is the slots the running jobs fill, which needs it.
    concurrency: int | None = None

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerHeartbeat | None:
        """None for anything malformed: one broken entry must not hide the others."""
        try:
            data = json.loads(raw)
            jobs = tuple(
                ActiveJob(id=str(j["id"]), type=str(j["type"]), started_at=float(j["started_at"]))
                for j in data.get("jobs", [])
            )
            pod = data.get("pod_name")
            cpu = data.get("cpu_cores")
            slots = data.get("concurrency")
            return cls(
                worker_id=str(data["worker_id"]),
                state=str(data["state"]),
                seen_at=float(data["seen_at"]),
                active_jobs=int(data.get("active_jobs", len(jobs))),
                jobs=jobs,
                started_at=float(data.get("started_at", 0.0)),
                rss_bytes=int(data.get("rss_bytes", 0)),
                processed=int(data.get("processed", 0)),
                failed=int(data.get("failed", 0)),
                mean_processing_s=float(data.get("mean_processing_s", 0.0)),
                pod_name=None if pod is None else str(pod),
                cpu_cores=None if cpu is None else float(cpu),
                concurrency=None if slots is None else int(slots),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def heartbeat_json(hb: WorkerHeartbeat) -> str:
    """The heartbeat as the worker sends it; ``seen_at`` is left out on purpose.

    The heartbeat script prepends ``"seen_at": <Redis TIME>`` so the stored
    timestamp is on Redis's clock.
    """
    return json.dumps(
        {
            "worker_id": hb.worker_id,
            "state": hb.state,
            "active_jobs": hb.active_jobs,
            "jobs": [{"id": j.id, "type": j.type, "started_at": j.started_at} for j in hb.jobs],
            "started_at": hb.started_at,
            "rss_bytes": hb.rss_bytes,
            "processed": hb.processed,
            "failed": hb.failed,
            "mean_processing_s": hb.mean_processing_s,
            "pod_name": hb.pod_name,
            "cpu_cores": hb.cpu_cores,
            "concurrency": hb.concurrency,
        },
        separators=(",", ":"),
    )


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
