"""``jobqueue-operator``: run the operator.

Single writer per JobQueue: by default the replicas elect a leader through a
``coordination.k8s.io/v1`` Lease (``--lease jobqueue-operator`` in
``JQO_LEASE_NAMESPACE``); only the leader acts, the others stand by and serve
the admission webhook. ``--standalone`` skips the election (one replica, or
tests). See ``docs/operator.md``, "High availability"; exit codes are in
``docs/cli.md``.

The settings (``JQO_*`` and the scaling defaults) are read here, before kopf
starts, so a bad value is one line naming the variable and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from jobqueue_operator.settings import OperatorSettings
from jobqueue_protocol import clikit, logformat

PROG = "jobqueue-operator"
DEFAULT_LEASE = "jobqueue-operator"

app = typer.Typer(pretty_exceptions_enable=False)
HELP = (
    "Run the operator: scale each JobQueue's workers from its Redis queues. "
    "Exit codes: 0 stopped, 2 bad option or setting, 1 anything else (docs/cli.md). "
    "`jobqueue-operator keda-scaler --help`: serve our queue metrics to KEDA instead."
)


def _settings_error(exc: ValidationError) -> str:
    """One line naming each bad variable, without its value (it may be a secret)."""
    parts = []
    for e in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(x) for x in e["loc"]) or "settings"
        parts.append(f"{name.upper()}: {e['msg']}")
    return "invalid setting " + "; ".join(parts)


@app.command(help=HELP)
def run(  # noqa: PLR0917 - typer maps parameters to options
    standalone: Annotated[
        bool, typer.Option("--standalone", help="no leader election: this process always acts")
    ] = False,
    lease: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="name of the leader-election Lease; replicas with the same Lease elect one "
            f"writer [default: {DEFAULT_LEASE}]",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="watch this namespace (repeatable); default: all namespaces",
        ),
    ] = None,
    liveness: Annotated[
        str,
        typer.Option(
            metavar="URL",
            help="kopf liveness endpoint URL ('' to disable); readiness: JQO_READY_PORT's /readyz",
        ),
    ] = "http://0.0.0.0:8081/healthz",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    log_format: Annotated[
        logformat.LogFormatChoice,
        typer.Option(envvar="JQO_LOG_FORMAT", help="json or text log lines, kopf's included"),
    ] = logformat.LogFormatChoice.TEXT,
    version: Annotated[bool, clikit.version_flag(PROG, "jobqueue_operator")] = False,
    debug: clikit.DebugFlag = False,
) -> None:
    clikit.set_debug(debug)
    if standalone and lease is not None:
        raise typer.BadParameter(
            "--standalone and --lease exclude each other", param_hint="'--lease'"
        )
    try:
        OperatorSettings()
    except ValidationError as exc:
        raise clikit.CliError(_settings_error(exc), clikit.ExitCode.USAGE) from None
    # kopf is imported only to run, so --help, --version and usage errors stay fast.
    from jobqueue_operator import handlers

    handlers.run(
        lease=None if standalone else (lease or DEFAULT_LEASE),
        namespaces=namespace or [],
        liveness=liveness,
        verbose=verbose,
        log_format=log_format.value,
    )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the console script (``keda-scaler`` is a command of its own)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["keda-scaler"]:
        # Imported only here: grpc is the optional `keda` extra, not needed to run the operator.
        from jobqueue_operator.kedascaler import cli as keda_cli

        keda_cli.main(args[1:])
    clikit.run(app, PROG, argv=args)


if __name__ == "__main__":
    main(sys.argv[1:])
