"""``jobqueue web``: serve the UI with uvicorn (127.0.0.1 unless authentication is set up)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
import uvicorn  # here, not in the command: a missing `web` extra fails at import, in one line

from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_web.app import create_app
from jobqueue_web.auth import AuthConfig, bind_problem
from jobqueue_web.config import WebConfig
from jobqueue_web.redact import DEFAULT_FIELDS
from jobqueue_worker.cli.options import QueuesOpt, RedisUrl, env_queues

app = typer.Typer(pretty_exceptions_enable=False)


def _tokens(path: Path | None, env: str, what: str) -> tuple[str, ...]:
    """One token per line from ``path`` (a mounted Secret), else from ``$env``."""
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliError(f"{what}: cannot read {path}: {exc.strerror}", ExitCode.USAGE) from None
    else:
        text = os.environ.get(env, "")
    found = tuple(t.strip() for t in text.replace(",", "\n").splitlines() if t.strip())
    short = [t for t in found if len(t) < 16]
    if short:
        raise CliError(f"{what}: every token must be at least 16 characters", ExitCode.USAGE)
    return found


@app.command("web")
def web(  # noqa: PLR0917 - typer maps parameters to options
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0",
    queue: QueuesOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8089,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            help="tokens that may replay and purge, one a line (else $JQW_WEB_ADMIN_TOKENS)"
        ),
    ] = None,
    readonly_token_file: Annotated[
        Path | None,
        typer.Option(help="read-only tokens, one a line (else $JQW_WEB_READONLY_TOKENS)"),
    ] = None,
    proxy_user_header: Annotated[
        str | None,
        typer.Option(help="trust this header as the user name (only behind a proxy that sets it)"),
    ] = None,
    proxy_admin_user: Annotated[
        list[str] | None, typer.Option(help="a proxy user who may replay and purge (repeat)")
    ] = None,
    redact_field: Annotated[
        list[str] | None,
        typer.Option(help=f"payload keys to mask (repeat; default: {', '.join(DEFAULT_FIELDS)})"),
    ] = None,
    sample_interval: Annotated[float, typer.Option(min=0.2, help="seconds between samples")] = 5.0,
    kube: Annotated[bool, typer.Option(help="read JobQueues from the cluster (Scaling)")] = True,
    namespace: Annotated[str | None, typer.Option(help="only this namespace's JobQueues")] = None,
    secure_cookies: Annotated[bool, typer.Option(help="mark cookies Secure (behind TLS)")] = False,
    postgres_dsn: Annotated[
        str | None,
        typer.Option(
            envvar="JQW_POSTGRES_DSN",
            help="PostgreSQL job history: every attempt, finished jobs",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the web UI: queues, jobs, the dead-letter queue, workers and scaling."""
    auth = AuthConfig(
        admin_tokens=_tokens(admin_token_file, "JQW_WEB_ADMIN_TOKENS", "admin tokens"),
        readonly_tokens=_tokens(readonly_token_file, "JQW_WEB_READONLY_TOKENS", "read-only tokens"),
        proxy_user_header=proxy_user_header or None,
        proxy_admin_users=tuple(proxy_admin_user or ()),
    )
    problem = bind_problem(host, auth)
    if problem:
        raise CliError(problem, ExitCode.USAGE)
    config = WebConfig(
        redis_url=redis_url,
        queues=tuple(queue or (env_queues(None) if os.environ.get("JQW_QUEUES") else ())),
        auth=auth,
        redact_fields=frozenset(f.lower() for f in (redact_field or DEFAULT_FIELDS)),
        sample_interval_s=sample_interval,
        kube_enabled=kube,
        kube_namespace=namespace,
        secure_cookies=secure_cookies,
        postgres_dsn=postgres_dsn or None,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(config, secrets.token_bytes(32)),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
        server_header=False,
    )
