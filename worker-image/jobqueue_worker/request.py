"""A producer's request and its validation into a ``NewJob`` (pure: no Redis).

Envelopes are validated here, before Redis: a bad priority or an oversized
payload is the producer's error, raised at once, never clamped or truncated.
Used by the producers, eager mode, the CLI and the PostgreSQL store alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import JsonValue, ValidationError

from jobqueue_worker.envelope import (
    JobEnvelope,
    Priority,
    describe,
    new_job_id,
    parse_priority,
    payload_size,
)
from jobqueue_worker.errors import EnqueueError
from jobqueue_worker.wire import NewJob


@dataclass(frozen=True)
class JobRequest:
    type: str
    payload: JsonValue = None
    queue: str | None = None
    priority: int | str | Priority = Priority.NORMAL
    delay_s: float | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    id: str | None = None


def build(req: JobRequest, default_queue: str, max_payload_bytes: int) -> NewJob:
    """Pure: a request becomes a validated envelope ready for the enqueue script."""
    if req.delay_s is not None and req.run_at is not None:
        raise EnqueueError("give delay_s or run_at, not both")
    if req.delay_s is not None and req.delay_s < 0:
        raise EnqueueError("delay_s must not be negative")
    run_at = req.run_at
    if run_at is not None and run_at.tzinfo is None:
        raise EnqueueError("run_at must be timezone-aware")
    try:
        env = JobEnvelope(
            id=req.id or new_job_id(),
            type=req.type,
            queue=req.queue or default_queue,
            payload=req.payload,
            priority=parse_priority(req.priority),
            max_attempts=req.max_attempts,
            run_at=run_at,
            timeout_s=req.timeout_s,
            idempotency_key=req.idempotency_key,
        )
    except (ValidationError, ValueError) as exc:
        # One line, without the input: a payload may hold personal data.
        reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise EnqueueError(f"invalid job: {reason}") from exc
    size = payload_size(env)
    if size > max_payload_bytes:
        raise EnqueueError(f"payload is {size} bytes, over the {max_payload_bytes}-byte limit")
    return NewJob(
        id=env.id,
        envelope_json=env.to_json(),
        priority=env.priority,
        max_attempts=env.max_attempts or 0,
        delay_ms=int((req.delay_s or 0) * 1000),
        run_at_ms=int(run_at.astimezone(UTC).timestamp() * 1000) if run_at else 0,
        idempotency_key=env.idempotency_key,
        type=env.type,  # so the enqueue does not parse the envelope again for it
    )
