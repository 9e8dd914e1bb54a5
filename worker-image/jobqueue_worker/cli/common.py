"""What every ``jobqueue`` command shares: Redis access, errors, output.

Options are declared once in ``cli.options``. Tables go to stdout, ``--json`` documents go to stdout
(their schemas are in ``docs/cli.md``), progress bars and errors go to stderr.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_protocol.logformat import redact_url
from jobqueue_worker.broker import Broker, DurabilityError, describe_redis_error
from jobqueue_worker.cli import options
from jobqueue_worker.records import JobRecord

T = TypeVar("T")

console = Console()
err = Console(stderr=True)


def classify(exc: BaseException) -> CliError | None:
    """Redis errors as one line: exit 3 when Redis is unreachable, 1 when it refused."""
    if isinstance(exc, DurabilityError):
        return CliError(f"{exc}; the jobs may be lost if the master fails now", ExitCode.FAILED)
    found = describe_redis_error(exc)
    if found is None:
        return None
    unreachable, reason = found
    where = redact_url(options.target.get("redis_url", options.DEFAULT_REDIS_URL))
    if unreachable:
        return CliError(f"cannot reach Redis at {where}: {reason}", ExitCode.UNREACHABLE)
    return CliError(f"Redis at {where} refused: {reason}", ExitCode.FAILED)


def with_broker(redis_url: str, fn: Callable[[Broker], Awaitable[T]]) -> T:
    """Run ``fn`` with a broker on ``redis_url`` and close it whatever happens."""

    async def go() -> T:
        broker = Broker(redis_url)
        try:
            return await fn(broker)
        finally:
            await broker.close()

    return asyncio.run(go())


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


@contextmanager
def progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (only at a terminal); yields ``update(done, total)``."""
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
        # stdout stays the command's output (ids), never mixed into the bar's stream.
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = bar.add_task(what, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


def local_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).isoformat(timespec="milliseconds") if ts else "-"


def depth_cells(queue: Mapping[str, Any]) -> list[str]:
    """The waiting, by priority, delayed, in flight, dead and oldest age cells of one
    queue of a ``--json`` document: the columns the stats and health tables share."""
    by_priority = " ".join(f"{p}:{n}" for p, n in queue["waiting_by_priority"].items() if n)
    return [
        str(queue["waiting"]),
        by_priority or "-",
        str(queue["delayed"]),
        str(queue["in_flight"]),
        str(queue["dead"]),
        f"{queue['oldest_age_s']:.1f}",
    ]


def record_json(rec: JobRecord, *, traceback: bool) -> dict[str, Any]:
    """One job as ``--json`` prints it (``docs/cli.md``, "job record")."""
    try:
        result = rec.result
    except ValueError:  # not JSON: a result written by something else; show it as text
        result = rec.result_json
    data: dict[str, Any] = {
        "id": rec.id,
        "queue": rec.queue,
        "status": rec.status.value,
        "type": rec.type,
        "priority": rec.priority,
        "attempt": rec.attempt,
        "max_attempts": rec.max_attempts or None,
        "deliveries": rec.deliveries,
        "worker": rec.worker,
        "enqueued_at": iso(rec.enqueued_at),
        "started_at": iso(rec.started_at),
        "finished_at": iso(rec.finished_at),
        "duration_s": rec.duration_s,
        "error": rec.error,
        "dead_reason": rec.dead_reason,
        "first_failed_at": iso(rec.first_failed_at),
        "last_failed_at": iso(rec.last_failed_at),
        "dead_at": iso(rec.dead_at),
        "result": result,
    }
    if traceback:
        data["traceback"] = rec.traceback
    return data
