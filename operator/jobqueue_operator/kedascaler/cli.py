"""``jobqueue-operator keda-scaler``: serve our queue metrics and policy to KEDA.

The Redis URL carries no credentials (it is printed); the password comes from
``JQO_REDIS_PASSWORD`` or a file, as the operator's comes from a Secret.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from jobqueue_operator.redis_endpoint import Endpoint
from jobqueue_protocol import clikit, logformat
from jobqueue_protocol.redis_url import parse_redis_url

PROG = "jobqueue-operator keda-scaler"
HELP = (
    "Serve KEDA's external-scaler gRPC API: for the queue named in a ScaledObject "
    "trigger's metadata, the in-flight-aware backlog or the replica count our policy "
    "wants (docs/keda.md). Exit codes: 0 stopped, 2 bad option, 1 anything else."
)

app = typer.Typer(pretty_exceptions_enable=False)


def redis_endpoint(
    url: str,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 2.0,
    insecure: bool = False,
) -> Endpoint:
    """The scaler's Redis endpoint; the URL must not carry credentials (it is printed)."""
    if not url.startswith(("redis://", "rediss://")):
        raise clikit.CliError(
            "--redis-url must start with redis:// or rediss://", clikit.ExitCode.USAGE
        )
    if "@" in url.split("/", 3)[2]:
        raise clikit.CliError(
            "--redis-url must not carry credentials; use --redis-username and JQO_REDIS_PASSWORD",
            clikit.ExitCode.USAGE,
        )
    parsed = parse_redis_url(url)
    tls = parsed.tls
    if tls is not None and insecure:
        tls = replace(tls, verify=False)
    target = replace(parsed, username=username, password=password, tls=tls)
    return Endpoint(target=target, timeout_s=timeout_s)


def _password(file: Path | None) -> str | None:
    if file is None:
        return os.environ.get("JQO_REDIS_PASSWORD") or None
    try:
        return file.read_text().strip() or None
    except OSError as exc:
        raise clikit.CliError(
            f"cannot read --redis-password-file {file}: {exc.strerror}", clikit.ExitCode.USAGE
        ) from None


@app.command(help=HELP)
def keda_scaler(  # noqa: PLR0917 - typer maps parameters to options
    redis_url: Annotated[
        str, typer.Option(envvar="JQO_REDIS_URL", help="the queues' Redis, without credentials")
    ] = "redis://localhost:6379/0",
    redis_username: Annotated[
        str | None, typer.Option(envvar="JQO_REDIS_USERNAME", help="Redis ACL user")
    ] = None,
    redis_password_file: Annotated[
        Path | None,
        typer.Option(help="file holding the Redis password (else JQO_REDIS_PASSWORD)"),
    ] = None,
    redis_timeout: Annotated[
        float, typer.Option(min=0.1, max=30.0, help="seconds per Redis call")
    ] = 2.0,
    redis_insecure_skip_verify: Annotated[
        bool, typer.Option(help="with rediss://: do not verify Redis's certificate")
    ] = False,
    listen: Annotated[
        str, typer.Option(envvar="JQO_KEDA_LISTEN", help="HOST:PORT of the gRPC server")
    ] = "0.0.0.0:9090",
    tls_cert: Annotated[Path | None, typer.Option(help="serve TLS with this certificate")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="the key of --tls-cert")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="demand client certificates signed by this CA")
    ] = None,
    stream_interval: Annotated[
        float, typer.Option(min=0.5, max=300.0, help="seconds between StreamIsActive polls")
    ] = 5.0,
    log_format: Annotated[
        logformat.LogFormatChoice,
        typer.Option(envvar="JQO_LOG_FORMAT", help="json or text log lines"),
    ] = logformat.LogFormatChoice.TEXT,
    debug: clikit.DebugFlag = False,
) -> None:
    clikit.set_debug(debug)
    from jobqueue_operator.kedascaler.server import ServerSetupError, TlsFiles, serve
    from jobqueue_operator.kedascaler.service import RedisSource, ScalerService

    if (tls_cert is None) != (tls_key is None):
        raise clikit.CliError("--tls-cert and --tls-key go together", clikit.ExitCode.USAGE)
    if tls_client_ca is not None and tls_cert is None:
        raise clikit.CliError("--tls-client-ca needs --tls-cert", clikit.ExitCode.USAGE)
    tls = (
        TlsFiles(tls_cert, tls_key, tls_client_ca)
        if tls_cert is not None and tls_key is not None
        else None
    )
    endpoint = redis_endpoint(
        redis_url,
        redis_username,
        _password(redis_password_file),
        redis_timeout,
        redis_insecure_skip_verify,
    )
    logformat.setup(log_format.value, logging.INFO)
    service = ScalerService(RedisSource(endpoint), stream_interval_s=stream_interval)
    try:
        asyncio.run(serve(service, listen, tls))
    except ServerSetupError as exc:
        raise clikit.CliError(str(exc), clikit.ExitCode.USAGE) from None


def main(argv: list[str]) -> NoReturn:
    clikit.run(app, PROG, argv=argv)
