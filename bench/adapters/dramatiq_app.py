"""Dramatiq adapter (runs in the dramatiq venv).

Worker: ``dramatiq dramatiq_app --processes 1 --threads 8`` (the documented CLI; 8 threads and
a prefetch of 2 x threads are Dramatiq's defaults). Broker: ``RedisBroker`` with its default
middleware; the actor has ``max_retries=0`` (a no-op never fails). No result backend.
"""

from __future__ import annotations

import sys
import time

import dramatiq
from common import emit, pace, parse_args, queue_name, record, redis_url
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=queue_name(), max_retries=0)
def noop(enq_ts: float) -> None:
    record(enq_ts)


def main() -> None:
    args = parse_args()
    if args.cmd == "enqueue":
        t0 = time.perf_counter()
        now = time.time()
        for _ in range(args.n):
            noop.send(now)
        seconds = time.perf_counter() - t0
        emit({"seconds": seconds, "method": "actor.send in a loop (Dramatiq has no bulk enqueue)"})
    elif args.cmd == "produce":
        emit({"sent": pace(args.n, args.rate, noop.send, args.deadline)})
    else:
        sys.exit("the Dramatiq worker runs through the dramatiq CLI")


if __name__ == "__main__":
    main()
