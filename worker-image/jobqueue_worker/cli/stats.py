"""``jobqueue stats`` and ``jobqueue job``: read-only views, as tables or ``--json``."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.table import Table

from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_protocol.stats import QueueStats
from jobqueue_worker.broker import Broker
from jobqueue_worker.cli import postgres
from jobqueue_worker.cli.common import (
    console,
    depth_cells,
    local_time,
    print_json,
    record_json,
    with_broker,
)
from jobqueue_worker.cli.options import DEFAULT_REDIS_URL, JsonOpt, QueuesOpt, RedisUrl, env_queues
from jobqueue_worker.cli.run import load_registry
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.records import JobRecord
from jobqueue_worker.settings import load

Usage = dict[tuple[str, str], tuple[int, int]]
ExecRows = list[tuple[str, str, str, dict[str, float]]]
EXEC_STATS = ("min", "mean", "p50", "p95", "p99", "max")


def _configured_limits() -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The RATE_LIMIT_<TYPE> of this environment for the types JQW_HANDLERS registers."""
    try:
        settings = load()
        registry = load_registry(settings.handlers)
    except (ConfigError, Exception):  # stats must work without a worker's config
        return ()
    return tuple(
        (name, settings.limits_for(name)) for name in registry.names() if settings.limits_for(name)
    )


def stats_json(
    result: dict[str, QueueStats], usage: Usage, counts: dict[str, int], exec_rows: ExecRows
) -> dict[str, Any]:
    """``stats --json`` (``docs/cli.md``, "stats")."""
    typed = sorted({k.rsplit(":", 1)[0] for k in counts} | {t for t, _ in usage})
    limits = []
    for t in typed:
        rows: list[tuple[str | None, tuple[int, int] | None]] = [
            (label, u) for (tt, label), u in usage.items() if tt == t
        ] or [(None, None)]
        for label, u in rows:
            limits.append(
                {
                    "type": t,
                    "limit": label,
                    "used": u[0] if u else None,
                    "capacity": u[1] if u else None,
                    "admitted": counts.get(f"{t}:admitted", 0),
                    "throttled": counts.get(f"{t}:throttled", 0),
                }
            )
    return {
        "queues": [
            {
                "queue": q,
                "waiting": s.waiting,
                "waiting_by_priority": {str(p): n for p, n in s.waiting_by_priority.items()},
                "delayed": s.delayed,
                "in_flight": s.in_flight,
                "dead": s.dead,
                "oldest_age_s": round(s.oldest_age_s(), 3),
                "workers": [{"worker_id": w.worker_id, "state": w.state} for w in s.workers],
            }
            for q, s in result.items()
        ],
        "rate_limits": limits,
        "execution": [
            {
                "queue": q,
                "worker": worker_id,
                "type": t,
                "count": int(st.get("count", 0)),
                **{k: float(st.get(k, 0.0)) for k in EXEC_STATS},
                "timeout_s": float(st["timeout_s"]) if st.get("timeout_s") else None,
            }
            for q, worker_id, t, st in exec_rows
        ],
    }


def _tables(data: dict[str, Any]) -> None:
    table = Table(title="jobqueue")
    for col in ("queue", "waiting", "by priority", "delayed", "in flight", "dead"):
        table.add_column(col)
    table.add_column("oldest age s")
    table.add_column("workers")
    for q in data["queues"]:
        table.add_row(
            q["queue"],
            *depth_cells(q),
            " ".join(f"{w['worker_id']}({w['state']})" for w in q["workers"]) or "-",
        )
    console.print(table)
    if data["rate_limits"]:
        rl = Table(title="rate limits (all workers)")
        for col in ("type", "limit", "used / capacity", "admitted", "throttled"):
            rl.add_column(col)
        for r in data["rate_limits"]:
            used = "-" if r["used"] is None else f"{r['used']} / {r['capacity']}"
            rl.add_row(r["type"], r["limit"] or "-", used, str(r["admitted"]), str(r["throttled"]))
        console.print(rl)
    if data["execution"]:
        ex = Table(title="execution time per type, s (per worker, last window)")
        for col in ("queue", "worker", "type", "n", *EXEC_STATS, "timeout"):
            ex.add_column(col)
        for r in data["execution"]:
            ex.add_row(
                r["queue"],
                r["worker"],
                r["type"],
                str(r["count"]),
                *(f"{r[k]:.3f}" for k in EXEC_STATS),
                "-" if r["timeout_s"] is None else f"{r['timeout_s']:.1f}",
            )
        console.print(ex)


def stats(
    queue: QueuesOpt = None, as_json: JsonOpt = False, redis_url: RedisUrl = DEFAULT_REDIS_URL
) -> None:
    """Queue depth per priority, delayed, in flight, dead, oldest age and workers."""
    queues = env_queues(queue)
    limits = _configured_limits()

    async def read(b: Broker) -> tuple[dict[str, QueueStats], Usage, dict[str, int], ExecRows]:
        return (
            await b.stats(queues),
            await b.limit_usage(limits),
            await b.limiter_counts(),
            await b.exec_stats(queues),
        )

    data = stats_json(*with_broker(redis_url, read))
    if as_json:
        print_json(data)
    else:
        _tables(data)


def print_record(rec: JobRecord) -> None:
    table = Table(show_header=False, title=f"job {rec.id}")
    rows = [
        ("queue", rec.queue),
        ("type", rec.type or "?"),
        ("status", rec.status.value),
        ("priority", str(rec.priority)),
        ("attempt", f"{rec.attempt}/{rec.max_attempts or '-'}"),
        ("deliveries", str(rec.deliveries)),
        ("worker", rec.worker or "-"),
        ("enqueued", local_time(rec.enqueued_at)),
        ("started", local_time(rec.started_at)),
        ("finished", local_time(rec.finished_at)),
        ("duration s", str(rec.duration_s) if rec.duration_s is not None else "-"),
        ("error", rec.error or "-"),
        ("dead reason", rec.dead_reason or "-"),
        ("first failure", local_time(rec.first_failed_at)),
        ("last failure", local_time(rec.last_failed_at)),
        ("result", rec.result_json or "-"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if rec.traceback:
        console.print(rec.traceback)


def job(
    job_id: str = typer.Argument(help="the id printed by enqueue"),
    queue: QueuesOpt = None,
    as_json: JsonOpt = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
) -> None:
    """Show a job's status, timestamps, error and result (PostgreSQL's row when configured)."""
    dsn = os.environ.get(postgres.DSN_ENV)
    if dsn and not as_json and postgres.show_job(dsn, job_id):
        return
    queues = env_queues(queue)

    async def find(b: Broker) -> JobRecord | None:
        try:
            q, raw = await b.find_job(queues, job_id)
        except KeyError:
            return None
        return JobRecord.from_hash(q, job_id, raw)

    rec = with_broker(redis_url, find)
    if rec is None:
        raise CliError(
            f"job {job_id} not found in {', '.join(queues)} (expired or never existed)",
            ExitCode.FAILED,
        )
    if as_json:
        print_json(record_json(rec, traceback=True))
    else:
        print_record(rec)
