"""The floor: a bare Redis list hand-off between two Python processes (runs in the project venv).

Not a job queue and not a peer: no lease, no ack, no retry, no record of the job. The
producer ``LPUSH``es the enqueue time and the worker blocks in ``BRPOP`` and records it
as soon as the reply arrives, both with redis-py over hiredis on one connection. Its start
latency is what this host charges for the hand-off itself (a producer's send, Redis's
wake-up, the worker's wake-up), so every system's start latency in the same run can be
read against it. Bulk enqueue is ``LPUSH`` of 1000 values per call.
"""

from __future__ import annotations

import sys
import time

from common import emit, pace, parse_args, queue_name, record, redis_url
from redis import Redis

BATCH = 1000


def main() -> None:
    args = parse_args()
    conn = Redis.from_url(redis_url())
    key = f"floor:{queue_name()}"
    if args.cmd == "enqueue":
        t0 = time.perf_counter()
        for i in range(0, args.n, BATCH):
            now = repr(time.time())
            conn.lpush(key, *([now] * min(BATCH, args.n - i)))
        emit({"seconds": time.perf_counter() - t0, "method": f"LPUSH, {BATCH} values per call"})
    elif args.cmd == "produce":
        emit({"sent": pace(args.n, args.rate, lambda ts: conn.lpush(key, repr(ts)), args.deadline)})
    elif args.cmd == "worker":
        while True:
            popped = conn.brpop([key], timeout=0)
            if popped is not None:
                record(float(popped[1]))
    else:
        sys.exit(f"unknown command {args.cmd}")


if __name__ == "__main__":
    main()
