"""``jobqueue dlq``: list, show, replay and purge dead-lettered jobs.

``replay`` and ``purge`` take the same selection (ids, ``--all``, ``--type``,
``--reason``), declared once below. Given ids that are not in the dead-letter
queue make the command fail (exit 1) after the others were acted on. ``purge``
deletes for good, so it asks first; without a terminal it refuses unless
``--yes`` says so.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_worker import dlq as dlq_ops
from jobqueue_worker.cli import postgres
from jobqueue_worker.cli.common import (
    console,
    local_time,
    print_json,
    progress,
    record_json,
    with_broker,
)
from jobqueue_worker.cli.options import DEFAULT_REDIS_URL, JsonOpt, QueueOpt, RedisUrl
from jobqueue_worker.cli.stats import print_record
from jobqueue_worker.records import DeadFilter

dlq_app = typer.Typer(help="Inspect and act on the dead-letter queue.", no_args_is_help=True)

JobIds = Annotated[list[str] | None, typer.Argument(help="dead job ids", show_default=False)]
AllOpt = Annotated[bool, typer.Option("--all", help="every dead job of the queue")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="only jobs of this type")]
ReasonOpt = Annotated[
    str | None, typer.Option(help="only this dead reason (exception, timeout, ...)")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


@dlq_app.command("list")
def dlq_list(
    queue: QueueOpt = "default",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="jobs per page")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="skip this many, newest first")] = 0,
    as_json: JsonOpt = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
) -> None:
    """Dead-lettered jobs, newest first."""
    recs = with_broker(redis_url, lambda b: dlq_ops.list_dead(b, queue, offset, limit))
    if as_json:
        print_json(
            {
                "queue": queue,
                "offset": offset,
                "jobs": [record_json(r, traceback=False) for r in recs],
            }
        )
        return
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
            local_time(r.dead_at),
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    job_id: Annotated[str, typer.Argument(help="a dead job's id")],
    queue: QueueOpt = "default",
    as_json: JsonOpt = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
) -> None:
    """One dead-lettered job with its traceback."""
    rec = with_broker(redis_url, lambda b: dlq_ops.show(b, queue, job_id))
    if rec is None:
        raise CliError(f"job {job_id} not found in queue {queue}", ExitCode.FAILED)
    if as_json:
        print_json(record_json(rec, traceback=True))
    else:
        print_record(rec)


def _act(  # noqa: PLR0917
    action: dlq_ops.Action,
    redis_url: str,
    queue: str,
    job_ids: list[str] | None,
    all_: bool,
    type_: str | None,
    reason: str | None,
    yes: bool = True,
) -> None:
    """Select, confirm (purge), act in pages under a progress bar, report."""
    if not job_ids and not all_ and not type_ and not reason:
        raise typer.BadParameter("give job ids, --all, --type or --reason", param_hint="selection")
    if job_ids and (all_ or type_ or reason):
        raise typer.BadParameter("give job ids or a filter, not both", param_hint="selection")
    flt = DeadFilter(type=type_, reason=reason)
    chosen, unknown = with_broker(redis_url, lambda b: dlq_ops.select(b, queue, job_ids, flt))
    if action == "purge" and chosen and not yes:
        _confirm(f"Purge {len(chosen)} dead-lettered job(s) of queue {queue} for good?")

    with progress(action) as update:
        done = with_broker(
            redis_url, lambda b: postgres.apply_dead(b, action, queue, chosen, update)
        )
    console.print(f"{'replayed' if action == 'replay' else 'purged'} {done}")
    if unknown:
        raise CliError(
            f"not in the dead-letter queue of {queue}: {', '.join(unknown)}", ExitCode.FAILED
        )


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise CliError(
            "refusing to purge without confirmation: stdin is not a terminal (pass --yes)",
            ExitCode.USAGE,
        )
    if not typer.confirm(question, default=False, err=True):
        raise CliError("purge cancelled; nothing was deleted", ExitCode.FAILED)


@dlq_app.command("replay")
def dlq_replay(  # noqa: PLR0917
    job_ids: JobIds = None,
    queue: QueueOpt = "default",
    all_: AllOpt = False,
    type_: TypeOpt = None,
    reason: ReasonOpt = None,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
) -> None:
    """Replay ids, or --all, or by --type/--reason (attempts reset, original priority)."""
    _act("replay", redis_url, queue, job_ids, all_, type_, reason)


@dlq_app.command("purge")
def dlq_purge(  # noqa: PLR0917
    job_ids: JobIds = None,
    queue: QueueOpt = "default",
    all_: AllOpt = False,
    type_: TypeOpt = None,
    reason: ReasonOpt = None,
    yes: YesOpt = False,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
) -> None:
    """Delete dead-lettered jobs for good (asks first unless --yes)."""
    _act("purge", redis_url, queue, job_ids, all_, type_, reason, yes)
