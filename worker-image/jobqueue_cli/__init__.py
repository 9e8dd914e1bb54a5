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
# The web UI's typer app (its `web` command), imported only when `web` runs.
WEB_MODULE = "jobqueue_web.cli"
WEB_INSTALL_HINT = "install the web extra: pip install 'jobqueue-worker[web]'"


def _run_lazy_app(ctx: typer.Context, name: str, what: str, module_name: str, hint: str) -> None:
    """Run the typer app of ``module_name`` as ``jobqueue <name>``, importing it only now;
    a missing optional dependency is one line saying what to install."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise clikit.CliError(
            f"{what} is not installed ({exc.name or exc}); {hint}",
            clikit.ExitCode.FAILED,
        ) from None
    command = typer.main.get_command(module.app)
    parent = ctx.parent.command_path if ctx.parent is not None else PROG
    sub = getattr(command, "commands", {}).get(name, command)  # a group, or the command
    code = sub.main(list(ctx.args), prog_name=f"{parent} {name}", standalone_mode=False)
    raise typer.Exit(code if isinstance(code, int) else 0)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("simulate", context_settings=_PASS_THROUGH, add_help_option=False)
def simulate(ctx: typer.Context) -> None:
    """Compare scaling policies offline on an arrival trace (`simulate --help` for options)."""
    _run_lazy_app(ctx, "simulate", "the simulator", SIMULATOR_MODULE, SIMULATOR_INSTALL_HINT)


@app.command("web", context_settings=_PASS_THROUGH, add_help_option=False)
def web(ctx: typer.Context) -> None:
    """Serve the web UI for queues, jobs, the DLQ, workers and scaling (`web --help`)."""
    _run_lazy_app(ctx, "web", "the web UI", WEB_MODULE, WEB_INSTALL_HINT)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `jobqueue` console script."""
    clikit.run(app, PROG, argv=argv, classify=classify)
