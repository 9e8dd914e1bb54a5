"""taskiq + taskiq-redis adapter (runs in the taskiq venv).

Worker: ``taskiq worker taskiq_app:broker --workers 1`` (the documented CLI; defaults kept:
max-async-tasks 100, ack when saved). ``BENCH_VARIANT=stream`` uses ``RedisStreamBroker``
(acknowledged, at-least-once; defaults: the consumer group is created at worker start, before
the harness enqueues anything); ``list`` uses ``ListQueueBroker`` (BRPOP, no ack). No result
backend.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from common import apace, emit, parse_args, queue_name, record, redis_url
from taskiq_redis import ListQueueBroker, RedisStreamBroker

if os.environ.get("BENCH_VARIANT", "stream") == "list":
    broker = ListQueueBroker(redis_url(), queue_name=queue_name())
else:
    broker = RedisStreamBroker(redis_url(), queue_name=queue_name())


@broker.task(task_name="noop")
async def noop(enq_ts: float) -> None:
    record(enq_ts)


async def _enqueue(n: int) -> dict[str, object]:
    await broker.startup()
    t0 = time.perf_counter()
    batch = 100
    for i in range(0, n, batch):
        now = time.time()
        await asyncio.gather(*(noop.kiq(now) for _ in range(min(batch, n - i))))
    seconds = time.perf_counter() - t0
    await broker.shutdown()
    return {"seconds": seconds, "method": "asyncio.gather of task.kiq, 100 at a time"}


async def _produce(n: int, rate: float, deadline: float) -> dict[str, object]:
    await broker.startup()
    sent = await apace(n, rate, noop.kiq, deadline)
    await broker.shutdown()
    return {"sent": sent}


def main() -> None:
    args = parse_args()
    if args.cmd == "enqueue":
        emit(asyncio.run(_enqueue(args.n)))
    elif args.cmd == "produce":
        emit(asyncio.run(_produce(args.n, args.rate, args.deadline)))
    else:
        sys.exit("the taskiq worker runs through the taskiq CLI")


if __name__ == "__main__":
    main()
