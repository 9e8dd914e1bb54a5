"""Producer API, async and sync: enqueue (one, or many in one round trip), delays,
run-at times, idempotency keys, and status/result lookup.

Envelopes are validated here, before Redis: a bad priority or an oversized
payload is the producer's error, raised at once, never clamped or truncated.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar, Unpack

from pydantic import JsonValue, ValidationError

from jobqueue_worker.broker import Broker
from jobqueue_worker.envelope import (
    JobEnvelope,
    Priority,
    describe,
    new_job_id,
    parse_priority,
    payload_size,
)
from jobqueue_worker.errors import EnqueueError
from jobqueue_worker.records import JobRecord
from jobqueue_worker.wire import BrokerSettings, NewJob


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
    )


def _group(
    reqs: Sequence[JobRequest], default_queue: str, max_payload: int
) -> tuple[dict[str, list[NewJob]], list[tuple[str, int]]]:
    by_queue: dict[str, list[NewJob]] = defaultdict(list)
    where: list[tuple[str, int]] = []
    for r in reqs:
        job = build(r, default_queue, max_payload)
        q = r.queue or default_queue
        where.append((q, len(by_queue[q])))
        by_queue[q].append(job)
    return by_queue, where


def _ids_in_request_order(
    by_queue: dict[str, list[NewJob]], where: list[tuple[str, int]], flat: list[tuple[str, bool]]
) -> list[str]:
    offsets: dict[str, int] = {}
    i = 0
    for q, jobs in by_queue.items():
        offsets[q] = i
        i += len(jobs)
    return [flat[offsets[q] + k][0] for q, k in where]


T = TypeVar("T")


class Producer:
    """Async producer. ``enqueue_many`` costs one round trip whatever the queues."""

    def __init__(
        self,
        redis_url: str,
        *,
        default_queue: str = "default",
        max_payload_bytes: int = 1_000_000,
        limits: BrokerSettings | None = None,
    ) -> None:
        self.broker = Broker(redis_url, limits)
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes

    async def close(self) -> None:
        await self.broker.close()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def enqueue(self, type: str, payload: JsonValue = None, **opts: Any) -> str:
        return (await self.enqueue_many([JobRequest(type=type, payload=payload, **opts)]))[0]

    async def enqueue_many(self, reqs: Sequence[JobRequest]) -> list[str]:
        """Returns job ids in request order; a duplicate idempotency key yields the first id."""
        by_queue, where = _group(reqs, self.default_queue, self.max_payload_bytes)
        flat = await self.broker.enqueue(by_queue)
        return _ids_in_request_order(by_queue, where, flat)

    async def status(self, job_id: str, queue: str | None = None) -> JobRecord | None:
        q = queue or self.default_queue
        raw = await self.broker.job(q, job_id)
        return JobRecord.from_hash(q, job_id, raw) if raw else None

    async def result(self, job_id: str, queue: str | None = None) -> Any:
        rec = await self.status(job_id, queue)
        return rec.result if rec is not None else None


class ProducerOptions(TypedDict, total=False):
    """:class:`Producer`'s keyword options, which :class:`SyncProducer` passes on."""

    default_queue: str
    max_payload_bytes: int
    limits: BrokerSettings | None


class SyncProducer:
    """The same API for code without an event loop (web views, scripts).

    It drives a :class:`Producer` on an event loop of its own, in a daemon
    thread, so the two share one code path; its methods may be called from any
    thread (each call waits for its own result).
    """

    def __init__(self, redis_url: str, **options: Unpack[ProducerOptions]) -> None:
        self._producer = Producer(redis_url, **options)
        self.default_queue = self._producer.default_queue
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jq-sync-producer", daemon=True
        )
        self._thread.start()

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._wait(self._producer.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            self._loop.close()

    def enqueue(self, type: str, payload: JsonValue = None, **opts: Any) -> str:
        return self._wait(self._producer.enqueue(type, payload, **opts))

    def enqueue_many(self, reqs: Sequence[JobRequest]) -> list[str]:
        return self._wait(self._producer.enqueue_many(reqs))

    def status(self, job_id: str, queue: str | None = None) -> JobRecord | None:
        return self._wait(self._producer.status(job_id, queue))

    def result(self, job_id: str, queue: str | None = None) -> Any:
        return self._wait(self._producer.result(job_id, queue))
