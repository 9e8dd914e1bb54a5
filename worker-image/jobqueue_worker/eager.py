"""Eager mode: run handlers inline without Redis, for tests and development.

Best-effort by design: no leases, no heartbeats, no persistence; retries run at
once (no waiting) up to the job type's attempts; a failure that exhausts them is
recorded as ``dead`` in memory. Use it to exercise handler code, not the queue.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
import traceback
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue

from jobqueue_worker.backoff import GiveUp, next_outcome
from jobqueue_worker.envelope import DeadReason, JobEnvelope, JobStatus
from jobqueue_worker.producer import JobRequest, build
from jobqueue_worker.records import JobRecord
from jobqueue_worker.registry import Job, Registry


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
        jt = self.registry.get(env.type)
        fields: dict[str, str] = {
            "envelope": env.to_json(),
            "priority": str(env.priority),
            "enqueued_at": str(int(time.time() * 1000)),
        }
        if jt is None:
            fields |= {"status": "dead", "dead_reason": DeadReason.UNKNOWN_TYPE.value}
            return JobRecord.from_hash(env.queue, env.id, fields)
        max_attempts = env.max_attempts or jt.backoff.max_attempts
        attempt = 1
        while True:
            job = Job(
                id=env.id,
                type=env.type,
                queue=env.queue,
                payload=env.payload,
                priority=env.priority,
                attempt=attempt,
                max_attempts=max_attempts,
                deliveries=1,
                idempotency_key=env.idempotency_key,
            )
            try:
                out = jt.handler(job)
                if inspect.isawaitable(out):
                    out = await out
                fields |= {"status": JobStatus.COMPLETED.value, "result": json.dumps(out)}
                break
            except Exception as exc:
                decision = next_outcome(exc, attempt, max_attempts, jt.failure_policy, self.rng)
                fields |= {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": "".join(traceback.format_exception(exc)),
                }
                if isinstance(decision, GiveUp):
                    reason = DeadReason.PERMANENT if decision.permanent else DeadReason.EXCEPTION
                    fields |= {"status": JobStatus.DEAD.value, "dead_reason": reason.value}
                    break
                attempt += 1
                await asyncio.sleep(0)
        fields |= {"attempt": str(attempt), "max_attempts": str(max_attempts)}
        return JobRecord.from_hash(env.queue, env.id, fields)
