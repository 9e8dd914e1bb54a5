"""Commands for durable job records in PostgreSQL: ``db upgrade``, ``db prune``,
``migrator`` and ``history``; ``jobqueue job`` asks ``show_job`` first when a DSN is set.

psycopg is an optional extra, so ``pgstore`` is imported inside the commands:
the Redis-only command line works without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from jobqueue_protocol import logformat
from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_worker.errors import ConfigError

if TYPE_CHECKING:
    from jobqueue_worker import dlq as dlq_ops
    from jobqueue_worker.broker import Broker

console = Console()
log = logging.getLogger("jobqueue_worker")

DSN_ENV = "JQW_POSTGRES_DSN"
Dsn = Annotated[
    str,
    typer.Option(envvar=DSN_ENV, help="PostgreSQL DSN (postgresql://user:pass@host/db)"),
]
RedisUrl = Annotated[str, typer.Option(envvar="JQW_REDIS_URL", help="Redis URL")]

db_app = typer.Typer(help="The PostgreSQL schema of durable job records.", no_args_is_help=True)

# Retention defaults: finished rows are kept long enough to answer "what happened
# to job X last week?", failures longer than successes.
RETENTION_DAYS = {"completed": 7.0, "purged": 7.0, "failed": 30.0, "dead": 30.0}


def _fail(exc: Exception, code: ExitCode | None = None) -> NoReturn:
    """One line and the documented exit code: a refusal or no answer from the server is
    UNREACHABLE, a bad DSN or a missing schema is USAGE, anything else FAILED."""
    if code is None:
        message = str(exc)
        if "cannot connect to PostgreSQL" in message:
            code = ExitCode.UNREACHABLE
        elif isinstance(exc, ConfigError):
            code = ExitCode.USAGE
        else:
            code = ExitCode.FAILED
    raise CliError(str(exc), code) from None


def _store() -> Any:
    try:
        from jobqueue_worker import pgstore
    except ImportError:
        _fail(
            ConfigError("psycopg is not installed: pip install 'jobqueue-worker[postgres]'"),
            ExitCode.USAGE,
        )
    return pgstore


@db_app.command("upgrade")
def upgrade(dsn: Dsn = "") -> None:
    """Create or upgrade the jobs schema (idempotent; safe to run from several replicas)."""
    pgstore = _store()
    try:
        before, applied = pgstore.upgrade(_need(dsn))
    except (ConfigError, pgstore.StoreError) as exc:
        _fail(exc)
    if applied:
        console.print(f"schema upgraded from {before or 'nothing'} to {applied[-1]}")
    else:
        console.print(f"schema is up to date (version {before})")


@db_app.command("prune")
def prune(
    dsn: Dsn = "",
    status: Annotated[
        list[str] | None, typer.Option(help="statuses to prune (repeat); default: all finished")
    ] = None,
    older_than_days: Annotated[
        float | None, typer.Option(help="default: 7 for completed/purged, 30 for failed/dead")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Delete finished rows (and their attempts) older than the retention, in small batches."""
    pgstore = _store()
    chosen = status or list(RETENTION_DAYS)
    unknown = [s for s in chosen if s not in RETENTION_DAYS]
    if unknown:
        _fail(ConfigError(f"--status {unknown[0]!r}: only finished statuses can be pruned"))
    total = 0
    try:
        for st in chosen:
            days = older_than_days if older_than_days is not None else RETENTION_DAYS[st]
            total += pgstore.prune(_need(dsn), [st], days * 86_400, batch)
    except (ConfigError, pgstore.StoreError) as exc:
        _fail(exc)
    console.print(f"pruned {total} rows")


def _need(dsn: str) -> str:
    if not dsn:
        raise ConfigError(f"no PostgreSQL DSN: set {DSN_ENV} or pass --dsn")
    return dsn


def migrator(  # noqa: PLR0917 - typer maps parameters to options
    dsn: Dsn = "",
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="rows per round trip")] = 500,
    poll_interval_s: Annotated[float, typer.Option(min=0.01)] = 1.0,
    reconcile_after_s: Annotated[
        float, typer.Option(min=0.1, help="repair rows open this long from Redis's record")
    ] = 30.0,
    json_logs: Annotated[bool, typer.Option("--json-logs/--text-logs")] = False,
    http_port: Annotated[
        int, typer.Option(min=0, max=65535, help="/healthz and /metrics on this port; 0: off")
    ] = 0,
    http_host: Annotated[str, typer.Option(help="the address /healthz and /metrics bind")] = (
        "0.0.0.0"  # a pod must be reachable by its probes and its scraper
    ),
) -> None:
    """Move committed job rows from PostgreSQL into Redis until SIGTERM/SIGINT."""
    pgstore = _store()
    from jobqueue_worker.broker import Broker
    from jobqueue_worker.migrator import Migrator
    from jobqueue_worker.settings import load

    logformat.setup("json" if json_logs else "text")
    try:
        # The workers' TTLs (JQW_JOB_TTL_S, ...) apply to the jobs it creates too.
        limits = load(redis_url=redis_url).limits()
    except ConfigError as exc:
        _fail(exc)

    async def go() -> None:
        store = pgstore.AsyncStore(_need(dsn))
        try:
            await store.check()  # a bad password or schema ends here, before any work
        except ConfigError:
            raise
        except pgstore.StoreError as exc:
            log.warning("PostgreSQL unavailable at start; retrying", extra={"error": str(exc)})
        broker = Broker(redis_url, limits)
        m = Migrator(
            store,
            broker,
            batch=batch,
            poll_interval_s=poll_interval_s,
            reconcile_after_s=reconcile_after_s,
        )
        runner = None
        if http_port:
            from jobqueue_worker import migrator_http

            runner = await migrator_http.start(m, http_host, http_port)
        task = asyncio.create_task(m.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # A batch cut short rolls back: its rows stay queued for the next run.
            loop.add_signal_handler(sig, task.cancel)
        log.info("Started migrator", extra={"batch": batch, "pid": os.getpid()})
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            if runner is not None:
                await runner.cleanup()
            await store.close()
            await broker.close()
            log.info("Stopped migrator", extra={"migrated": m.stats.migrated})

    try:
        asyncio.run(go())
    except (ConfigError, pgstore.StoreError) as exc:
        _fail(exc)


def _ts(v: datetime | None) -> str:
    return v.isoformat(timespec="milliseconds") if v else "-"


def show_job(dsn: str, job_id: str) -> bool:
    """Print the row and every attempt; False if PostgreSQL has no such job."""
    pgstore = _store()
    try:
        found = pgstore.read_job(dsn, job_id)
    except (ConfigError, pgstore.StoreError) as exc:
        _fail(exc)
    if found is None:
        return False
    row, attempts = found
    table = Table(show_header=False, title=f"job {job_id} (PostgreSQL)")
    for k in ("queue", "type", "status", "priority", "attempt_count", "max_attempts"):
        table.add_row(k, str(row[k]) if row[k] is not None else "-")
    table.add_row("worker", row["worker_id"] or "-")
    for k in ("created_at", "run_at", "migrated_at", "started_at", "finished_at", "failed_at"):
        table.add_row(k, _ts(row[k]))
    table.add_row("last error", row["last_error_message"] or "-")
    console.print(table)
    at = Table(title="attempts")
    for col in ("attempt", "worker", "started", "finished", "outcome", "ms", "error"):
        at.add_column(col)
    for a in attempts:
        at.add_row(
            str(a["attempt"]),
            a["worker_id"] or "-",
            _ts(a["started_at"]),
            _ts(a["finished_at"]),
            a["outcome"],
            str(a["duration_ms"]) if a["duration_ms"] is not None else "-",
            (a["error"] or "")[:80],
        )
    console.print(at)
    return True


def history(
    dsn: Dsn = "",
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    status: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest jobs from PostgreSQL, with status, attempts and last error."""
    pgstore = _store()
    try:
        rows = pgstore.history(_need(dsn), queue, status, limit)
    except (ConfigError, pgstore.StoreError) as exc:
        _fail(exc)
    table = Table(title="job history (PostgreSQL)")
    for col in ("id", "queue", "type", "status", "attempts", "created", "finished", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            r["queue"],
            r["type"],
            r["status"],
            str(r["attempt_count"]),
            _ts(r["created_at"]),
            _ts(r["finished_at"]),
            (r["last_error_message"] or "")[:60],
        )
    console.print(table)


async def apply_dead(
    broker: Broker,
    action: dlq_ops.Action,
    queue: str,
    chosen: Sequence[str],
    on_progress: dlq_ops.OnProgress | None = None,
) -> int:
    """``dlq replay``/``purge`` of ``chosen``, telling PostgreSQL too when a DSN is set."""
    from jobqueue_worker import dlq as dlq_ops

    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        return await dlq_ops.apply(broker, action, queue, chosen, on_progress)
    store = _store().AsyncStore(dsn)
    try:
        return await dlq_ops.apply(broker, action, queue, chosen, on_progress, records=store)
    finally:
        await store.close()


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("migrator")(migrator)
    app.command("history")(history)
