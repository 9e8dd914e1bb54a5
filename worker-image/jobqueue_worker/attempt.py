"""One attempt of one job, top to bottom: envelope → handler → outcome → finish op.

The runtime (``runtime.py``) and eager mode (``eager.py``) both run a job through
this module, so both decide the same way. It is also the ONE place on the Python
side that decides whether a job is dead-lettered and why:

- before the handler runs: an envelope over the size limit (``too_large``), one
  that does not parse (``malformed``), or one whose type has no handler
  (``unknown_type``);
- after it failed: a permanent error (``permanent``), or its attempts spent
  (``timeout``, ``memory_limit`` or ``exception``, after the last failure).

The causes only Redis can see atomically, a job delivered ``max_deliveries``
times without finishing (``poison``, at fetch or when its lease expires), are
decided by ``poisoned()`` in the scripts' shared prelude (``scripts/prelude.lua``),
and every dead-letter write, from here or from there, is its ``dead_letter()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
import traceback as tb
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal

from jobqueue_protocol import logformat
from jobqueue_worker import metrics
from jobqueue_worker.backoff import RetryLater, next_outcome
from jobqueue_worker.envelope import DeadReason, JobEnvelope, describe, jsonable
from jobqueue_worker.errors import JobTimeout, MemoryLimitExceeded, PermanentError
from jobqueue_worker.registry import Job, JobType, Registry
from jobqueue_worker.timeouts import timeout_retry_delay
from jobqueue_worker.wire import Fetched, FinishOp

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
MAX_TRACEBACK_CHARS = 16000


@dataclass(frozen=True, slots=True)
class Rejected:
    """A job that cannot run at all: dead-lettered without calling a handler."""

    reason: DeadReason
    error: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happens after a failed attempt."""

    op: Literal["retry", "dead", "failed"]
    delay_s: float = 0.0
    reason: DeadReason | None = None


def open_envelope(
    raw: str, max_bytes: int, registry: Registry
) -> tuple[JobEnvelope, JobType] | Rejected:
    """The envelope and its job type, or why the job can never run."""
    if len(raw.encode()) > max_bytes:
        return Rejected(DeadReason.TOO_LARGE, f"envelope over {max_bytes} bytes")
    try:
        env = JobEnvelope.from_json(raw)
    except ValueError as exc:
        return Rejected(DeadReason.MALFORMED, f"invalid envelope: {describe(exc)}")
    jt = registry.get(env.type)
    if jt is None:
        return Rejected(DeadReason.UNKNOWN_TYPE, f"no handler for job type {env.type!r}")
    return env, jt


def job_for(
    env: JobEnvelope, jt: JobType, *, id: str, queue: str, attempt: int, deliveries: int
) -> Job:
    """What the handler sees for this attempt (``id`` and ``queue`` as stored in Redis)."""
    return Job(
        id=id,
        type=env.type,
        queue=queue,
        payload=env.payload,
        priority=env.priority,
        attempt=attempt,
        max_attempts=env.max_attempts or jt.backoff.max_attempts,
        deliveries=deliveries,
        idempotency_key=env.idempotency_key,
        timeout_s=env.timeout_s,
    )


def judge_failure(
    exc: Exception,
    job: Job,
    jt: JobType,
    rng: random.Random,
    *,
    timeout_backoff_multiplier: float = 1.0,
) -> Verdict:
    """Retry (and when), dead-letter (and why), or fail for good: pure but for ``rng``."""
    outcome = next_outcome(exc, job.attempt, job.max_attempts, jt.failure_policy, rng)
    if isinstance(outcome, RetryLater):
        delay = outcome.delay_s
        if isinstance(exc, JobTimeout):
            delay = timeout_retry_delay(delay, timeout_backoff_multiplier)
        return Verdict("retry", delay_s=delay)
    if not jt.dead_letter:
        return Verdict("failed")
    if outcome.permanent:
        reason = DeadReason.PERMANENT
    elif isinstance(exc, JobTimeout):
        reason = DeadReason.TIMEOUT
    elif isinstance(exc, MemoryLimitExceeded):
        reason = DeadReason.MEMORY_LIMIT
    else:
        reason = DeadReason.EXCEPTION
    return Verdict("dead", reason=reason)


def error_text(exc: BaseException) -> tuple[str, str]:
    """The one-line error and the traceback, both bounded (they live in Redis)."""
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    return error, "".join(tb.format_exception(exc))[-MAX_TRACEBACK_CHARS:]


def checked_result(result: Any, max_bytes: int) -> str:
    """The result as JSON; an oversized one is a permanent error.

    Results live in Redis next to the queue; an unbounded one could exhaust its
    memory, and running the job again would not shrink it.
    """
    result_json = jsonable(result)
    if len(result_json) > max_bytes:
        raise PermanentError(f"result is {len(result_json)} bytes, over the {max_bytes}-byte limit")
    return result_json


async def call_handler(jt: JobType, job: Job, executor: Executor | None) -> Any:
    """Call the handler; a sync one runs in ``executor`` (inline when None).

    A handler's own log lines carry the job's fields too; a thread gets a copy of
    the context, since the executor would not pass it on.
    """
    fields = {"job_id": job.id, "job_type": job.type, "queue": job.queue, "attempt": job.attempt}
    with logformat.bound(**fields):
        if jt.is_async:
            return await jt.handler(job)
        if executor is None:
            return jt.handler(job)
        run = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(executor, run, jt.handler, job)


def rejected_op(f: Fetched, rejected: Rejected) -> FinishOp:
    metrics.DEAD_LETTERS.labels(f.queue, rejected.reason.value).inc()
    log.error(
        "Dead-lettered job",
        extra={
            "job_id": f.id,
            "queue": f.queue,
            "reason": rejected.reason.value,
            "error": rejected.error,
        },
    )
    return FinishOp(
        queue=f.queue,
        id=f.id,
        token=f.token,
        op="dead",
        reason=rejected.reason.value,
        error=rejected.error[:MAX_ERROR_CHARS],
    )


Guard = Callable[[Job, JobType, Callable[[], Awaitable[Any]]], Awaitable[Any]]


@dataclass(slots=True)
class Ran:
    """A handler call's finish op and its wall time."""

    op: FinishOp
    duration_s: float


class Attempts:
    """Runs fetched jobs' attempts for one worker: the runtime's side of this module."""

    def __init__(
        self,
        *,
        guard: Guard,
        executor: Executor,
        rng: random.Random,
        max_payload_bytes: int,
        timeout_backoff_multiplier: float,
        log_payloads: bool,
    ) -> None:
        self.guard = guard
        self.executor = executor
        self.rng = rng
        self.max_payload_bytes = max_payload_bytes
        self.timeout_backoff_multiplier = timeout_backoff_multiplier
        self.log_payloads = log_payloads

    async def run(self, f: Fetched, env: JobEnvelope, jt: JobType) -> Ran:
        job = job_for(env, jt, id=f.id, queue=f.queue, attempt=f.attempt, deliveries=f.deliveries)
        waited = max(0.0, time.time() - env.enqueued_at.timestamp())
        series = metrics.job_series(f.queue, env.type)
        t0 = time.monotonic()
        try:
            result = await self.guard(job, jt, lambda: call_handler(jt, job, self.executor))
            result_json = checked_result(result, self.max_payload_bytes)
        except Exception as exc:
            dur = time.monotonic() - t0
            metrics.DURATION.labels(f.queue, jt.name).observe(dur)
            return Ran(self._failed(f, job, jt, exc, dur=dur, ctx=self._log_context(f, env)), dur)
        finally:
            # Read before the handler, recorded after it: the histogram's own work
            # would otherwise delay the very start it measures.
            series.wait.observe(waited)
        dur = time.monotonic() - t0
        series.duration.observe(dur)
        series.completed.inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "Completed job", extra={**self._log_context(f, env), "duration_s": round(dur, 6)}
            )
        op = FinishOp(
            queue=f.queue,
            id=f.id,
            token=f.token,
            op="complete",
            result=result_json,
            duration_ms=int(dur * 1000),
        )
        return Ran(op, dur)

    def _log_context(self, f: Fetched, env: JobEnvelope) -> dict[str, Any]:
        """The job's fields for a log line; built only when a line is written."""
        ctx: dict[str, Any] = {
            "job_id": f.id,
            "job_type": env.type,
            "queue": f.queue,
            "attempt": f.attempt,
        }
        if self.log_payloads:
            ctx["payload"] = env.payload
        return ctx

    def _failed(
        self, f: Fetched, job: Job, jt: JobType, exc: Exception, *, dur: float, ctx: dict[str, Any]
    ) -> FinishOp:
        verdict = judge_failure(
            exc, job, jt, self.rng, timeout_backoff_multiplier=self.timeout_backoff_multiplier
        )
        error, trace = error_text(exc)
        reason = verdict.reason.value if verdict.reason is not None else None
        if verdict.op == "retry":
            metrics.RETRIES.labels(f.queue, jt.name).inc()
            metrics.JOBS.labels(f.queue, jt.name, "retried").inc()
            log.warning(
                "Job failed, retry scheduled",
                exc_info=exc,
                extra={**ctx, "retry_in_s": round(verdict.delay_s, 3)},
            )
        elif verdict.op == "failed":
            metrics.JOBS.labels(f.queue, jt.name, "failed").inc()
            log.error("Job failed for good", exc_info=exc, extra=ctx)
        else:
            assert reason is not None
            metrics.JOBS.labels(f.queue, jt.name, "dead").inc()
            metrics.DEAD_LETTERS.labels(f.queue, reason).inc()
            log.error("Job failed, dead-lettered", exc_info=exc, extra={**ctx, "reason": reason})
        return FinishOp(
            queue=f.queue,
            id=f.id,
            token=f.token,
            op=verdict.op,
            duration_ms=int(dur * 1000),
            delay_ms=int(verdict.delay_s * 1000),
            error=error,
            traceback=trace,
            reason=reason,
        )
