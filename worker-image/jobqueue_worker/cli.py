"""The ``jobqueue`` command: run a worker, enqueue, inspect stats, jobs and the DLQ."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jobqueue_worker import dlq as dlq_ops
from jobqueue_worker import health_cli, logs, pg_cli
from jobqueue_worker.broker import Broker
from jobqueue_worker.errors import ConfigError, EnqueueError
from jobqueue_worker.producer import Producer
from jobqueue_worker.records import JobRecord
from jobqueue_worker.registry import Registry
from jobqueue_worker.settings import WorkerSettings, load

app = typer.Typer(help="jobqueue: a reliable Redis job queue.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and act on the dead-letter queue.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
console = Console()
err = Console(stderr=True)
log = logging.getLogger("jobqueue_worker")

RedisUrl = Annotated[str, typer.Option(envvar="JQW_REDIS_URL", help="Redis URL")]
QueueOpt = Annotated[str, typer.Option("--queue", "-q", help="queue name")]


def load_registry(module: str | None) -> Registry:
    """The job types of `module`; no default, so a worker runs only the code it was given."""
    if not module:
        raise ConfigError(
            "JQW_HANDLERS: no job handler module is configured; set it (or --handlers) to the"
            " module that defines `registry` (jobqueue_worker.handlers for the shipped webhook"
            " and email types)"
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"JQW_HANDLERS: cannot import {module!r}: {exc}") from None
    registry = getattr(mod, "registry", None)
    if not isinstance(registry, Registry):
        raise ConfigError(f"JQW_HANDLERS: module {module!r} has no `registry` (a Registry)")
    return registry


def require_temp_dir(registry: Registry) -> None:
    """Isolated job types need a writable temporary directory; say so at start, not per job.

    Their child processes start from a multiprocessing server whose socket lives in
    a temporary directory. Under a read-only root filesystem there is none unless a
    volume is mounted at /tmp (or TMPDIR names one), and every isolated attempt
    would fail with a message that does not say why.
    """
    isolated = [name for name in registry.names() if (jt := registry.get(name)) and jt.isolated]
    if not isolated:
        return
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise ConfigError(
            f"isolated job types ({', '.join(sorted(isolated))}) need a writable temporary"
            " directory and none of TMPDIR, /tmp, /var/tmp or the working directory is"
            " writable: mount an emptyDir at /tmp (the shipped manifests and chart do) or set"
            " TMPDIR"
        ) from None


_early_stop: list[int] = []


def _note_early_signal(signum: int, _frame: object) -> None:
    """A signal before the loop runs: nothing was fetched yet, so just leave cleanly."""
    _early_stop.append(signum)


async def _serve(settings: WorkerSettings, registry: Registry) -> int:
    from jobqueue_worker import http
    from jobqueue_worker.runtime import Worker

    worker = Worker(settings, registry)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    if _early_stop:
        log.info("Stop signal before start: exiting")
        await worker.broker.close()
        return 0
    runner = None
    if settings.http_port:
        runner = await http.start(worker, settings.http_host, settings.http_port)
    try:
        return await worker.run()
    finally:
        if runner is not None:
            await runner.cleanup()


def run_worker(settings: WorkerSettings) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _note_early_signal)
    logs.setup(settings.json_logs, settings.log_level)
    registry = load_registry(settings.handlers)
    require_temp_dir(registry)
    code = asyncio.run(_serve(settings, registry))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()[1:]):
        # A sync handler still runs in the pool; its job was handed back, so do
        # not wait for it (the interpreter would join the thread at exit).
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


@app.command()
def worker(
    queues: Annotated[str | None, typer.Option(help="comma-separated, in priority order")] = None,
    concurrency: Annotated[int | None, typer.Option()] = None,
    handlers: Annotated[str | None, typer.Option(help="module with a `registry`")] = None,
    redis_url: Annotated[str | None, typer.Option()] = None,
    json_logs: Annotated[bool | None, typer.Option("--json-logs/--text-logs")] = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (a second signal exits fast)."""
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "queues": queues,
            "concurrency": concurrency,
            "handlers": handlers,
            "redis_url": redis_url,
            "json_logs": json_logs,
        }.items()
        if v is not None
    }
    try:
        settings = load(**overrides)
        registry_code = run_worker(settings)
    except ConfigError as exc:
        # One line whatever the terminal's width: logs and `kubectl logs` read it whole.
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    raise typer.Exit(registry_code)


@app.command()
def enqueue(  # noqa: PLR0917 - typer maps parameters to options
    type: Annotated[str, typer.Argument(help="job type")],
    payload: Annotated[str, typer.Option(help="JSON payload")] = "null",
    queue: QueueOpt = "default",
    priority: Annotated[
        str, typer.Option(help="1..10 or critical/high/normal/low/background")
    ] = "normal",
    delay: Annotated[float | None, typer.Option(help="seconds")] = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    count: Annotated[int, typer.Option(help="enqueue this many copies in one round trip")] = 1,
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
) -> None:
    """Enqueue a job and print its id."""
    from jobqueue_worker.producer import JobRequest

    async def go() -> list[str]:
        async with Producer(redis_url, default_queue=queue) as p:
            req = JobRequest(
                type=type,
                payload=json.loads(payload),
                priority=priority,
                delay_s=delay,
                idempotency_key=idempotency_key,
            )
            return await p.enqueue_many([req] * count if not idempotency_key else [req])

    try:
        for job_id in asyncio.run(go()):
            console.print(job_id)
    except (EnqueueError, json.JSONDecodeError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def stats(
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q")] = None,
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
) -> None:
    """Queue depth per priority, delayed, in flight, dead, oldest age and workers."""
    queues = queue or _env_queues()

    limits = _configured_limits()

    async def go() -> Any:
        b = Broker(redis_url)
        try:
            return (
                await b.stats(queues),
                await b.limit_usage(limits),
                await b.limiter_counts(),
                await b.exec_stats(queues),
            )
        finally:
            await b.close()

    result, usage, counts, exec_rows = asyncio.run(go())
    table = Table(title="jobqueue")
    for col in (
        "queue",
        "waiting",
        "by priority",
        "delayed",
        "in flight",
        "dead",
        "oldest age s",
        "workers",
    ):
        table.add_column(col)
    for q, s in result.items():
        by_p = " ".join(f"{p}:{n}" for p, n in s.waiting_by_priority.items() if n)
        table.add_row(
            q,
            str(s.waiting),
            by_p or "-",
            str(s.delayed),
            str(s.in_flight),
            str(s.dead),
            f"{s.oldest_age_s():.1f}",
            " ".join(f"{w.worker_id}({w.state})" for w in s.workers) or "-",
        )
    console.print(table)
    typed = sorted({k.rsplit(":", 1)[0] for k in counts} | {t for t, _ in usage})
    if typed:
        rl = Table(title="rate limits (all workers)")
        for col in ("type", "limit", "used / capacity", "admitted", "throttled"):
            rl.add_column(col)
        for t in typed:
            rows = [(lbl, u) for (tt, lbl), u in usage.items() if tt == t] or [("-", None)]
            for lbl, u in rows:
                rl.add_row(
                    t,
                    lbl,
                    f"{u[0]} / {u[1]}" if u else "-",
                    str(counts.get(f"{t}:admitted", 0)),
                    str(counts.get(f"{t}:throttled", 0)),
                )
        console.print(rl)
    if exec_rows:
        ex = Table(title="execution time per type, s (per worker, last window)")
        for col in (
            "queue",
            "worker",
            "type",
            "n",
            "min",
            "mean",
            "p50",
            "p95",
            "p99",
            "max",
            "timeout",
        ):
            ex.add_column(col)
        for q, worker_id, t, st in exec_rows:
            ex.add_row(
                q,
                worker_id,
                t,
                str(int(st.get("count", 0))),
                *(
                    f"{float(st.get(k, 0.0)):.3f}"
                    for k in ("min", "mean", "p50", "p95", "p99", "max")
                ),
                f"{st['timeout_s']:.1f}" if st.get("timeout_s") else "-",
            )
        console.print(ex)


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


def _env_queues() -> list[str]:
    return [q.strip() for q in os.environ.get("JQW_QUEUES", "default").split(",") if q.strip()]


def _ts(v: float | None) -> str:
    return datetime.fromtimestamp(v).isoformat(timespec="milliseconds") if v else "-"


def _print_record(rec: JobRecord, verbose: bool = True) -> None:
    table = Table(show_header=False, title=f"job {rec.id}")
    rows = [
        ("queue", rec.queue),
        ("type", rec.type or "?"),
        ("status", rec.status.value),
        ("priority", str(rec.priority)),
        ("attempt", f"{rec.attempt}/{rec.max_attempts or '-'}"),
        ("deliveries", str(rec.deliveries)),
        ("worker", rec.worker or "-"),
        ("enqueued", _ts(rec.enqueued_at)),
        ("started", _ts(rec.started_at)),
        ("finished", _ts(rec.finished_at)),
        ("duration s", str(rec.duration_s) if rec.duration_s is not None else "-"),
        ("error", rec.error or "-"),
        ("dead reason", rec.dead_reason or "-"),
        ("first failure", _ts(rec.first_failed_at)),
        ("last failure", _ts(rec.last_failed_at)),
        ("result", rec.result_json or "-"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if verbose and rec.traceback:
        console.print(rec.traceback)


@app.command()
def job(
    job_id: Annotated[str, typer.Argument()],
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q")] = None,
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
) -> None:
    """Show a job's status, timestamps, error and result (PostgreSQL's row when configured)."""
    dsn = os.environ.get(pg_cli.DSN_ENV)
    if dsn and pg_cli.show_job(dsn, job_id):
        return
    queues = queue or _env_queues()

    async def go() -> JobRecord | None:
        b = Broker(redis_url)
        try:
            q, raw = await b.find_job(queues, job_id)
            return JobRecord.from_hash(q, job_id, raw)
        except KeyError:
            return None
        finally:
            await b.close()

    rec = asyncio.run(go())
    if rec is None:
        err.print(f"job {job_id} not found in {', '.join(queues)} (expired or never existed)")
        raise typer.Exit(1)
    _print_record(rec)


def _dlq_run(redis_url: str, fn: Any) -> Any:
    async def go() -> Any:
        b = Broker(redis_url)
        try:
            return await fn(b)
        finally:
            await b.close()

    return asyncio.run(go())


@dlq_app.command("list")
def dlq_list(
    queue: QueueOpt = "default",
    limit: int = 50,
    offset: int = 0,
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
) -> None:
    """Dead-lettered jobs, newest first."""
    recs = _dlq_run(redis_url, lambda b: dlq_ops.list_dead(b, queue, offset, limit))
    table = Table(title=f"dead letters of {queue}")
    for col in ("id", "type", "reason", "attempts", "error", "dead at"):
        table.add_column(col)
    for r in recs:
        table.add_row(
            r.id,
            r.type or "?",
            r.dead_reason or "-",
            str(r.attempt),
            (r.error or "")[:80],
            _ts(r.dead_at),
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    job_id: str, queue: QueueOpt = "default", redis_url: RedisUrl = "redis://127.0.0.1:6379/0"
) -> None:
    """One dead-lettered job with its traceback."""
    rec = _dlq_run(redis_url, lambda b: dlq_ops.show(b, queue, job_id))
    if rec is None:
        err.print(f"job {job_id} not found")
        raise typer.Exit(1)
    _print_record(rec)


def _dead_selection(
    job_ids: list[str] | None, all_: bool, type_: str | None, reason: str | None
) -> dlq_ops.DeadFilter:
    """The filter for replay and purge; refuse to act on everything by accident."""
    if not job_ids and not all_ and not type_ and not reason:
        err.print("give job ids, --all, --type or --reason")
        raise typer.Exit(2)
    return dlq_ops.DeadFilter(type=type_, reason=reason)


@dlq_app.command("replay")
def dlq_replay(  # noqa: PLR0917
    job_ids: Annotated[list[str] | None, typer.Argument()] = None,
    queue: QueueOpt = "default",
    all_: Annotated[bool, typer.Option("--all")] = False,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
) -> None:
    """Replay ids, or --all, or by --type/--reason (attempts reset, original priority)."""
    flt = _dead_selection(job_ids, all_, type_, reason)
    n = _dlq_run(redis_url, lambda b: pg_cli.dead_letters(b, "replay", queue, job_ids, flt))
    console.print(f"replayed {n}")


@dlq_app.command("purge")
def dlq_purge(  # noqa: PLR0917
    job_ids: Annotated[list[str] | None, typer.Argument()] = None,
    queue: QueueOpt = "default",
    all_: Annotated[bool, typer.Option("--all")] = False,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
) -> None:
    """Delete dead-lettered jobs for good."""
    flt = _dead_selection(job_ids, all_, type_, reason)
    n = _dlq_run(redis_url, lambda b: pg_cli.dead_letters(b, "purge", queue, job_ids, flt))
    console.print(f"purged {n}")


# ``jobqueue health`` lives in its own module (queue and Redis health verdicts).
health_cli.register(app)
# ``db``, ``migrator`` and ``history``: durable job records in PostgreSQL.
pg_cli.register(app)


def main() -> None:
    app()
