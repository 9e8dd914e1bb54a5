"""What one ``step`` reply tells this worker, as logs, metrics and job events:
which finish ops Redis refused (the lease was lost), which jobs a rate limit
deferred, and whether the operator has asked this worker's Pod to drain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jobqueue_worker import metrics
from jobqueue_worker.seams import JobEvents
from jobqueue_worker.wire import FinishOp, StepResult

log = logging.getLogger(__name__)


def report_acks(ops: Sequence[FinishOp], res: StepResult, events: JobEvents) -> None:
    for op, ok in zip(ops, res.acks, strict=True):
        events.finished(op, ok)
        if not ok and op.op != "release":
            metrics.JOBS.labels(op.queue, "?", "rejected").inc()
            log.warning(
                "Ack refused: lease lost, another worker may run the job",
                extra={"job_id": op.id, "queue": op.queue, "op": op.op},
            )
    for queue, job_type, n in res.throttled:
        metrics.RATE_LIMITED.labels(queue, job_type).inc(n)
        log.debug(
            "Rate limit: jobs deferred",
            extra={"queue": queue, "job_type": job_type, "jobs": n},
        )


def report_drain(drained: bool, pod_name: str | None) -> None:
    """Called when the drain request for this Pod appeared or went away."""
    metrics.DRAIN_REQUESTED.set(int(drained))
    log.info(
        "The operator chose this Pod to go on a scale-down: fetching nothing more"
        if drained
        else "Drain request withdrawn: fetching again",
        extra={"pod": pod_name},
    )
