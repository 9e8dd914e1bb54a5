"""The ``jobqueue`` command: run a worker, enqueue, inspect stats, jobs and the DLQ.

Each command lives in its own module; this one assembles them, adds the global
``--version`` and ``--debug`` options and runs the app through
``jobqueue_protocol.clikit`` so every failure is one line and a documented exit
code (``docs/cli.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer

from jobqueue_protocol import clikit
from jobqueue_worker.cli import health, postgres
from jobqueue_worker.cli.common import classify
from jobqueue_worker.cli.dlq import dlq_app
from jobqueue_worker.cli.enqueue import enqueue
from jobqueue_worker.cli.run import load_registry, run_worker, worker
from jobqueue_worker.cli.stats import job, stats

PROG = "jobqueue"

app = typer.Typer(
    help="jobqueue: a reliable Redis job queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    version: Annotated[bool, clikit.version_flag(PROG, "jobqueue_worker")] = False,
    debug: clikit.DebugFlag = False,
) -> None:
    """jobqueue: a reliable Redis job queue."""
    clikit.set_debug(debug)


app.command()(worker)
app.command()(enqueue)
app.command()(stats)
app.command()(job)
app.add_typer(dlq_app, name="dlq")
health.register(app)
# ``db``, ``migrator`` and ``history``: durable job records in PostgreSQL.
postgres.register(app)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``python -m jobqueue_worker`` (the console script adds ``simulate``)."""
    clikit.run(app, PROG, argv=argv, classify=classify)


__all__ = ["app", "load_registry", "main", "run_worker"]
