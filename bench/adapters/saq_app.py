"""saq adapter (runs in the saq venv).

Worker: ``saq saq_app.settings --workers 1`` (the documented CLI) with saq's default
concurrency of 10. Jobs are kept as saq does by default (status/result with its default TTL).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from common import apace, emit, parse_args, queue_name, record, redis_url
from saq import Queue

queue = Queue.from_url(redis_url(), name=queue_name())


async def noop(ctx: dict[str, Any], *, enq_ts: float) -> None:
    record(enq_ts)


settings = {"queue": queue, "functions": [noop], "concurrency": 10}


async def _enqueue(n: int) -> dict[str, object]:
    await queue.connect()
    t0 = time.perf_counter()
    batch = 100
    for i in range(0, n, batch):
        now = time.time()
        await asyncio.gather(*(queue.enqueue("noop", enq_ts=now) for _ in range(min(batch, n - i))))
    seconds = time.perf_counter() - t0
    await queue.disconnect()
    return {"seconds": seconds, "method": "asyncio.gather of Queue.enqueue, 100 at a time"}


async def _produce(n: int, rate: float, deadline: float) -> dict[str, object]:
    await queue.connect()
    sent = await apace(n, rate, lambda ts: queue.enqueue("noop", enq_ts=ts), deadline)
    await queue.disconnect()
    return {"sent": sent}


def main() -> None:
    args = parse_args()
    if args.cmd == "enqueue":
        emit(asyncio.run(_enqueue(args.n)))
    elif args.cmd == "produce":
        emit(asyncio.run(_produce(args.n, args.rate, args.deadline)))
    else:
        sys.exit("the saq worker runs through the saq CLI")


if __name__ == "__main__":
    main()
