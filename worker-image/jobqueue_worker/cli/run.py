"""``jobqueue worker``: run the worker until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import signal
import sys
import tempfile
import threading
from typing import Annotated, Any

import typer

from jobqueue_protocol import logformat
from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_worker import eventloop
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.registry import Registry
from jobqueue_worker.settings import WorkerSettings, load

log = logging.getLogger("jobqueue_worker")


def load_registry(module: str | None) -> Registry:
    """The job types of `module`; no default, so a worker runs only the code it was given."""
    if not module:
        raise ConfigError(
            "JQW_HANDLERS: no job handler module is configured; set it (or --handlers) to the"
            " module that defines `registry` (jobqueue_worker.handlers for the shipped webhook"
            " and email types)"
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"JQW_HANDLERS: cannot import {module!r}: {exc}") from None
    registry = getattr(mod, "registry", None)
    if not isinstance(registry, Registry):
        raise ConfigError(f"JQW_HANDLERS: module {module!r} has no `registry` (a Registry)")
    return registry


def require_temp_dir(registry: Registry) -> None:
    """Isolated job types need a writable temporary directory; say so at start, not per job.

    Their child processes start from a multiprocessing server whose socket lives in
    a temporary directory. Under a read-only root filesystem there is none unless a
    volume is mounted at /tmp (or TMPDIR names one), and every isolated attempt
    would fail with a message that does not say why.
    """
    isolated = [name for name in registry.names() if (jt := registry.get(name)) and jt.isolated]
    if not isolated:
        return
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise ConfigError(
            f"isolated job types ({', '.join(sorted(isolated))}) need a writable temporary"
            " directory and none of TMPDIR, /tmp, /var/tmp or the working directory is"
            " writable: mount an emptyDir at /tmp (the shipped manifests and chart do) or set"
            " TMPDIR"
        ) from None


_early_stop: list[int] = []


def _note_early_signal(signum: int, _frame: object) -> None:
    """A signal before the loop runs: nothing was fetched yet, so just leave cleanly."""
    _early_stop.append(signum)


async def _serve(settings: WorkerSettings, registry: Registry) -> int:
    from jobqueue_worker import http
    from jobqueue_worker.runtime import Worker

    worker = Worker(settings, registry)
    loop = asyncio.get_running_loop()
    log.debug("Chose the event loop", extra={"event_loop": eventloop.loop_name(loop)})
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    if _early_stop:
        log.info("Stop signal before start: exiting")
        await worker.broker.close()
        return 0
    runner = None
    if settings.http_port:
        runner = await http.start(worker, settings.http_host, settings.http_port)
    # What exists by now (modules, handlers, settings, metrics) lives as long as the
    # process. Frozen, no collection walks it again: the first full collection after
    # start otherwise stalls every job in flight for tens of milliseconds.
    gc.freeze()
    try:
        return await worker.run()
    finally:
        if runner is not None:
            await runner.cleanup()


def log_format_of(settings: WorkerSettings) -> logformat.LogFormat:
    """``JQW_LOG_FORMAT`` when set, else the older ``JQW_JSON_LOGS`` switch."""
    if settings.log_format is not None:
        return settings.log_format
    return "json" if settings.json_logs else "text"


def run_worker(settings: WorkerSettings) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _note_early_signal)
    logformat.setup(log_format_of(settings), settings.log_level)
    registry = load_registry(settings.handlers)
    require_temp_dir(registry)
    try:
        factory = eventloop.loop_factory(settings.event_loop)
    except eventloop.EventLoopUnavailableError as exc:
        raise ConfigError(str(exc)) from None
    with asyncio.Runner(loop_factory=factory) as runner:
        code = runner.run(_serve(settings, registry))
    # The jobs are done or handed back: a SIGTERM from here on must not turn a clean
    # exit into death by signal. A Python-level handler would not do: the interpreter
    # puts every such handler back to the default action while it finalizes, which
    # can take a moment on a loaded node. SIG_IGN survives that.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()[1:]):
        # A sync handler still runs in the pool; its job was handed back, so do
        # not wait for it (the interpreter would join the thread at exit).
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def worker(  # noqa: PLR0917 - typer maps parameters to options
    queues: Annotated[str | None, typer.Option(help="comma-separated, in priority order")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=1000)] = None,
    handlers: Annotated[str | None, typer.Option(help="module with a `registry`")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (else JQW_REDIS_URL)")] = None,
    log_format: Annotated[
        logformat.LogFormatChoice | None,
        typer.Option(help="json or text log lines (else JQW_LOG_FORMAT)"),
    ] = None,
    json_logs: Annotated[bool | None, typer.Option("--json-logs/--text-logs", hidden=True)] = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (a second signal exits fast)."""
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "queues": queues,
            "concurrency": concurrency,
            "handlers": handlers,
            "redis_url": redis_url,
            "json_logs": json_logs,
            "log_format": None if log_format is None else log_format.value,
        }.items()
        if v is not None
    }
    try:
        settings = load(**overrides)
        code = run_worker(settings)
    except ConfigError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    raise typer.Exit(code)
