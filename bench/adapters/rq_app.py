"""RQ adapter (runs in the rq venv).

Worker: ``rq worker --url URL --worker-class rq.Worker|rq.worker.SimpleWorker QUEUE`` (the
documented CLI); ``BENCH_VARIANT`` picks the class. Bulk enqueue uses the documented
``Queue.prepare_data`` + ``Queue.enqueue_many`` in a pipeline.
"""

from __future__ import annotations

import sys
import time

from common import emit, pace, parse_args, queue_name, record, redis_url
from redis import Redis
from rq import Queue


def noop(enq_ts: float) -> None:
    record(enq_ts)


def main() -> None:
    args = parse_args()
    conn = Redis.from_url(redis_url())
    q = Queue(queue_name(), connection=conn)
    if args.cmd == "enqueue":
        t0 = time.perf_counter()
        batch = 1000
        for i in range(0, args.n, batch):
            now = time.time()
            datas = [
                Queue.prepare_data("rq_app.noop", (now,)) for _ in range(min(batch, args.n - i))
            ]
            with conn.pipeline() as pipe:
                q.enqueue_many(datas, pipeline=pipe)
                pipe.execute()
        seconds = time.perf_counter() - t0
        emit({"seconds": seconds, "method": "Queue.enqueue_many in a pipeline, 1000 at a time"})
    elif args.cmd == "produce":
        sent = pace(args.n, args.rate, lambda ts: q.enqueue("rq_app.noop", ts), args.deadline)
        emit({"sent": sent})
    else:
        sys.exit("the RQ worker runs through the rq CLI")


if __name__ == "__main__":
    main()
