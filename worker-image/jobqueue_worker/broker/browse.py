"""Bounded, read-only browsing of queues for the web UI (each read one round trip).

A mixin of :class:`jobqueue_worker.broker.Broker`, kept apart so the broker's
own module holds what the worker and the producers need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import redis.asyncio

from jobqueue_protocol import keys


class BrowseReads:
    """The web UI's reads over the broker's client."""

    redis: redis.asyncio.Redis

    async def dead_page(
        self, queue: str, max_score_ms: float | None, skip: int, limit: int
    ) -> list[tuple[str, float]]:
        """Up to ``limit`` dead ids with a score <= ``max_score_ms``, newest first,
        after skipping ``skip`` of them: a cursor that stays O(log n) on a large DLQ."""
        top: float | str = "+inf" if max_score_ms is None else max_score_ms
        rows = cast(
            list[tuple[str, float]],
            await self.redis.zrevrangebyscore(
                keys.dead_key(queue), top, "-inf", start=skip, num=limit, withscores=True
            ),
        )
        return [(str(i), float(s)) for i, s in rows]

    async def job_fields(
        self, queue: str, ids: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, str]]:
        """The named fields of each job's record (empty for a record that expired)."""
        pipe = self.redis.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(keys.job_key(queue, i), list(fields))
        out: list[dict[str, str]] = []
        for values in await pipe.execute():
            out.append({f: v for f, v in zip(fields, values, strict=True) if v is not None})
        return out

    async def ids_by_state(
        self, queue: str, state: Literal["queued", "delayed", "running"], limit: int
    ) -> list[str]:
        """Up to ``limit`` ids of jobs waiting, scheduled or leased (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        sets = {
            "queued": keys.ready_keys(queue),
            "delayed": (keys.delayed_key(queue),),
            "running": (keys.lease_key(queue),),
        }[state]
        for key in sets:
            pipe.zrange(key, 0, limit - 1)
        ids = [str(i) for reply in await pipe.execute() for i in reply]
        return ids[:limit]

    async def known_queues(self, limit: int = 1000) -> list[str]:
        """Queue names that have a counters hash (every queue that saw a job)."""
        found: set[str] = set()
        async for key in self.redis.scan_iter(match=f"{keys.PREFIX}{{*}}:counters", count=5000):
            text = str(key)
            found.add(text[text.index("{") + 1 : text.rindex("}")])
            if len(found) >= limit:
                break
        return sorted(found)
