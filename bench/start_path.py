"""``python -m bench.start_path``: where an idle worker's start latency goes.

    .venv/bin/python -m bench.start_path                       # this tree
    .venv/bin/python -m bench.start_path --base /tmp/base      # and another, interleaved

The latency row of ``bench.run`` (one idle worker at concurrency 10, jobs enqueued one
at a time at ``--rate`` by a separate producer process, start = handler start minus the
stamp taken just before ``enqueue``), cut into three segments:

- producer: from the stamp to the moment the producer writes its command;
- Redis and the wake-ups: from that write to the worker's read of its wait's reply (the
  enqueue script, the BLPOP it ends, the step that leases the job, two process wake-ups);
- worker: from that read to the handler's first line.

Both sides are timed from outside the product: the producer runs in a child process
that wraps redis-py's ``send_packed_command``, the worker loads
``adapters/start_path_worker.py`` as its handlers. The same run times the bare list
hand-off (``adapters/floor_app.py``) for the floor. A throwaway redis-server; medians
over the trials; writes nothing but its report to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.ab import tree_env
from bench.measure import count_records, percentile, records
from bench.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = REPO / "bench" / "adapters"
QUEUE = "start-path"

# Runs in the measured tree's interpreter path; one "P <stamp> <write>" line per job.
PRODUCER = """
import asyncio, sys, time
import redis.asyncio.connection as connection
from common import apace
from jobqueue_worker.producer import Producer

url, n, rate, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
writes = []
send = connection.AbstractConnection.send_packed_command

async def noted_send(self, *args, **kwargs):
    writes.append(time.time())
    return await send(self, *args, **kwargs)

connection.AbstractConnection.send_packed_command = noted_send

async def main():
    async with Producer(url, default_queue=sys.argv[5]) as producer:
        with open(out, "w") as fh:
            async def one(ts):
                writes.clear()
                await producer.enqueue("noop", {"enq": ts})
                fh.write(f"P {ts:.6f} {writes[0]:.6f}\\n")
            await apace(n, rate, one, n / rate * 3 + 30)

asyncio.run(main())
"""

SEGMENTS = ("producer", "Redis and the wake-ups", "worker", "start latency")


def _wait_for_lines(path: Path, prefix: str, n: int, timeout_s: float) -> None:
    def enough() -> bool:
        return path.exists() and sum(ln.startswith(prefix) for ln in path.open()) >= n

    if not procs.wait_until(enough, timeout_s, 0.05):
        raise RuntimeError(f"{path}: fewer than {n} '{prefix}' lines after {timeout_s:.0f} s")


def segments(producer_log: Path, worker_log: Path) -> tuple[dict[str, list[float]], list[str]]:
    """Per job, in ms: its start latency, and its segments if an idle worker's wait
    brought it (a job that arrives while the worker is busy comes with the next ack's
    step instead, and has no wait reply to cut at)."""
    writes: dict[str, float] = {}
    for line in producer_log.read_text().splitlines():
        _, stamp, written = line.split()
        writes[stamp] = float(written)
    replies: list[float] = []
    starts: list[tuple[float, str]] = []
    pauses: list[str] = []
    for line in worker_log.read_text().splitlines():
        kind, *rest = line.split()
        if kind == "R":
            replies.append(float(rest[0]))
        elif kind == "S":
            starts.append((float(rest[0]), rest[1]))
        elif kind == "G":
            pauses.append(f"gen{rest[0]} {rest[1]} ms")
    out: dict[str, list[float]] = {s: [] for s in SEGMENTS}
    for started, stamp in starts:
        enq = float(stamp)
        out["start latency"].append((started - enq) * 1000)
        write = writes.get(stamp)
        reply = max((r for r in replies if r <= started), default=None)
        if write is None or reply is None or reply < write:
            continue  # it came with an ack's step, not a wait's: a busy worker's start
        for name, ms in zip(SEGMENTS, (write - enq, reply - write, started - reply), strict=False):
            out[name].append(ms * 1000)
    return out, pauses


@dataclass
class Trial:
    segments: dict[str, list[float]]
    pauses: list[str] = field(default_factory=list)


def run_tree(tree: Path, url: str, jobs: int, rate: float, tmp: Path) -> Trial:
    env = {**os.environ, **tree_env(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    worker_log, producer_log = tmp / "worker.txt", tmp / "producer.txt"
    worker_log.write_text("")
    command = [sys.executable, "-m", "jobqueue_worker", "worker"]
    command += ["--handlers", "start_path_worker", "--queues", QUEUE, "--concurrency", "10"]
    worker = subprocess.Popen(
        [*command, "--redis-url", url],
        env={
            **env,
            "START_PATH_OUT": str(worker_log),
            "JQW_HTTP_PORT": "0",
            "JQW_LOG_LEVEL": "ERROR",
        },
    )
    try:
        produce = [sys.executable, "-c", PRODUCER, url]
        subprocess.run([*produce, "1", str(rate), str(producer_log), QUEUE], env=env, check=True)
        _wait_for_lines(worker_log, "S", 1, 60)  # warm-up: imports, connections, scripts
        time.sleep(0.5)
        worker_log.write_text("")  # the worker appends: its next line starts the file
        subprocess.run(
            [*produce, str(jobs), str(rate), str(producer_log), QUEUE], env=env, check=True
        )
        _wait_for_lines(worker_log, "S", jobs, 30)
    finally:
        worker.terminate()
        worker.wait(30)
    seg, pauses = segments(producer_log, worker_log)
    return Trial(seg, pauses)


def run_floor(url: str, jobs: int, rate: float, tmp: Path) -> list[float]:
    out = tmp / "floor.txt"
    env = {**os.environ, "PYTHONPATH": str(ADAPTERS), "BENCH_REDIS_URL": url}
    env |= {"BENCH_OUT": str(out), "BENCH_QUEUE": QUEUE}
    out.write_text("")
    worker = subprocess.Popen([sys.executable, str(ADAPTERS / "floor_app.py"), "worker"], env=env)
    try:
        produce = [sys.executable, str(ADAPTERS / "floor_app.py"), "produce", "--rate", str(rate)]
        subprocess.run([*produce, "--n", "1"], env=env, check=True, capture_output=True)
        time.sleep(0.5)
        out.write_text("")
        subprocess.run([*produce, "--n", str(jobs)], env=env, check=True, capture_output=True)
        procs.wait_until(lambda: count_records(out) >= jobs, 30, 0.05)
    finally:
        worker.terminate()
        worker.wait(30)
    return [(started - enq) * 1000 for started, enq, _ in records(out)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.start_path", description=__doc__)
    p.add_argument("--base", default="", help="a tree holding another commit's worker-image/")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--trials", type=int, default=3)
    args = p.parse_args(argv)
    trees = {"this tree": REPO}
    if args.base:
        trees["base"] = Path(args.base)
    rows: dict[str, list[Trial]] = {name: [] for name in [*trees, "floor"]}
    with tempfile.TemporaryDirectory(prefix="jq-start-path-") as tmp, RedisServer() as server:
        server.start(Path(tmp) / "redis.log")
        for _ in range(args.trials):
            for name, tree in trees.items():
                server.flush()
                rows[name].append(run_tree(tree, server.url, args.jobs, args.rate, Path(tmp)))
            server.flush()
            latency = run_floor(server.url, args.jobs, args.rate, Path(tmp))
            rows["floor"].append(Trial({"start latency": latency}))
    print(f"{args.jobs} jobs at {args.rate:g}/s, {args.trials} trials; ms, medians over trials")
    for name, runs in rows.items():
        print(f"\n{name}")
        for seg in SEGMENTS:
            samples = [r.segments[seg] for r in runs if r.segments.get(seg)]
            if not samples:
                continue
            cells = [
                f"p{q} {statistics.median(percentile(s, q) for s in samples):.3f}"
                for q in (50, 90, 99)
            ]
            print(f"  {seg:24} {'  '.join(cells)}  (n={sum(map(len, samples))})")
        pauses = [g for r in runs for g in r.pauses]
        if name != "floor":
            print(f"  collector pauses in the worker: {', '.join(pauses) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
