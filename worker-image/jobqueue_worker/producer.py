"""Producer API, async and sync: enqueue (one, or many in one round trip), delays,
run-at times, idempotency keys, and status/result lookup.

Requests are validated before Redis (``request.build``): a bad priority or an
oversized payload is the producer's error, raised at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

from pydantic import JsonValue

from jobqueue_worker.broker import Broker
from jobqueue_worker.records import JobRecord
from jobqueue_worker.request import JobRequest, build
from jobqueue_worker.wire import BrokerSettings, NewJob

# JobRequest and build are re-exported: producers import them from here.
__all__ = ["JobRequest", "Producer", "ProducerOptions", "SyncProducer", "build"]


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
