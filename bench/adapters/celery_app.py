"""Celery adapter (runs in the celery venv).

Worker: ``celery -A celery_app worker --pool=solo --without-gossip --without-mingle
--without-heartbeat -Q QUEUE`` (one process; the optimizing guide's advice for many short tasks:
raise the prefetch multiplier, here 64). Defaults kept: early ack (``task_acks_late=False``),
no result backend (``task_ignore_result=True``).
"""

from __future__ import annotations

import sys
import time

from celery import Celery
from common import emit, pace, parse_args, queue_name, record, redis_url

app = Celery("bench", broker=redis_url())
app.conf.update(
    task_default_queue=queue_name(),
    task_ignore_result=True,
    worker_prefetch_multiplier=64,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(enq_ts: float) -> None:
    record(enq_ts)


def main() -> None:
    args = parse_args()
    if args.cmd == "enqueue":
        t0 = time.perf_counter()
        now = time.time()
        with app.producer_or_acquire() as producer:
            for _ in range(args.n):
                noop.apply_async((now,), producer=producer)
        seconds = time.perf_counter() - t0
        emit({"seconds": seconds, "method": "apply_async in a loop on one producer"})
    elif args.cmd == "produce":
        emit({"sent": pace(args.n, args.rate, noop.delay, args.deadline)})
    else:
        sys.exit("the Celery worker runs through the celery CLI")


if __name__ == "__main__":
    main()
