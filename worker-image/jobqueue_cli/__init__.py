"""The `jobqueue` command line: the worker's commands plus the tools that need both halves.

The worker package must never import the operator (an import-linter contract),
yet `jobqueue simulate` drives the operator's own pure scaling policy. This
package sits above both and composes one command line, so neither half grows a
dependency on the other. The simulator is imported only when `simulate` runs: the
worker image (and an application that only enqueues) does not ship the operator.
"""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

import typer

from jobqueue_worker.cli import app

DISTRIBUTION = "jobqueue-worker"
SIMULATOR_MISSING = (
    "jobqueue simulate needs the operator's distribution: pip install 'jobqueue-operator[sim]'"
)


def installed_version(distribution: str) -> str:
    """The installed version of `distribution`, or "unknown" when run from a bare source tree."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"jobqueue {installed_version(DISTRIBUTION)}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """jobqueue: a reliable Redis job queue."""


@app.command(
    "simulate",
    # Every argument, --help included, belongs to the simulator's own command line,
    # which exists only once the simulator has been imported.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
    help="Replay an arrival trace through the operator's scaling policy and a KEDA model.",
)
def simulate(ctx: typer.Context) -> None:
    try:
        from jobqueue_operator.simulator.cli import simulate as run
    except ModuleNotFoundError:
        typer.echo(SIMULATOR_MISSING, err=True)
        raise typer.Exit(2) from None
    inner = typer.Typer(add_completion=False)
    inner.command()(run)
    inner(args=ctx.args, prog_name="jobqueue simulate")


def main() -> None:
    """Entry point of the `jobqueue` console script."""
    app()
