"""Where a no-op job's worker CPU goes: one in-process drain, optionally under py-spy.

    .venv/bin/python -m bench.hotpath --url redis://127.0.0.1:6379/15 --jobs 60000
    .venv/bin/python -m bench.hotpath --url ... --profile   # + py-spy, the stage table

Enqueues ``--jobs`` no-op jobs, then drains them with one ``Worker`` in this process
(concurrency 10 unless ``--concurrency``, leases and at-least-once as the defaults have
them; ``--sleep-ms`` makes each job ``await asyncio.sleep`` that long) and prints
jobs/s, worker CPU per job (``time.process_time``) and step calls per job. With
``--profile`` the drain runs in a child under py-spy (bench/requirements/tools.txt,
or ``--py-spy PATH``) and its samples are split by stage (leaf-most match), the
table in docs/performance.md. py-spy samples wall time while the process runs or
sits in a syscall, so the send syscall and the loop's wait are shown apart and the
"busy" shares are of the rest. FLUSHDB on the URL's database first: use a spare one.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("send syscall (wall time; CPU is about 16 µs per call)", ("StreamWriter.writelines",)),
    ("loop wait (uvloop's C loop, epoll)", ("Runner.run (asyncio/runners.py", "EpollSelector")),
    ("envelope decode and validation (pydantic)", ("open_envelope",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("step: ARGV (JSON of the acks)", ("step_args",)),
    ("step: reply into Fetched jobs", ("step_result",)),
    ("step: pack, send, read (hiredis, redis-py parser)", ("StepConnection", "redis/", "hiredis")),
    ("job start: its Task, in-flight bookkeeping", ("DispatchLoop._start", "DispatchLoop._took")),
    ("timeouts supervisor", ("Supervisor.",)),
    ("handler call (log context, the handler)", ("call_handler", "_noop")),
    (
        "attempt bookkeeping (Job, FinishOp, wait time, history)",
        (
            "Attempts.run",
            "job_for",
            "History.",
            "checked_result",
            "Worker.",
            "Watchdog",
            "InFlight.",
        ),
    ),
    ("dispatcher loop", ("DispatchLoop.",)),
    ("asyncio task switching (its Python part)", ("asyncio/",)),
)
IDLE = STAGES[0][0], STAGES[1][0]
QUEUE = "hotpath"


def _registry(sleep_s: float = 0.0) -> object:
    from jobqueue_worker.registry import Job, Registry

    registry = Registry()

    @registry.job_type("noop")
    async def _noop(job: Job) -> None:
        if sleep_s:
            await asyncio.sleep(sleep_s)

    return registry


async def _enqueue(url: str, n: int) -> None:
    import redis.asyncio as aioredis

    from jobqueue_worker.producer import JobRequest, Producer

    r = aioredis.Redis.from_url(url)
    await r.flushdb()
    await r.aclose()
    async with Producer(url, default_queue=QUEUE) as p:
        for i in range(0, n, 1000):
            k = min(1000, n - i)
            await p.enqueue_many([JobRequest(type="noop", payload={"i": i + j}) for j in range(k)])


async def _drain(url: str, n: int, concurrency: int = 10, sleep_s: float = 0.0) -> None:
    import redis.asyncio as aioredis

    from jobqueue_protocol import keys
    from jobqueue_worker.runtime import Worker
    from jobqueue_worker.settings import load

    settings = load(
        redis_url=url,
        queues=QUEUE,
        http_port=0,
        handlers="-",
        log_level="WARNING",
        concurrency=concurrency,
    )
    worker = Worker(settings, _registry(sleep_s))  # type: ignore[arg-type]
    r = aioredis.Redis.from_url(url)

    async def watch() -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        # The count lives in Redis, not in this process: poll it.
        while int(await r.hget(keys.counters_key(QUEUE), "completed") or 0) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"drained {n} jobs: {n / dt:,.0f} jobs/s, worker CPU {dc / n * 1e6:.1f} µs/job,"
            f" step calls {worker.step_calls / n:.3f}/job"
        )
        worker.request_stop()
        worker.request_stop()

    task = asyncio.create_task(watch())
    await worker.run()
    await task
    await r.aclose()


def stage_table(raw: Path) -> list[tuple[str, float, float]]:
    """(stage, share of all samples, share of busy samples) from a py-spy raw file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not n.isdigit() or not any("runners.py" in f for f in frames):
            continue
        if any(
            s in f for f in frames for s in ("watch (", "settings.py", "__init__ (", "_bootstrap")
        ):
            continue
        stage = next(
            (
                name
                for f in reversed(frames)
                for name, needles in STAGES
                if any(x in f for x in needles)
            ),
            "other",
        )
        counts[stage] += int(n)
    total = sum(counts.values()) or 1
    busy = total - sum(counts[i] for i in IDLE) or 1
    return [(k, v / total, 0.0 if k in IDLE else v / busy) for k, v in counts.most_common()]


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--jobs", type=int, default=60000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--sleep-ms", type=float, default=0.0, help="each job sleeps this long")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--py-spy", default=str(Path(__file__).parent / ".cache/venvs/tools/bin/py-spy"))
    p.add_argument("--drain-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    import uvloop

    if not args.drain_only:
        asyncio.run(_enqueue(args.url, args.jobs))
    if not args.profile:
        uvloop.run(_drain(args.url, args.jobs, args.concurrency, args.sleep_ms / 1000))
        return 0
    raw = Path(tempfile.mkdtemp(prefix="hotpath-")) / "pyspy.raw"
    cmd = [sys.executable, "-m", "bench.hotpath", "--url", args.url, "--jobs", str(args.jobs)]
    cmd += ["--concurrency", str(args.concurrency), "--sleep-ms", str(args.sleep_ms)]
    spy = [args.py_spy, "record", "--rate", "500", "--format", "raw", "-o", str(raw), "--"]
    subprocess.run([*spy, *cmd, "--drain-only"], check=True, env=os.environ.copy())
    for stage, share, busy in stage_table(raw):
        print(f"{100 * share:5.1f}% of samples  {100 * busy:5.1f}% of busy  {stage}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
