"""The `jobqueue` command line: the worker's commands plus the tools that need both halves.

The worker package must never import the operator (an import-linter contract),
yet `jobqueue simulate` drives the operator's own pure scaling policy. This
package sits above both and composes one command line. The simulator is
imported only when ``simulate`` runs, so an installation without it (the worker
image) starts fast and every other command works; ``simulate`` then fails with
one line saying what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import NoReturn

import typer
import typer.main

from jobqueue_protocol import clikit
from jobqueue_worker.cli import PROG, app
from jobqueue_worker.cli.common import classify

# Where the simulator's typer app lives (its `simulate` command).
SIMULATOR_MODULE = "jobqueue_simulator.cli"
SIMULATOR_INSTALL_HINT = "it comes with jobqueue-operator: pip install 'jobqueue-operator[sim]'"


@app.command(
    "simulate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def simulate(ctx: typer.Context) -> None:
    """Compare scaling policies offline on an arrival trace (`simulate --help` for options)."""
    try:
        module = importlib.import_module(SIMULATOR_MODULE)
    except ImportError as exc:
        raise clikit.CliError(
            f"the simulator is not installed ({exc.name or exc}); {SIMULATOR_INSTALL_HINT}",
            clikit.ExitCode.FAILED,
        ) from None
    command = typer.main.get_command(module.app)
    parent = ctx.parent.command_path if ctx.parent is not None else PROG
    sub = command.commands["simulate"]  # type: ignore[attr-defined]  # a typer group
    code = sub.main(list(ctx.args), prog_name=f"{parent} simulate", standalone_mode=False)
    raise typer.Exit(code if isinstance(code, int) else 0)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `jobqueue` console script."""
    clikit.run(app, PROG, argv=argv, classify=classify)
