"""Our adapter: ``jobqueue_worker`` (runs in the project venv, worker-image on PYTHONPATH).

Worker: ``python -m jobqueue_worker worker --handlers ours_app --queues Q --concurrency 10``
(the image's entry point) with JQW_HTTP_PORT=0 (two workers on one host) and
JQW_LOG_LEVEL=WARNING; everything else is the worker's defaults (30 s leases renewed by the
renewal thread, at-least-once delivery, results kept 1 day). Bulk enqueue is the documented
``Producer.enqueue_many`` (one round trip per call), 1000 jobs per call.
"""

from __future__ import annotations

import asyncio
import sys
import time

from common import apace, emit, parse_args, queue_name, record, redis_url

try:
    from jobqueue_worker.producer import JobRequest, Producer
    from jobqueue_worker.registry import Job, Registry
except ImportError as exc:  # the worker runtime is not importable: say so clearly
    sys.exit(f"ours: jobqueue_worker is not importable from worker-image/ ({exc})")

registry = Registry()


@registry.job_type("noop")
async def noop(job: Job) -> None:
    payload = job.payload if isinstance(job.payload, dict) else {}
    record(float(payload.get("enq", 0.0)))  # type: ignore[arg-type]


async def _enqueue(n: int) -> dict[str, object]:
    async with Producer(redis_url(), default_queue=queue_name()) as producer:
        t0 = time.perf_counter()
        batch = 1000
        for i in range(0, n, batch):
            req = JobRequest(type="noop", payload={"enq": time.time()})
            await producer.enqueue_many([req] * min(batch, n - i))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "method": "Producer.enqueue_many, 1000 per call"}


async def _produce(n: int, rate: float, deadline: float) -> dict[str, object]:
    async with Producer(redis_url(), default_queue=queue_name()) as producer:
        sent = await apace(n, rate, lambda ts: producer.enqueue("noop", {"enq": ts}), deadline)
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
