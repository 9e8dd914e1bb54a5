"""The supervisor around every handler call (the ``ExecutionGuard`` seam).

- Picks the attempt's timeouts (``timeouts.py``): the envelope's ``timeout_s``,
  else ``TIMEOUT_<TYPE>`` / the type's ``timeout_s`` / ``JQW_DEFAULT_TIMEOUT_S``,
  or with ``JQW_ADAPTIVE_TIMEOUTS`` P95 × factor of this worker's recent history,
  bounded by min, max and the configured timeout.
- Soft timeout (``SOFT_TIMEOUT_<TYPE>``, default ``JQW_SOFT_TIMEOUT_RATIO`` × hard):
  a warning log and ``jobqueue_job_timeouts_total{kind="soft"}``; the job goes on.
- Hard timeout: an async handler is cancelled; an ``isolated=True`` handler runs
  in its own child process (forkserver) which is terminated, then killed; a plain
  sync handler runs in a thread that Python cannot stop, so the attempt fails and
  the thread is abandoned (logged: mark such types ``isolated=True``). The attempt
  raises ``JobTimeout`` and is retried with a longer backoff.
- Isolated children are registered with the memory monitor, which kills one that
  passes the worker's hard memory limit (``MemoryLimitExceeded``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import traceback as tb
from collections.abc import Awaitable, Callable
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from jobqueue_worker import metrics
from jobqueue_worker.errors import JobTimeout, MemoryLimitExceeded
from jobqueue_worker.per_type import type_key
from jobqueue_worker.registry import Job, JobType
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.timeouts import AdaptiveConfig, History, Timeouts, adaptive_timeout

log = logging.getLogger(__name__)


class ChildError(Exception):
    """A child's exception that could not be pickled back, by type name and text."""


def _child_main(conn: multiprocessing.connection.Connection, handler: Any, job: Job) -> None:
    try:
        result = handler(job)
        msg: tuple[Any, ...] = ("ok", result)
    except BaseException as exc:
        msg = ("err", exc, "".join(tb.format_exception(exc)))
    try:
        conn.send(msg)
    except Exception as exc:  # an unpicklable result or exception
        conn.send(("err", ChildError(f"{type(exc).__name__}: {exc}"), ""))
    conn.close()


def _log_fields(job: Job, t: Timeouts) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "job_type": job.type,
        "queue": job.queue,
        "hard_timeout_s": round(t.hard_s or 0, 3),
    }


class Supervisor:
    def __init__(self, settings: WorkerSettings, history: History) -> None:
        self.settings = settings
        self.history = history
        self.adaptive = AdaptiveConfig(
            factor=settings.adaptive_factor,
            min_s=settings.adaptive_min_s,
            max_s=settings.adaptive_max_s,
            min_samples=settings.adaptive_min_samples,
        )
        self._ctx: BaseContext | None = None
        # job id → child process, for the memory monitor
        self.children: dict[str, BaseProcess] = {}
        self.memory_killed: set[str] = set()
        self._published: dict[str, Timeouts] = {}

    # -- timeouts ----------------------------------------------------------------
    def configured_timeout(self, jt: JobType) -> float | None:
        s = self.settings
        if type_key(jt.name) in s.timeouts:
            return s.timeouts[type_key(jt.name)]
        return jt.timeout_s if jt.timeout_s is not None else s.default_timeout_s

    def timeouts(self, job: Job, jt: JobType) -> Timeouts:
        if job.timeout_s is not None:
            hard: float | None = job.timeout_s
        else:
            hard = self.configured_timeout(jt)
            if self.settings.adaptive_timeouts:
                adaptive = adaptive_timeout(self.history.durations(jt.name), self.adaptive, hard)
                if adaptive is not None:
                    hard = adaptive
        if hard is None:
            return Timeouts(None, None)
        soft = self.settings.soft_timeout_for(jt.name)
        if soft is None or soft >= hard:
            soft = hard * self.settings.soft_timeout_ratio
        return Timeouts(hard, soft)

    # -- the seam ----------------------------------------------------------------
    async def run(self, job: Job, job_type: JobType, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one attempt under its timeouts, in the caller's task.

        No second task and no ``asyncio.wait``: the soft timeout is a timer callback
        and the hard one is ``asyncio.timeout``, which cancels this task. That keeps a
        no-op job's supervision to two timer handles. The price: an async handler
        that suppresses ``CancelledError`` cannot be stopped (mark it isolated=True).
        """
        t = self.timeouts(job, job_type)
        self._publish(job_type.name, t)
        coro = self._in_child(job, job_type) if job_type.isolated else call()
        if t.hard_s is None or t.soft_s is None:
            return await coro
        soft = asyncio.get_running_loop().call_later(t.soft_s, self._soft_timeout, job, t)
        deadline = asyncio.timeout(t.hard_s)
        try:
            async with deadline:
                return await coro
        except TimeoutError:
            if not deadline.expired():
                raise  # the handler's own TimeoutError, not ours
            how = (
                "child process killed"
                if job_type.isolated
                else "cancelled"
                if job_type.is_async
                else "thread abandoned: mark the type isolated=True to kill it"
            )
            metrics.TIMEOUTS.labels(job.queue, job.type, "hard").inc()
            log.error(
                "Job passed its hard timeout",
                extra={**_log_fields(job, t), "how": how},
            )
            raise JobTimeout(t.hard_s, how) from None
        finally:
            soft.cancel()

    def _publish(self, type_name: str, t: Timeouts) -> None:
        """The timeout gauges, written only when a type's timeouts change."""
        if self._published.get(type_name) == t:
            return
        self._published[type_name] = t
        metrics.TIMEOUT_SECONDS.labels(type_name, "hard").set(t.hard_s or 0)
        metrics.TIMEOUT_SECONDS.labels(type_name, "soft").set(t.soft_s or 0)

    @staticmethod
    def _soft_timeout(job: Job, t: Timeouts) -> None:
        metrics.TIMEOUTS.labels(job.queue, job.type, "soft").inc()
        log.warning(
            "Job passed its soft timeout",
            extra={**_log_fields(job, t), "soft_timeout_s": round(t.soft_s or 0, 3)},
        )

    # -- isolated jobs ---------------------------------------------------------------
    def _context(self) -> BaseContext:
        if self._ctx is None:
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            ctx = multiprocessing.get_context(method)
            if method == "forkserver" and self.settings.handlers:
                # Children fork from a server that already imported the handlers.
                ctx.set_forkserver_preload([self.settings.handlers])
            self._ctx = ctx
        return self._ctx

    async def _in_child(self, job: Job, jt: JobType) -> Any:
        ctx = self._context()
        loop = asyncio.get_running_loop()
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(  # type: ignore[attr-defined]
            target=_child_main, args=(child, jt.handler, job), daemon=True, name=f"job-{job.id}"
        )
        await loop.run_in_executor(None, proc.start)
        child.close()
        self.children[job.id] = proc
        try:
            ready: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(parent.fileno(), readable)
            try:
                await ready
            finally:
                loop.remove_reader(parent.fileno())
            try:
                msg = parent.recv()
            except EOFError:
                await loop.run_in_executor(None, proc.join, 5.0)
                if job.id in self.memory_killed:
                    raise MemoryLimitExceeded(
                        f"child process passed the worker's hard memory limit and was killed"
                        f" (exit {proc.exitcode})"
                    ) from None
                raise ChildError(f"child process died (exit code {proc.exitcode})") from None
            if msg[0] == "ok":
                return msg[1]
            exc = msg[1]
            if isinstance(exc, BaseException) and not isinstance(exc, Exception):
                exc = ChildError(repr(exc))
            raise exc
        finally:
            self.children.pop(job.id, None)
            self.memory_killed.discard(job.id)
            parent.close()
            if proc.is_alive():
                proc.terminate()
                await loop.run_in_executor(None, proc.join, 1.0)
                if proc.is_alive():
                    proc.kill()
            await loop.run_in_executor(None, proc.join, 5.0)
            with contextlib.suppress(Exception):
                proc.close()

    def kill_child(self, job_id: str) -> bool:
        """Kill an isolated job's process (memory monitor); True if there was one."""
        proc = self.children.get(job_id)
        if proc is None or proc.pid is None:
            return False
        self.memory_killed.add(job_id)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, 9)
        return True
