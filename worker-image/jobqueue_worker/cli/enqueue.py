"""``jobqueue enqueue``: one job, N copies, or every line of a JSON-lines file.

A file is read and validated whole before the first job is sent, so a bad line
enqueues nothing; then jobs go in batches of :data:`BATCH` (one round trip
each) under a progress bar. Ids are printed as each batch lands, so when Redis
fails half-way the ids already on stdout are exactly the jobs that were queued.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_worker.cli.common import classify, progress
from jobqueue_worker.cli.options import DEFAULT_REDIS_URL, QueueOpt, RedisUrl, bad_option
from jobqueue_worker.envelope import parse_priority
from jobqueue_worker.errors import EnqueueError
from jobqueue_worker.producer import JobRequest, Producer, build
from jobqueue_worker.wire import BrokerSettings

BATCH = 500
MAX_PAYLOAD_BYTES = 1_000_000
FILE_FIELDS = frozenset(
    {"type", "payload", "queue", "priority", "delay_s", "idempotency_key", "max_attempts"}
    | {"timeout_s"}
)


def _priority(value: str) -> str:
    try:
        parse_priority(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_option("--payload", f"not valid JSON: {exc.msg} at column {exc.colno}") from None


def _lines(path: str) -> Iterable[str]:
    if path == "-":
        return sys.stdin
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise bad_option("--from-file", f"cannot read {path}: {reason}") from None


def _from_file(path: str, defaults: JobRequest) -> list[JobRequest]:
    """Every line as a validated request; the first bad line is a usage error."""
    reqs: list[JobRequest] = []
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise bad_option("--from-file", f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise bad_option("--from-file", f'{where}: expected an object with a "type" string')
        unknown = sorted(set(obj) - FILE_FIELDS)
        if unknown:
            known = ", ".join(sorted(FILE_FIELDS))
            raise bad_option(
                "--from-file", f"{where}: unknown field(s) {', '.join(unknown)}; known: {known}"
            )
        req = JobRequest(
            type=obj["type"],
            payload=obj.get("payload"),
            queue=obj.get("queue", defaults.queue),
            priority=obj.get("priority", defaults.priority),
            delay_s=obj.get("delay_s", defaults.delay_s),
            idempotency_key=obj.get("idempotency_key"),
            max_attempts=obj.get("max_attempts"),
            timeout_s=obj.get("timeout_s"),
        )
        try:
            build(req, defaults.queue or "default", MAX_PAYLOAD_BYTES)
        except (EnqueueError, TypeError, ValueError) as exc:
            raise bad_option("--from-file", f"{where}: {exc}") from None
        reqs.append(req)
    if not reqs:
        raise bad_option("--from-file", f"{path} holds no jobs")
    return reqs


def _send(redis_url: str, queue: str, reqs: list[JobRequest], limits: BrokerSettings) -> None:
    """Enqueue in batches under a progress bar, printing ids as they land."""
    sent = 0

    async def go(update: Any) -> None:
        nonlocal sent
        async with Producer(
            redis_url, default_queue=queue, max_payload_bytes=MAX_PAYLOAD_BYTES, limits=limits
        ) as producer:
            for i in range(0, len(reqs), BATCH):
                ids = await producer.enqueue_many(reqs[i : i + BATCH])
                sys.stdout.write("".join(f"{job_id}\n" for job_id in ids))
                sent += len(ids)
                update(sent, len(reqs))

    with progress("enqueue") as update:
        try:
            asyncio.run(go(update))
        except Exception as exc:
            known = classify(exc)
            if known is None or not sent:
                raise
            note = f" ({sent} of {len(reqs)} jobs were enqueued; their ids are on stdout)"
            raise CliError(known.message + note, known.code) from exc
        finally:
            sys.stdout.flush()


def enqueue(  # noqa: PLR0917 - typer maps parameters to options
    job_type: Annotated[
        str | None, typer.Argument(metavar="TYPE", help="job type (not with --from-file)")
    ] = None,
    payload: Annotated[str, typer.Option(help="JSON payload")] = "null",
    queue: QueueOpt = "default",
    priority: Annotated[
        str,
        typer.Option(help="1..10 or critical/high/normal/low/background", callback=_priority),
    ] = "normal",
    delay: Annotated[float | None, typer.Option(min=0, help="seconds")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="a second job with the same key resolves to the first")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=100_000, help="enqueue this many copies")] = 1,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            metavar="FILE",
            help="JSON lines, one job each ({'type', 'payload', 'queue', 'priority', ...}); "
            "- reads stdin; the options above are the defaults of every line",
        ),
    ] = None,
    durable_replicas: Annotated[
        int,
        typer.Option(
            min=0,
            max=10,
            help="return only once this many replicas hold the jobs (Redis WAIT); 0: off",
        ),
    ] = 0,
    durable_timeout: Annotated[
        float, typer.Option(min=0.01, max=60, help="seconds to wait for the replicas")
    ] = 1.0,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
) -> None:
    """Enqueue jobs and print their ids, one per line."""
    defaults = JobRequest(type="-", queue=queue, priority=priority, delay_s=delay)
    if from_file is not None:
        if job_type is not None or count != 1:
            raise bad_option("--from-file", "give either TYPE (with --count) or --from-file")
        reqs = _from_file(from_file, defaults)
    elif job_type is None:
        raise typer.BadParameter("give a job TYPE or --from-file FILE", param_hint="'TYPE'")
    else:
        req = JobRequest(
            type=job_type,
            payload=_payload(payload),
            priority=priority,
            delay_s=delay,
            idempotency_key=idempotency_key,
        )
        try:
            build(req, queue, MAX_PAYLOAD_BYTES)
        except EnqueueError as exc:
            raise CliError(str(exc), ExitCode.USAGE) from None
        # One key means one job: copies would all resolve to the first id.
        reqs = [req] * (1 if idempotency_key else count)
    limits = BrokerSettings(
        durable_replicas=durable_replicas, durable_timeout_ms=int(durable_timeout * 1000)
    )
    _send(redis_url, queue, reqs, limits)
