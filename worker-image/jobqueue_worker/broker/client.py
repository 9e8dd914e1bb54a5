"""The worker's async access to Redis: the producers, the worker loop and the CLI.

Every state change is one Lua script (``scripts/*.lua``, sent as ``lua.py``
assembles it: named KEYS and ARGV, the shared prelude); every key comes from
``jobqueue_protocol.keys`` and reaches the scripts through KEYS. On a Redis
Cluster a worker's queues sit in several slots: ``slot_fanout`` makes one call
per queue where one call would span slots.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import redis
import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from jobqueue_protocol import drain, keys
from jobqueue_protocol.redis_connect import SlotClients, async_client
from jobqueue_protocol.redis_health import RedisFacts, read_facts_async, startup_warnings_async
from jobqueue_protocol.redis_url import parse_redis_url
from jobqueue_protocol.stats import QueueStats, queue_stats
from jobqueue_worker import lua
from jobqueue_worker.broker.browse import BrowseReads
from jobqueue_worker.broker.dispatch import DispatchCalls
from jobqueue_worker.broker.stepconn import StepConnection
from jobqueue_worker.ratelimit import RateLimit
from jobqueue_worker.wire import (
    BrokerSettings,
    FetchPlan,
    NewJob,
    TypeLimits,
    durable_reply,
    enqueue_args,
    ratelimit_args,
    reap_args,
)

log = logging.getLogger(__name__)

#: Per broker, on a plain Redis; redis-py's own default. Beyond it callers queue.
MAX_CONNECTIONS = 100
T = TypeVar("T")


async def _call_on(run: Callable[..., Awaitable[T]], client: redis.asyncio.Redis) -> T:
    return await run(on=client)


class Broker(BrowseReads, DispatchCalls):
    """Async access for the worker loop, producers and the CLI."""

    def __init__(
        self,
        url: str,
        limits: BrokerSettings | None = None,
        *,
        socket_timeout_s: float = 10.0,
        max_block_s: float = 5.0,
    ) -> None:
        self.url = url
        self.limits = limits or BrokerSettings()
        target = parse_redis_url(url)
        #: Redis Cluster: a worker's queues sit in several slots, one call per queue.
        self.cluster = target.mode == "cluster"
        #: queue -> (the plan it came from, that plan narrowed to the queue)
        self._single: dict[str, tuple[FetchPlan, FetchPlan]] = {}
        # On a plain Redis more callers at once than connections (a web app's burst
        # of enqueues) wait for a free one instead of failing. Sentinel's pool has
        # no such mode; a cluster client keeps a pool per node without a limit.
        pool: dict[str, Any] = (
            {"blocking_pool": True, "max_connections": MAX_CONNECTIONS, "timeout": socket_timeout_s}
            if target.mode == "direct"
            else {}
        )
        self.redis: redis.asyncio.Redis = async_client(
            target,
            **pool,
            decode_responses=True,
            # A hostile or buggy producer may store bytes that are not UTF-8 (a
            # pickle): they must become a malformed job, not a crashed worker.
            encoding_errors="replace",
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        # Blocking wake-ups get their own client: a BLPOP must not starve the pool
        # and needs a socket timeout longer than its block time.
        self._blocking: redis.asyncio.Redis = async_client(
            target,
            decode_responses=True,
            encoding_errors="replace",
            socket_timeout=max_block_s + 5.0,
            socket_connect_timeout=5.0,
        )
        self._scripts = {s.name: self.redis.register_script(lua.source(s)) for s in lua.SCRIPTS}
        # The worker's hot path, on a plain Redis (Sentinel and Cluster route per call).
        # Durable acks pipeline a WAIT behind every step, so they keep the pool's path.
        direct = target.mode == "direct" and self.limits.durable_replicas == 0
        step = self._scripts["step"]
        self._step_conn = StepConnection(self.redis, step, socket_timeout_s, enabled=direct)
        self._wait_conn = StepConnection(self.redis, step, socket_timeout_s, enabled=direct)
        # A producer's single-queue enqueue takes the same kind of connection: the
        # client's path costs more CPU than the script call itself (see enqueue).
        self._enqueue_conn = StepConnection(
            self.redis, self._scripts["enqueue"], socket_timeout_s, enabled=direct
        )
        # On a cluster, a WAIT and a MULTI must reach the slot's own master.
        self._slots = (
            SlotClients(
                cast(redis.asyncio.RedisCluster, self.redis),
                target,
                decode_responses=True,
                encoding_errors="replace",
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=5.0,
            )
            if self.cluster
            else None
        )

    async def close(self) -> None:
        await self._step_conn.close()
        await self._wait_conn.close()
        await self._enqueue_conn.close()
        await self.redis.aclose()
        await self._blocking.aclose()
        if self._slots is not None:
            await self._slots.close()

    async def _on_slot_master(self, key: str, run: Callable[[Any], Awaitable[T]]) -> T:
        """``run(client)`` on the master of ``key``'s slot; a failure re-reads the slot map."""
        assert self._slots is not None
        client = await self._slots.for_key(key)
        try:
            return await run(client)
        except (RedisError, OSError):
            await self._slots.refresh()
            raise

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # -- producer side ---------------------------------------------------------
    async def enqueue(self, by_queue: Mapping[str, Sequence[NewJob]]) -> list[tuple[str, bool]]:
        """All queues' jobs in one round trip (one script call per queue).

        A retry after NOSCRIPT cannot duplicate: ids are chosen here, and the script
        returns the existing job for an id it already holds.
        """
        script = self._scripts["enqueue"]
        calls = [
            (keys.queue_block(q), enqueue_args(self.limits, jobs))
            for q, jobs in by_queue.items()
            if jobs
        ]
        durable = self.limits.durable_replicas > 0 and bool(calls)
        if calls and self._slots is not None:
            # One slot per queue, each on its own master (with its own WAIT).
            out: list[tuple[str, bool]] = []
            for call in calls:
                run = partial(self._evalsha_pipelined, script, [call], wait=durable)
                replies = await self._on_slot_master(call[0][0], partial(_call_on, run))
                out += durable_reply(self.limits, replies, durable)
            return out
        if len(calls) == 1 and not durable:  # the common case: EVALSHA alone
            replies = [await self._enqueue_one(script, *calls[0])]
        else:
            replies = await self._evalsha_pipelined(script, calls, wait=durable)
        return durable_reply(self.limits, replies, durable)

    async def _enqueue_one(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """One queue's enqueue, on the dedicated connection when it is free.

        redis-py's path (pool checkout, per-argument encoding, a task around the
        write) cost a producer more CPU than the rest of the enqueue together. A
        dead connection (Redis restarted, an idle timeout closed it) is what the
        pool would have noticed at checkout and redialled: here the call goes
        round once more through the pool. An enqueue is idempotent (the ids are
        chosen here), so a call that did reach Redis is not stored twice.
        Timeouts are raised, as through the pool.
        """
        if self._enqueue_conn.available:
            try:
                return await self._enqueue_conn.call(keys, args)
            except (redis.ConnectionError, ConnectionError):
                pass  # the dedicated connection is dropped; the pool dials its own
        return await script(keys=keys, args=args)

    async def _evalsha_pipelined(
        self,
        script: AsyncScript,
        calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
        *,
        wait: bool = False,
        on: redis.asyncio.Redis | None = None,
    ) -> list[Any]:
        """One script over several key sets in one pipeline.

        redis-py's pipelined ``Script`` sends SCRIPT EXISTS before every pipeline, a
        second round trip each time; here the script is loaded only after a NOSCRIPT.
        ``wait`` ends the pipeline with WAIT: it counts the replicas that hold this
        connection's writes, so it travels on the same connection as the scripts.
        ``on``: another client than the broker's (a cluster slot's master).
        """
        client = self.redis if on is None else on
        for attempt in (1, 2):
            pipe = client.pipeline(transaction=False)
            for k, a in calls:
                pipe.evalsha(script.sha, len(k), *k, *a)
            if wait:
                pipe.execute_command(
                    "WAIT", self.limits.durable_replicas, self.limits.durable_timeout_ms
                )
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
                await client.script_load(script.script)
        raise AssertionError("unreachable")

    async def job(self, queue: str, job_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(keys.job_key(queue, job_id))
        return cast(dict[str, str], raw) or None

    async def find_job(self, queues: Sequence[str], job_id: str) -> tuple[str, dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hgetall(keys.job_key(q, job_id))
        for q, raw in zip(queues, await pipe.execute(), strict=True):
            if raw:
                return q, cast(dict[str, str], raw)
        raise KeyError(job_id)

    # -- rate limits -----------------------------------------------------------
    async def acquire_limit(
        self, limiter_keys: Sequence[str], limits: Sequence[RateLimit], member: str
    ) -> int:
        """One admission for a handler-side limiter: 0 if admitted, else ms to wait."""
        ok, retry = await self._scripts["ratelimit"](
            keys=list(limiter_keys),
            args=ratelimit_args("acquire", member, limits),
        )
        return 0 if int(ok) == 1 else max(1, int(retry))

    async def limit_usage(self, rate_limits: TypeLimits) -> dict[tuple[str, str], tuple[int, int]]:
        """(type, limit label) → (used, capacity) now, for every configured limit."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        if not rate_limits:
            return out
        pipe = self.redis.pipeline(transaction=False)
        for job_type, lims in rate_limits:
            await self._scripts["ratelimit"](
                keys=[keys.limiter_key(job_type, lim.label) for lim in lims],
                args=ratelimit_args("usage", "", lims),
                client=pipe,
            )
        for (job_type, lims), flat in zip(rate_limits, await pipe.execute(), strict=True):
            for j, lim in enumerate(lims):
                out[(job_type, lim.label)] = (int(flat[2 * j]), int(flat[2 * j + 1]))
        return out

    async def limiter_counts(self) -> dict[str, int]:
        """``<type>:admitted`` / ``<type>:throttled`` totals over all workers."""
        raw = await self.redis.hgetall(keys.limiter_stats_key())
        return {str(k): int(v) for k, v in cast(dict[str, str], raw).items()}

    async def reap(self, queue: str, worker_id: str, gate_ms: int) -> tuple[int, int]:
        requeued, dead = await self._scripts["reap"](
            keys=keys.queue_block(queue),
            args=reap_args(self.limits, worker_id, gate_ms),
        )
        return int(requeued), int(dead)

    async def heartbeat(
        self, queues: Sequence[str], worker_id: str, body_json: str, stale_s: float
    ) -> None:
        groups = [[q] for q in queues] if self.cluster else [list(queues)]  # one slot each
        for group in groups:
            await self._scripts["heartbeat"](
                keys=[keys.workers_key(q) for q in group],
                args=lua.HEARTBEAT.argv(worker_id=worker_id, body_json=body_json, stale_s=stale_s),
            )

    async def forget_worker(self, queues: Sequence[str], worker_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hdel(keys.workers_key(q), worker_id)
            pipe.hdel(keys.exec_stats_key(q), worker_id)
        await pipe.execute()

    async def publish_exec_stats(
        self, queues: Sequence[str], worker_id: str, body_json: str, ttl_s: float
    ) -> None:
        """This worker's per-type execution statistics (one pipelined write)."""
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hset(keys.exec_stats_key(q), worker_id, body_json)
            pipe.pexpire(keys.exec_stats_key(q), int(ttl_s * 1000))
        await pipe.execute()

    async def exec_stats(
        self, queues: Sequence[str]
    ) -> list[tuple[str, str, str, dict[str, float]]]:
        """(queue, worker, type, stats) rows published by live workers."""
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hgetall(keys.exec_stats_key(q))
        rows: list[tuple[str, str, str, dict[str, float]]] = []
        for q, raw in zip(queues, await pipe.execute(), strict=True):
            for worker_id, body in sorted(cast(dict[str, str], raw).items()):
                try:
                    by_type = json.loads(body)
                except ValueError:
                    continue
                if isinstance(by_type, dict):
                    rows += [(q, worker_id, t, st) for t, st in sorted(by_type.items())]
        return rows

    async def stats(
        self, queues: Sequence[str], heartbeat_ttl_s: float = 30.0
    ) -> dict[str, QueueStats]:
        return await queue_stats(self.redis, queues, heartbeat_ttl_s=heartbeat_ttl_s)

    async def drain_requests(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Queue → Pods the operator asked to drain (``jobqueue_protocol.drain``)."""
        pipe = self.redis.pipeline(transaction=False)
        drain.read(pipe, queues)
        return drain.parse_read(queues, await pipe.execute())

    async def server_facts(self) -> RedisFacts:
        """The Redis server's settings and state that ``redis_health.assess`` judges."""
        return await read_facts_async(self.redis)

    async def server_warnings(self) -> list[str]:
        """Settings under which Redis itself may lose or evict jobs.

        The shared check (``jobqueue_protocol.redis_health``) so the worker, the
        operator and ``jobqueue health`` agree; it never raises.
        """
        return await startup_warnings_async(self.redis)

    # -- dead letters ----------------------------------------------------------
    async def dead_ids(self, queue: str, offset: int, limit: int) -> list[tuple[str, float]]:
        """Newest first, a bounded page (never the whole set)."""
        rows = cast(
            list[tuple[str, float]],
            await self.redis.zrevrange(
                keys.dead_key(queue), offset, offset + limit - 1, withscores=True
            ),
        )
        return [(str(i), float(s) / 1000.0) for i, s in rows]

    async def jobs(self, queue: str, ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(keys.job_key(queue, i))
        return [cast(dict[str, str], r) for r in await pipe.execute()]

    async def replay(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(
            await self._scripts["replay"](
                keys=keys.queue_block(queue),
                args=lua.REPLAY.argv(ids, job_ttl_ms=self.limits.job_ttl_ms),
            )
        )

    async def dead_among(self, queue: str, ids: Sequence[str]) -> list[bool]:
        """For each id, whether it is in the queue's dead-letter set (one round trip)."""
        if not ids:
            return []
        scores = await self.redis.zmscore(keys.dead_key(queue), list(ids))
        return [s is not None for s in scores]

    async def purge(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0

        async def run(client: redis.asyncio.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(keys.dead_key(queue), *ids)
            pipe.delete(*[keys.job_key(queue, i) for i in ids])
            removed, _ = await pipe.execute()
            return int(removed)

        if self._slots is not None:  # a cluster pipeline has no MULTI; the slot's master has
            return await self._on_slot_master(keys.dead_key(queue), run)
        return await run(self.redis)
