"""What every ``jobqueue`` command shares: validated options, Redis access, output.

Options are declared once here (``RedisUrl``, ``QueueOpt``, ...) and validated
by their callbacks, so a bad value is a usage error naming the option before
anything touches Redis. Tables go to stdout, ``--json`` documents go to stdout
(their schemas are in ``docs/cli.md``), progress bars and errors go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jobqueue_protocol import keys
from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_protocol.logformat import redact_url
from jobqueue_protocol.redis_url import parse_redis_url
from jobqueue_worker.broker import Broker, DurabilityError, describe_redis_error
from jobqueue_worker.records import JobRecord

T = TypeVar("T")

console = Console()
err = Console(stderr=True)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The URL of this invocation, so a connection error can say where it failed.
_target: dict[str, str] = {}


def _redis_url(value: str) -> str:
    try:
        parse_redis_url(value)  # its messages never echo the value: it may carry a password
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _target["redis_url"] = value
    return value


def _queue(value: str) -> str:
    try:
        return keys.validate_queue(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _queues(values: list[str] | None) -> list[str] | None:
    if not values:
        return values
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    for name in names:
        _queue(name)
    return list(dict.fromkeys(names))


RedisUrl = Annotated[
    str,
    typer.Option(
        envvar="JQW_REDIS_URL",
        help="Redis URL (redis://, rediss://, unix://, redis+sentinel://host:port,.../master)",
        callback=_redis_url,
    ),
]
QueueOpt = Annotated[str, typer.Option("--queue", "-q", help="queue name", callback=_queue)]
QueuesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--queue",
        "-q",
        help="queue (repeat, or comma-separated); default JQW_QUEUES",
        callback=_queues,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON (schema in docs/cli.md)")]


def bad_option(option: str, message: str) -> typer.BadParameter:
    """A usage error naming ``option``, raised from a command's body."""
    return typer.BadParameter(message, param_hint=f"'{option}'")


def env_queues(given: list[str] | None) -> list[str]:
    if given:
        return given
    names = [q.strip() for q in os.environ.get("JQW_QUEUES", "default").split(",") if q.strip()]
    for name in names:
        try:
            keys.validate_queue(name)
        except ValueError as exc:
            raise CliError(f"JQW_QUEUES: {exc}", ExitCode.USAGE) from None
    return names or ["default"]


def classify(exc: BaseException) -> CliError | None:
    """Redis errors as one line: exit 3 when Redis is unreachable, 1 when it refused."""
    if isinstance(exc, DurabilityError):
        return CliError(f"{exc}; the jobs may be lost if the master fails now", ExitCode.FAILED)
    found = describe_redis_error(exc)
    if found is None:
        return None
    unreachable, reason = found
    where = redact_url(_target.get("redis_url", DEFAULT_REDIS_URL))
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
