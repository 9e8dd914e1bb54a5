"""Job status records as read back from Redis (status, timestamps, error, result)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue_worker.envelope import JobEnvelope, JobStatus


def _ms(raw: Mapping[str, str], name: str) -> float | None:
    v = raw.get(name)
    return int(v) / 1000.0 if v not in (None, "") else None


@dataclass(frozen=True)
class JobRecord:
    id: str
    queue: str
    status: JobStatus
    type: str | None
    priority: int
    attempt: int
    max_attempts: int
    deliveries: int
    worker: str | None
    enqueued_at: float | None
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    error: str | None
    traceback: str | None
    dead_reason: str | None
    first_failed_at: float | None
    last_failed_at: float | None
    dead_at: float | None
    result_json: str | None
    envelope_json: str | None

    @property
    def result(self) -> Any:
        return None if self.result_json is None else json.loads(self.result_json)

    @classmethod
    def from_hash(cls, queue: str, job_id: str, raw: Mapping[str, str]) -> JobRecord:
        env_type: str | None = None
        envelope = raw.get("envelope")
        if envelope:
            try:
                env_type = JobEnvelope.from_json(envelope).type
            except ValueError:
                env_type = None
        dur = raw.get("duration_ms")
        return cls(
            id=job_id,
            queue=queue,
            status=JobStatus(raw.get("status", "queued")),
            type=env_type,
            priority=int(raw.get("priority", 5)),
            attempt=int(raw.get("attempt", 1)),
            max_attempts=int(raw.get("max_attempts", 1)),
            deliveries=int(raw.get("deliveries", 0)),
            worker=raw.get("worker") or None,
            enqueued_at=_ms(raw, "enqueued_at"),
            started_at=_ms(raw, "started_at"),
            finished_at=_ms(raw, "finished_at"),
            duration_s=int(dur) / 1000.0 if dur not in (None, "") else None,
            error=raw.get("error") or None,
            traceback=raw.get("traceback") or None,
            dead_reason=raw.get("dead_reason") or None,
            first_failed_at=_ms(raw, "first_failed_at"),
            last_failed_at=_ms(raw, "last_failed_at"),
            dead_at=_ms(raw, "dead_at"),
            result_json=raw.get("result"),
            envelope_json=envelope,
        )


@dataclass(frozen=True)
class DeadFilter:
    type: str | None = None
    reason: str | None = None

    def matches(self, rec: JobRecord) -> bool:
        return (self.type is None or rec.type == self.type) and (
            self.reason is None or rec.dead_reason == self.reason
        )
