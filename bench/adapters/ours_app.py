"""Our adapter: ``jobqueue_worker`` (runs in the project venv, worker-image on PYTHONPATH).

Worker: ``python -m jobqueue_worker worker --handlers ours_app --queues Q --concurrency 10``
(the image's entry point) with JQW_HTTP_PORT=0 (two workers on one host) and
JQW_LOG_LEVEL=WARNING; everything else is the worker's defaults (30 s leases renewed by the
renewal thread, at-least-once delivery, results kept 1 day). Bulk enqueue is the documented
``Producer.enqueue_many`` (one round trip per call), 1000 jobs per call.

``BENCH_QUEUE`` may name several queues (``a,b,c``, as the worker's ``--queues`` takes them):
jobs are then dealt round-robin over them (bench/redis_ha.py spreads a drain over the shards
of a Redis Cluster that way). One queue is the default and behaves as before.

``BENCH_SLEEP_MS`` (default 0) makes the job ``await asyncio.sleep`` that long before its
record: the I/O-bound handler row (a 1 ms sleep at concurrency 100 against the no-op rate).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable

from common import apace, emit, parse_args, queue_name, record, redis_url

try:
    from jobqueue_worker.producer import JobRequest, Producer
    from jobqueue_worker.registry import Job, Registry
except ImportError as exc:  # the worker runtime is not importable: say so clearly
    sys.exit(f"ours: jobqueue_worker is not importable from worker-image/ ({exc})")

registry = Registry()
_SLEEP_S = float(os.environ.get("BENCH_SLEEP_MS", "0")) / 1000


@registry.job_type("noop")
async def noop(job: Job) -> None:
    if _SLEEP_S:
        await asyncio.sleep(_SLEEP_S)
    payload = job.payload if isinstance(job.payload, dict) else {}
    record(float(payload.get("enq", 0.0)))  # type: ignore[arg-type]


def _queues() -> list[str]:
    return [q for q in queue_name().split(",") if q]


async def _enqueue(n: int) -> dict[str, object]:
    queues = _queues()
    async with Producer(redis_url(), default_queue=queues[0]) as producer:
        t0 = time.perf_counter()
        batch = 1000
        for i in range(0, n, batch):
            ts = time.time()
            reqs = [
                JobRequest(type="noop", payload={"enq": ts}, queue=queues[(i + k) % len(queues)])
                for k in range(min(batch, n - i))
            ]
            await producer.enqueue_many(reqs)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "method": "Producer.enqueue_many, 1000 per call"}


async def _produce(n: int, rate: float, deadline: float) -> dict[str, object]:
    queues = _queues()
    turn = iter(range(n))
    async with Producer(redis_url(), default_queue=queues[0]) as producer:

        def send(ts: float) -> Awaitable[str]:
            queue = queues[next(turn, 0) % len(queues)]
            return producer.enqueue("noop", {"enq": ts}, queue=queue)

        sent = await apace(n, rate, send, deadline)
    return {"sent": sent}


def main() -> None:
    args = parse_args()
    if args.cmd == "enqueue":
        emit(asyncio.run(_enqueue(args.n)))
    elif args.cmd == "produce":
        emit(asyncio.run(_produce(args.n, args.rate, args.deadline)))
    else:
        sys.exit("our worker runs through `python -m jobqueue_worker worker`")


if __name__ == "__main__":
    main()
