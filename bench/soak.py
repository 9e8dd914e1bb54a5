"""Worker memory over a long run: RSS of one worker process at concurrency 100, and its slope.

A real ``jobqueue worker`` process (the example handlers) on a redis-server the
harness starts; a producer feeds it at a fixed rate, well below its ceiling, so
the run measures memory over many jobs rather than speed, and its slope does not
depend on how busy the shared cores are. Sleeping jobs keep about
``rate × sleep`` of the 100 slots busy; every ``fail_every``-th job fails once
and is retried, so the retry and failure paths run too.

The slope is a least-squares fit of RSS against time after the warm-up (imports,
first connections, the allocator's arenas): a leak shows as a steady rise, a
healthy worker as a flat line with noise.

    python -m bench.soak                 # 10 minutes at 1,000 jobs/s
    python -m bench.soak --seconds 60    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio as aioredis

from bench.sections import write_between
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.worker_process import spawn_worker_process
from jobqueue_protocol.stats import queue_stats
from jobqueue_worker.producer import JobRequest, Producer

RESULTS = Path(__file__).parent / "results"
BEGIN = "<!-- soak-bench:begin -->"
END = "<!-- soak-bench:end -->"
CONCURRENCY = 100
QUEUE = "default"


async def feed(url: str, rate: int, seconds: float, sleep_s: float, fail_every: int) -> int:
    """Enqueue ``rate`` jobs a second in batches every 100 ms; the number enqueued."""
    sent = 0
    batch = max(1, rate // 10)
    t0 = time.monotonic()
    async with Producer(url) as producer:
        while time.monotonic() - t0 < seconds:
            jobs = [
                JobRequest(type="fail_n_times", payload={"n": 1, "key": f"soak-{sent + i}"})
                if (sent + i) % fail_every == 0
                else JobRequest(type="sleep", payload={"seconds": sleep_s})
                for i in range(batch)
            ]
            await producer.enqueue_many(jobs)
            sent += batch
            # Paced by the clock, not by sleeps: a slow enqueue does not lower the rate.
            await asyncio.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
    return sent


async def sample(pid: int, seconds: float, period_s: float) -> list[tuple[float, int]]:
    proc = psutil.Process(pid)
    t0 = time.monotonic()
    out: list[tuple[float, int]] = []
    while (t := time.monotonic() - t0) < seconds:
        out.append((t, int(proc.memory_info().rss)))
        await asyncio.sleep(period_s)
    return out


async def wait_drained(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether the queue empties (nothing waiting, delayed or leased) within ``timeout_s``.

    A soak whose worker fell behind would report the memory of a backlog, not of
    a steady state: the section says so rather than hide it.
    """
    client = aioredis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            stats = (await queue_stats(client, [QUEUE]))[QUEUE]
            if stats.waiting + stats.delayed + stats.in_flight == 0:
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await client.aclose()


def slope_mib_per_min(samples: list[tuple[float, int]], after_s: float) -> float:
    kept = [(t, rss) for t, rss in samples if t >= after_s]
    if len(kept) < 3:
        return float("nan")
    fit = statistics.linear_regression([t for t, _ in kept], [rss for _, rss in kept])
    return fit.slope * 60 / 2**20


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rs = RedisServer(appendonly=False).start()
    workdir = Path(tempfile.mkdtemp(prefix="jq-soak-"))
    worker = spawn_worker_process(
        rs.url, "soak-0", workdir / "worker.log", {"concurrency": CONCURRENCY}
    )
    try:
        await asyncio.sleep(3)  # imports and the first connections
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the worker exited at start:\n{worker.output()[-2000:]}")
        sent, samples = await asyncio.gather(
            feed(rs.url, args.rate, args.seconds, args.sleep_s, args.fail_every),
            sample(worker.proc.pid, args.seconds, args.period_s),
        )
        drained = await wait_drained(rs.url, worker.proc, timeout_s=30.0)
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the worker died during the soak:\n{worker.output()[-2000:]}")
    finally:
        worker.proc.terminate()
        worker.proc.wait(30)
        rs.cleanup()
    rss = [r for _, r in samples]
    warm = [r for t, r in samples if t >= args.warmup_s]
    return {
        "seconds": args.seconds,
        "rate": args.rate,
        "sleep_s": args.sleep_s,
        "fail_every": args.fail_every,
        "enqueued": sent,
        "drained_after_feed": drained,
        "rss_start_mib": rss[0] / 2**20,
        "rss_after_warmup_mib": (warm[0] if warm else rss[-1]) / 2**20,
        "rss_end_mib": rss[-1] / 2**20,
        "rss_peak_mib": max(rss) / 2**20,
        "slope_mib_per_min": slope_mib_per_min(samples, args.warmup_s),
        "samples": len(samples),
    }


def render(out: dict[str, Any]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "## Worker memory over a long run (`python -m bench.soak`)",
            "",
            f"- {stamp}; one `jobqueue worker` process, concurrency {CONCURRENCY}, fed"
            f" {out['rate']:,} jobs/s for {out['seconds'] / 60:g} min ({out['enqueued']:,} jobs):"
            f" `sleep` {out['sleep_s'] * 1000:g} ms, every {out['fail_every']}th job failing"
            " once and retried. RSS sampled every few seconds; the slope is a least-squares"
            f" fit after a {out['warmup_s']:g} s warm-up.",
            "",
            "| RSS at start | after warm-up | at end | peak | slope after warm-up |",
            "|---:|---:|---:|---:|---:|",
            f"| {out['rss_start_mib']:.1f} MiB | {out['rss_after_warmup_mib']:.1f} MiB"
            f" | {out['rss_end_mib']:.1f} MiB | {out['rss_peak_mib']:.1f} MiB"
            f" | {out['slope_mib_per_min']:+.3f} MiB/min |",
            "",
            "The queue emptied within 30 s of the last enqueue."
            if out["drained_after_feed"]
            else "**The queue had not emptied 30 s after the last enqueue**: the worker fell"
            " behind, so these figures include a backlog.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--rate", type=int, default=1000, help="jobs enqueued per second")
    ap.add_argument("--sleep-s", type=float, default=0.05, help="each sleep job's duration")
    ap.add_argument("--fail-every", type=int, default=50)
    ap.add_argument("--period-s", type=float, default=2.0, help="RSS sampling period")
    ap.add_argument("--warmup-s", type=float, default=60.0)
    ap.add_argument("--output", default="", help="write the section into this file (markers)")
    args = ap.parse_args(argv)
    out = asyncio.run(soak(args))
    out["warmup_s"] = args.warmup_s
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(out, indent=2))
    section = render(out)
    print(section)
    if args.output:
        write_between(Path(args.output), BEGIN, END, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
