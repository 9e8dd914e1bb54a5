"""``python -m bench.enqueue_cost``: a producer's CPU per ``Producer.enqueue`` call.

    .venv/bin/python -m bench.enqueue_cost                       # this tree
    .venv/bin/python -m bench.enqueue_cost --base /tmp/base      # and another, interleaved

One job per call, awaited before the next (the start-latency row's producer does the
same at 100 a second): the producer process's CPU (user + system) per call and the
wall time per call, measured in a fresh process per round so neither tree inherits the
other's caches; the trees take turns round by round, against one throwaway
redis-server. Medians over the rounds. Writes nothing but its report to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.ab import tree_env
from bench.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[1]

# Runs in the measured tree's interpreter path; prints one JSON line.
PROBE = """
import asyncio, json, sys, time
from jobqueue_worker.producer import Producer

async def main(url, calls):
    async with Producer(url, default_queue="cost") as producer:
        for _ in range(200):  # warm-up: connections, scripts, caches
            await producer.enqueue("noop", {"enq": time.time()})
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            await producer.enqueue("noop", {"enq": time.time()})
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"cpu_us": cpu / calls * 1e6, "wall_us": wall / calls * 1e6}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def measure(tree: Path, url: str, calls: int) -> dict[str, float]:
    env = {**os.environ, **tree_env(tree)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, url, str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.enqueue_cost", description=__doc__)
    p.add_argument("--base", default="", help="a tree holding another commit's worker-image/")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--calls", type=int, default=2000, help="enqueue calls per round")
    args = p.parse_args(argv)
    trees = {"this tree": REPO}
    if args.base:
        trees["base"] = Path(args.base)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="jq-enqueue-cost-") as tmp, RedisServer() as server:
        server.start(Path(tmp) / "redis.log")
        for _ in range(args.rounds):
            for name, tree in trees.items():
                server.flush()
                rows[name].append(measure(tree, server.url, args.calls))
    for name, runs in rows.items():
        cpu = statistics.median(r["cpu_us"] for r in runs)
        wall = statistics.median(r["wall_us"] for r in runs)
        spread = ", ".join(f"{r['cpu_us']:.0f}" for r in runs)
        print(f"{name:>10}: {cpu:6.1f} µs CPU, {wall:6.1f} µs wall per enqueue", end="")
        print(f" (CPU by round: {spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
