"""The options every ``jobqueue`` command shares, validated by their callbacks.

A bad value is a usage error naming the option before anything touches Redis.
Pure (typer and the key rules only), so the web UI's command line can declare
the same options without importing the broker.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from jobqueue_protocol import keys
from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_protocol.redis_url import parse_redis_url

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The URL of this invocation, so a connection error can say where it failed.
target: dict[str, str] = {}


def _redis_url(value: str) -> str:
    try:
        parse_redis_url(value)  # its messages never echo the value: it may carry a password
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    target["redis_url"] = value
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
