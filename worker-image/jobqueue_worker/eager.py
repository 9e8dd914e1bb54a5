"""Eager mode: run handlers inline without Redis, for tests and development.

Best-effort by design: no leases, no heartbeats, no persistence, no timeouts;
retries run at once (no waiting) up to the job type's attempts. Each attempt and
its outcome (retry, dead-letter and its reason, or failed for good) are decided by
``attempt.py``, as in the worker. Use it to exercise handler code, not the queue.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue

from jobqueue_worker.attempt import (
    Rejected,
    call_handler,
    error_text,
    job_for,
    judge_failure,
    open_envelope,
)
from jobqueue_worker.envelope import JobEnvelope, JobStatus
from jobqueue_worker.records import JobRecord
from jobqueue_worker.registry import Registry
from jobqueue_worker.request import JobRequest, build

# Eager mode holds everything in memory: the size limit is the producer's, at build().
_NO_SIZE_LIMIT = 10**12


class EagerProducer:
    def __init__(
        self, registry: Registry, *, default_queue: str = "default", seed: int | None = None
    ) -> None:
        self.registry = registry
        self.default_queue = default_queue
        self.rng = random.Random(seed)
        self.records: dict[str, JobRecord] = {}
        self._idem: dict[str, str] = {}

    async def enqueue(self, type: str, payload: JsonValue = None, **opts: Any) -> str:
        return (await self.enqueue_many([JobRequest(type=type, payload=payload, **opts)]))[0]

    async def enqueue_many(self, reqs: Sequence[JobRequest]) -> list[str]:
        ids = []
        for req in reqs:
            new = build(req, self.default_queue, 10**9)
            if new.idempotency_key and new.idempotency_key in self._idem:
                ids.append(self._idem[new.idempotency_key])
                continue
            if new.idempotency_key:
                self._idem[new.idempotency_key] = new.id
            env = JobEnvelope.from_json(new.envelope_json)
            self.records[new.id] = await self._run(env)
            ids.append(new.id)
        return ids

    async def status(self, job_id: str, queue: str | None = None) -> JobRecord | None:
        return self.records.get(job_id)

    async def result(self, job_id: str, queue: str | None = None) -> Any:
        rec = self.records.get(job_id)
        return rec.result if rec else None

    async def _run(self, env: JobEnvelope) -> JobRecord:
        fields: dict[str, str] = {
            "envelope": env.to_json(),
            "priority": str(env.priority),
            "enqueued_at": str(int(time.time() * 1000)),
        }
        opened = open_envelope(fields["envelope"], _NO_SIZE_LIMIT, self.registry)
        if isinstance(opened, Rejected):
            fields |= {"status": JobStatus.DEAD.value, "dead_reason": opened.reason.value}
            return JobRecord.from_hash(env.queue, env.id, fields)
        env, jt = opened
        attempt = 1
        while True:
            job = job_for(env, jt, id=env.id, queue=env.queue, attempt=attempt, deliveries=1)
            try:
                out = await call_handler(jt, job, executor=None)
                fields |= {"status": JobStatus.COMPLETED.value, "result": json.dumps(out)}
                break
            except Exception as exc:
                verdict = judge_failure(exc, job, jt, self.rng)
                error, trace = error_text(exc)
                fields |= {"error": error, "traceback": trace}
                if verdict.op == "failed":
                    fields |= {"status": JobStatus.FAILED.value}
                    break
                if verdict.op == "dead":
                    assert verdict.reason is not None
                    fields |= {"status": JobStatus.DEAD.value, "dead_reason": verdict.reason.value}
                    break
                attempt += 1
                await asyncio.sleep(0)
        fields |= {"attempt": str(attempt), "max_attempts": str(job.max_attempts)}
        return JobRecord.from_hash(env.queue, env.id, fields)
