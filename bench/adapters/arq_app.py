"""arq adapter (runs in the arq venv).

Worker: ``python arq_app.py worker`` = ``arq.worker.run_worker(WorkerSettings)`` (the documented
Python entry point, same as the ``arq`` CLI) with logging at WARNING, because the CLI logs two
INFO lines per job and no other system here logs per job. ``BENCH_VARIANT=defaults`` keeps
arq's defaults (max_jobs=10, poll_delay=0.5 s); ``tuned`` sets max_jobs=100, poll_delay=0.01 s.
Results are kept as by default (keep_result=3600 s): that is how arq is documented to run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import run_worker
from common import apace, emit, parse_args, queue_name, record, redis_url

TUNED = os.environ.get("BENCH_VARIANT", "defaults") == "tuned"


async def noop(ctx: dict[str, Any], enq_ts: float) -> None:
    record(enq_ts)


class WorkerSettings:
    functions = [noop]  # noqa: RUF012
    redis_settings = RedisSettings.from_dsn(redis_url())
    queue_name = queue_name()
    max_jobs = 100 if TUNED else 10
    poll_delay = 0.01 if TUNED else 0.5
    handle_signals = True


async def _enqueue(n: int) -> dict[str, object]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url()), default_queue_name=queue_name())
    t0 = time.perf_counter()
    batch = 100
    for i in range(0, n, batch):
        now = time.time()
        await asyncio.gather(*(pool.enqueue_job("noop", now) for _ in range(min(batch, n - i))))
    seconds = time.perf_counter() - t0
    await pool.aclose()
    return {"seconds": seconds, "method": "asyncio.gather of enqueue_job, 100 at a time"}


async def _produce(n: int, rate: float, deadline: float) -> dict[str, object]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url()), default_queue_name=queue_name())
    sent = await apace(n, rate, lambda ts: pool.enqueue_job("noop", ts), deadline)
    await pool.aclose()
    return {"sent": sent}


def main() -> None:
    args = parse_args()
    if args.cmd == "enqueue":
        emit(asyncio.run(_enqueue(args.n)))
    elif args.cmd == "produce":
        emit(asyncio.run(_produce(args.n, args.rate, args.deadline)))
    else:
        logging.basicConfig(level=logging.WARNING)
        run_worker(WorkerSettings)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
