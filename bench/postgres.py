"""Benchmark of durable job records in PostgreSQL: migrator rows/s, jobs/s with the
status write-back on versus off, and the latency of the transactional enqueue.

Usage (from the repo root, with the project venv)::

    PYTHONPATH=tests/devkit .venv/bin/python -m bench.postgres --jobs 2000
    make bench   # runs it too, writing its section of BENCHMARKS.md

Starts a throwaway redis-server and a PostgreSQL cluster (Debian's, via the devkit)
on free loopback ports, runs each measurement in this process against them, prints
the rows for BENCHMARKS.md and writes bench/results/postgres-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.procs import tree_cpu_seconds
from bench.sections import write_between
from jobqueue_devkit.postgres_server import PostgresServer
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_worker import examples, pgstore
from jobqueue_worker.broker import Broker
from jobqueue_worker.migrator import Migrator
from jobqueue_worker.pgstore import AsyncStore
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.runtime import Worker
from jobqueue_worker.settings import load

RESULTS = Path(__file__).resolve().parent / "results"
WORKER = {"http_port": 0, "concurrency": 50, "idle_block_s": 0.2, "log_level": "WARNING"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def enqueue_latency(dsn: str, redis_url: str, n: int) -> dict[str, float]:
    """One job per transaction (BEGIN, INSERT, COMMIT), against Producer.enqueue to Redis."""
    pg_ms: list[float] = []
    with psycopg.connect(dsn) as conn:
        for _ in range(n):
            t0 = time.perf_counter()
            with conn.transaction():
                pgstore.enqueue(conn, "noop", {"k": 1})
            pg_ms.append((time.perf_counter() - t0) * 1000)
        conn.execute("TRUNCATE jobs CASCADE")
        conn.commit()

    async def redis_side() -> list[float]:
        out = []
        async with Producer(redis_url) as p:
            for _ in range(n):
                t0 = time.perf_counter()
                await p.enqueue("noop", {"k": 1})
                out.append((time.perf_counter() - t0) * 1000)
        return out

    redis_ms = asyncio.run(redis_side())
    return {
        "pg_p50_ms": percentile(pg_ms, 0.5),
        "pg_p95_ms": percentile(pg_ms, 0.95),
        "pg_p99_ms": percentile(pg_ms, 0.99),
        "redis_p50_ms": percentile(redis_ms, 0.5),
        "redis_p95_ms": percentile(redis_ms, 0.95),
    }


def insert_rows(dsn: str, n: int) -> None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        for start in range(0, n, 1000):
            pgstore.enqueue_many(
                conn, [JobRequest(type="noop") for _ in range(min(1000, n - start))]
            )


async def migrate_all(dsn: str, redis_url: str, batch: int) -> tuple[int, float]:
    store, broker = AsyncStore(dsn), Broker(redis_url)
    m = Migrator(store, broker, batch=batch)
    t0 = time.perf_counter()
    try:
        while await m.migrate_once():
            pass
    finally:
        await store.close()
        await broker.close()
    return m.stats.migrated, time.perf_counter() - t0


async def drain(
    redis_url: str, n: int, dsn: str | None, servers: dict[str, int] | None = None
) -> dict[str, float]:
    """A worker drains ``n`` ready noop jobs; with a DSN it also writes every status back.

    ``servers`` names server processes (name → pid) whose CPU per job to report as
    ``<name>_cpu_us_per_job``, measured until every row is written.
    """
    settings = load(redis_url=redis_url, postgres_dsn=dsn, **WORKER)
    worker = Worker(settings, examples.registry)
    task = asyncio.create_task(worker.run())
    servers = servers or {}
    server_cpu0 = {k: tree_cpu_seconds([pid]) for k, pid in servers.items()}
    t0, cpu0 = time.perf_counter(), time.process_time()
    while worker.processed < n:  # noqa: ASYNC110 - the worker has no event to wait on
        await asyncio.sleep(0.01)
    processed_s = time.perf_counter() - t0
    # CPU the worker's process spent per job: unlike jobs/s, it does not depend on
    # how much of the shared cores other work left it.
    cpu_us = (time.process_time() - cpu0) / n * 1e6
    written_s = processed_s
    if dsn is not None:
        with psycopg.connect(dsn) as conn:
            while True:
                row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'")
                got = row.fetchone()
                if got is not None and got[0] >= n:
                    break
                conn.commit()
                await asyncio.sleep(0.02)
        written_s = time.perf_counter() - t0
    server_cpu = {
        f"{k}_cpu_us_per_job": (tree_cpu_seconds([pid]) - server_cpu0[k]) / n * 1e6
        for k, pid in servers.items()
    }
    worker.request_stop()
    await asyncio.wait_for(task, 30)
    return {
        "jobs_per_s": n / processed_s,
        "all_rows_written_s": written_s,
        "cpu_us_per_job": cpu_us,
        **server_cpu,
    }


async def end_to_end(dsn: str, redis_url: str, n: int) -> float:
    """Rows committed in PostgreSQL → migrator → worker → ``completed`` rows: jobs/s."""
    store, broker = AsyncStore(dsn), Broker(redis_url)
    m = Migrator(store, broker, batch=500, poll_interval_s=0.1)
    migrator = asyncio.create_task(m.run())
    insert_rows(dsn, n)
    t0 = time.perf_counter()
    await drain(redis_url, n, dsn)
    migrator.cancel()
    await asyncio.gather(migrator, return_exceptions=True)
    await store.close()
    await broker.close()
    return n / (time.perf_counter() - t0)


def _pid(process: Any) -> int:
    """The pid of a devkit server's process (its tree includes what it forks)."""
    if process is None:
        raise RuntimeError("server not started")
    return int(process.pid)


def flush(redis_url: str, dsn: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE jobs CASCADE")


BEGIN = "<!-- postgres-bench:begin -->"
END = "<!-- postgres-bench:end -->"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between this benchmark's markers in ``path``; nothing else changes."""
    write_between(path, BEGIN, END, section)


def render(out: dict[str, Any], jobs: int, trials: int) -> str:
    e = out["enqueue"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("migrator: rows/s moved into Redis (batch 500, one round trip per batch)",
         f"{out['migrator_rows_per_s']:,.0f}"),
        ("worker: no-op jobs/s, Redis only", f"{out['redis_only']['jobs_per_s']:,.0f}"),
        ("worker: no-op jobs/s, PostgreSQL write-back on",
         f"{out['pg_on']['jobs_per_s']:,.0f} ({out['ratio_pg_on']:.1%} of Redis only;"
         f" trial by trial {', '.join(f'{r:.0%}' for r in out['trial_ratios'])})"),
        ("worker process CPU per job, Redis only / write-back on",
         f"{out['redis_only']['cpu_us_per_job']:.0f} / {out['pg_on']['cpu_us_per_job']:.0f} µs"),
        ("server CPU per job (Redis only / write-back on): Redis",
         f"{out['redis_only']['redis_cpu_us_per_job']:.0f}"
         f" / {out['pg_on']['redis_cpu_us_per_job']:.0f} µs"),
        ("server CPU per job, write-back on: PostgreSQL",
         f"{out['pg_on']['postgres_cpu_us_per_job']:.0f} µs"),
        ("every row `completed`, seconds after the drain started",
         f"{out['pg_on']['all_rows_written_s']:.2f}"),
        ("end to end: committed rows → migrator → worker → `completed` rows, jobs/s",
         f"{out['end_to_end_jobs_per_s']:,.0f}"),
        ("transactional enqueue, one job per transaction (BEGIN, INSERT, COMMIT)",
         f"p50 {e['pg_p50_ms']:.2f} ms, p95 {e['pg_p95_ms']:.2f} ms, p99 {e['pg_p99_ms']:.2f} ms"),
        ("for comparison: `Producer.enqueue` straight to Redis",
         f"p50 {e['redis_p50_ms']:.2f} ms, p95 {e['redis_p95_ms']:.2f} ms"),
    ]  # fmt: skip
    lines = [
        "## Durable records in PostgreSQL (`python -m bench.postgres`)",
        "",
        f"- Date: {stamp}; {jobs} no-op jobs per drain; on/off drains alternate, median of"
        f" {trials}; one in-process worker (concurrency 50); {out['machine']['cpus']} cores,"
        " shared with other work while measured, so read the figures as indicative.",
        f"- Load average at start {out['machine']['load_start']}, at end"
        f" {out['machine']['load_end']}; jobs/s of each trial, Redis only"
        f" {[round(t['jobs_per_s']) for t in out['trials']['redis_only']]}, write-back on"
        f" {[round(t['jobs_per_s']) for t in out['trials']['pg_on']]}. The PostgreSQL server"
        " shares the same cores as the worker here; its CPU is part of what the ratio shows.",
        "- PostgreSQL 15 (Debian) and redis-server started by the harness on loopback;"
        " PostgreSQL runs with fsync off (test cluster), Redis without persistence.",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--jobs", type=int, default=20000, help="jobs per throughput measurement")
    ap.add_argument("--latency-samples", type=int, default=500)
    ap.add_argument("--trials", type=int, default=5, help="on/off pairs; medians reported")
    ap.add_argument("--output", default="", help="write the section into this file (markers)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    load_start = os.getloadavg()
    rs = RedisServer(appendonly=False).start()
    pg = PostgresServer().start()
    try:
        dsn = pg.create_database("bench")
        pgstore.upgrade(dsn)
        out: dict[str, Any] = {"jobs": args.jobs}
        servers = {"redis": _pid(rs.process), "postgres": _pid(pg.process)}
        out["enqueue"] = enqueue_latency(dsn, rs.url, args.latency_samples)
        flush(rs.url, dsn)
        insert_rows(dsn, args.jobs)
        moved, secs = asyncio.run(migrate_all(dsn, rs.url, 500))
        out["migrator_rows_per_s"] = moved / secs
        flush(rs.url, dsn)

        async def redis_only() -> dict[str, float]:
            async with Producer(rs.url) as p:
                await p.enqueue_many([JobRequest(type="noop") for _ in range(args.jobs)])
            return await drain(rs.url, args.jobs, None, servers)

        # Alternating trials, medians: the machine is shared, so load drifts.
        off: list[dict[str, float]] = []
        on: list[dict[str, float]] = []
        for _ in range(args.trials):
            off.append(asyncio.run(redis_only()))
            flush(rs.url, dsn)
            insert_rows(dsn, args.jobs)
            asyncio.run(migrate_all(dsn, rs.url, 500))
            on.append(asyncio.run(drain(rs.url, args.jobs, dsn, servers)))
            flush(rs.url, dsn)
        out["trials"] = {"redis_only": off, "pg_on": on}
        out["redis_only"] = {k: statistics.median(t[k] for t in off) for k in off[0]}
        out["pg_on"] = {k: statistics.median(t[k] for t in on) for k in on[0]}
        out["end_to_end_jobs_per_s"] = asyncio.run(end_to_end(dsn, rs.url, args.jobs))
    finally:
        pg.cleanup()
        rs.cleanup()
    out["ratio_pg_on"] = out["pg_on"]["jobs_per_s"] / out["redis_only"]["jobs_per_s"]
    # Each write-back drain beside the Redis-only drain just before it: the pairs
    # share the machine's load of the moment, so their spread shows the noise.
    out["trial_ratios"] = [
        b["jobs_per_s"] / a["jobs_per_s"]
        for a, b in zip(out["trials"]["redis_only"], out["trials"]["pg_on"], strict=True)
    ]
    out["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"postgres-{stamp}.json").write_text(json.dumps(out, indent=2))
    section = render(out, args.jobs, args.trials)
    print(section)
    if args.output:
        write_section(Path(args.output), section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
