"""Shared by every Python adapter; stdlib only (it runs inside each peer's own venv).

The benchmark job is the same everywhere: ``noop(enq_ts)`` appends one fixed-width record
``<start time><enqueue time><worker tag>\\n`` (44 bytes) to the file named by
``BENCH_OUT`` with a single ``write`` on an ``O_APPEND`` descriptor (atomic for small writes,
safe across threads and forks). The harness counts finished jobs from the file size and reads
start times from it afterwards.

Adapters are configured through the environment:
``BENCH_REDIS_URL`` (``redis://127.0.0.1:<port>/0``), ``BENCH_OUT``, ``BENCH_QUEUE``,
``BENCH_WORKER`` (w1, w2: which worker process ran the job).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

RECORD_SIZE = 44
_state: dict[str, int] = {}  # pid -> fd, per process (forked children reopen)


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def queue_name() -> str:
    return os.environ.get("BENCH_QUEUE", "bench")


def record(enq_ts: float) -> None:
    """The body of the no-op job: one 44-byte append (BENCH_WORKER tags the worker process)."""
    start = time.time()
    fd = _state.get("fd")
    if fd is None or _state.get("pid") != os.getpid():
        fd = os.open(os.environ["BENCH_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _state.update(fd=fd, pid=os.getpid())
    tag = os.environ.get("BENCH_WORKER", "-")[:4]
    os.write(fd, f"{start:20.6f}{float(enq_ts):19.6f}{tag:>4}\n".encode())


def emit(result: dict[str, object]) -> None:
    """Print the adapter's result as the last stdout line (the harness parses it)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def pace(n: int, rate: float, send: Callable[[float], None], deadline_s: float) -> int:
    """Call ``send(time.time())`` n times at ``rate`` per second; bounded by ``deadline_s``."""
    interval = 1.0 / rate
    t0 = time.perf_counter()
    end = t0 + deadline_s
    sent = 0
    for i in range(n):
        target = t0 + i * interval
        now = time.perf_counter()
        if now > end:
            break
        if target > now:
            time.sleep(target - now)
        send(time.time())
        sent += 1
    return sent


async def apace(n: int, rate: float, send: Callable[[float], object], deadline_s: float) -> int:
    """Async version of :func:`pace`; ``send`` returns an awaitable."""
    import asyncio

    interval = 1.0 / rate
    t0 = time.perf_counter()
    end = t0 + deadline_s
    sent = 0
    for i in range(n):
        target = t0 + i * interval
        now = time.perf_counter()
        if now > end:
            break
        if target > now:
            await asyncio.sleep(target - now)
        await send(time.time())  # type: ignore[misc]
        sent += 1
    return sent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``enqueue --n N`` (bulk, timed) or ``produce --n N --rate R`` (paced, for latency)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    enq = sub.add_parser("enqueue")
    enq.add_argument("--n", type=int, required=True)
    prod = sub.add_parser("produce")
    prod.add_argument("--n", type=int, required=True)
    prod.add_argument("--rate", type=float, default=100.0)
    prod.add_argument("--deadline", type=float, default=120.0)
    wrk = sub.add_parser("worker")
    wrk.add_argument("--name", default="w1")
    return parser.parse_args(argv)
