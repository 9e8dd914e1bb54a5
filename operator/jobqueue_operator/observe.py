"""The operator's only Redis module: pooled clients, one stats read per poll, pattern SCANs.

KEDA keeps one client per trigger and has leaked connections for it
(kedacore/keda#6266). Here every JobQueue that points at the same endpoint
(address, db, user, password, TLS) shares one client and its connection pool;
the client is closed when the last JobQueue using it lets go. A poll is one call
of :func:`jobqueue_protocol.stats.queue_stats`, i.e. one pipelined round trip
for all of a JobQueue's queues, with no Lua (a read-only ACL user is enough).

Its one write is the drain request of a scale-down (:class:`DrainTarget`, on when
``scaleDown.drainChosenPods``): the Pods chosen to go are listed in each queue's
drain hash, so their workers start no job the deletion would then interrupt.

Queue *patterns* (``spec.weightedQueues[].pattern``) are expanded by
:class:`PatternCache` with a bounded ``SCAN`` over the queues' counters hashes
(every queue that was ever enqueued to has one), cached for
``queueDiscovery.refreshEveryPolls`` polls and capped at ``maxQueues``, so a
pattern that matches 100,000 keys costs neither a blocking ``KEYS`` nor an
unbounded poll. The ACL user then also needs ``+scan``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from jobqueue_operator.metrics import QueueSample
from jobqueue_operator.policy import Counters, Observation, WorkerLoad
from jobqueue_operator.redis_spec import RedisConnection
from jobqueue_protocol import keys
from jobqueue_protocol.redis_connect import async_client
from jobqueue_protocol.redis_health import startup_warnings_async
from jobqueue_protocol.redis_url import RedisTarget, TlsOptions, parse_redis_url
from jobqueue_protocol.stats import QueueStats, WorkerHeartbeat, queue_stats

log = logging.getLogger("jobqueue_operator")

#: SCAN's COUNT hint and the most SCAN calls per pattern per expansion: at most about
#: 20 × 500 = 10,000 keys examined, a few ms of Redis time, every refreshEveryPolls polls.
SCAN_COUNT = 500
SCAN_MAX_CALLS = 20


@dataclass(frozen=True, slots=True)
class QueueSource:
    """One entry of the spec's queue list: a name or a pattern, with its weights."""

    name: str | None = None
    pattern: str | None = None
    weight: float = 1.0
    priority: int = 0
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class WatchedQueue:
    """A concrete queue the loop reads, and the source that brought it in."""

    name: str
    weight: float = 1.0
    priority: int = 0
    reserved: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True)
class Expansion:
    """The queues to read, and what the pattern expansion found and left out."""

    queues: tuple[WatchedQueue, ...]
    matched: int = 0  # queues the patterns matched, before the cap
    truncated: bool = False  # more queues than queueDiscovery.maxQueues: the rest is not read
    complete: bool = True  # every SCAN finished within SCAN_MAX_CALLS
    refreshed_at_poll: int = 0


class MetricsUnavailableError(Exception):
    """Redis could not be read; the message is safe to show (no credentials)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What identifies one pool: the target with its credentials (never printed)."""

    target: RedisTarget
    timeout_s: float

    @property
    def tls(self) -> bool:
        return self.target.tls is not None

    def display(self) -> str:
        """A description for conditions and logs, never with credentials."""
        return self.target.display()


def endpoint_for(
    conn: RedisConnection, password: str | None, secrets: Mapping[str, str] | None = None
) -> Endpoint:
    """The endpoint of a JobQueue's ``spec.redis`` plus the values of its Secrets.

    ``secrets`` holds the other Secret values by the roles of
    :func:`~jobqueue_operator.redis_spec.secret_refs` (sentinel_password, ca, cert, key).
    """
    found = dict(secrets or {})
    tls = None
    if conn.tls_on:
        tls = TlsOptions(
            ca_pem=found.get("ca"),
            cert_pem=found.get("cert"),
            key_pem=found.get("key"),
            server_name=conn.tls.server_name,
            verify=not conn.tls.insecure_skip_verify,
        )
    if conn.url is not None:
        parsed = parse_redis_url(conn.url)
        target = replace(parsed, tls=tls, username=conn.username, password=password)
        if parsed.mode == "sentinel":
            target = replace(target, sentinel_password=found.get("sentinel_password"))
    elif conn.sentinel is not None:
        target = RedisTarget(
            mode="sentinel",
            hosts=tuple(_address(a) for a in conn.sentinel.addresses),
            db=conn.db,
            username=conn.username,
            password=password,
            master_name=conn.sentinel.master_name,
            sentinel_username=conn.sentinel.username,
            sentinel_password=found.get("sentinel_password"),
            tls=tls,
        )
    else:
        target = RedisTarget(
            mode="direct",
            hosts=((conn.host or "localhost", conn.port),),
            db=conn.db,
            username=conn.username,
            password=password,
            tls=tls,
        )
    return Endpoint(target=target, timeout_s=conn.timeout_seconds)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class RedisPools:
    """One client per endpoint, shared by the JobQueues that use it (reference-counted)."""

    def __init__(self, max_connections: int = 8) -> None:
        self._max_connections = max_connections
        self._clients: dict[Endpoint, redis.asyncio.Redis] = {}
        self._owners: dict[str, Endpoint] = {}

    def client(self, owner: str, endpoint: Endpoint) -> redis.asyncio.Redis:
        """The shared client for ``endpoint``; ``owner`` (namespace/name) now uses it."""
        previous = self._owners.get(owner)
        self._owners[owner] = endpoint
        if previous is not None and previous != endpoint:
            self._close_if_unused(previous)
        found = self._clients.get(endpoint)
        if found is None:
            found = self._clients[endpoint] = self._connect(endpoint)
            self._check_settings(endpoint, found)
        return found

    def _check_settings(self, endpoint: Endpoint, client: redis.asyncio.Redis) -> None:
        """Warn once per endpoint when Redis may evict or lose the queues' keys.

        A Redis that evicts keys (any policy but noeviction) or persists nothing
        can silently drop waiting jobs; the scaling signal would then lie. Run in
        the background so a slow or absent Redis never delays the first poll.
        """

        async def check() -> None:
            for message in await startup_warnings_async(client):
                log.warning("%s (Redis at %s)", message, endpoint.display())

        task = asyncio.get_running_loop().create_task(check())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def release(self, owner: str) -> None:
        """``owner`` stopped (deleted JobQueue); close its client if nobody else uses it."""
        endpoint = self._owners.pop(owner, None)
        if endpoint is not None:
            self._close_if_unused(endpoint)

    @property
    def open_clients(self) -> int:
        """How many clients (pools) are open; the tests check the sharing with it."""
        return len(self._clients)

    async def close(self) -> None:
        """Close every pool (operator shutdown)."""
        clients, self._clients = list(self._clients.values()), {}
        self._owners.clear()
        for client in clients:
            await client.aclose()

    def _close_if_unused(self, endpoint: Endpoint) -> None:
        if endpoint in self._owners.values():
            return
        client = self._clients.pop(endpoint, None)
        if client is not None:
            task = asyncio.get_running_loop().create_task(client.aclose())
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    def _connect(self, ep: Endpoint) -> redis.asyncio.Redis:
        """A client on a *blocking* pool: a poll waits for a free connection.

        Many JobQueues share one endpoint's pool; a plain pool raises
        MaxConnectionsError when every connection is busy, which the operator
        benchmark saw as failed polls (and held scaling) at 300 JobQueues.
        Waiting up to the endpoint's timeout turns that into a short queue.
        """
        return async_client(
            ep.target,
            blocking_pool=True,
            socket_timeout=ep.timeout_s,
            socket_connect_timeout=ep.timeout_s,
            health_check_interval=30,
            max_connections=self._max_connections,
            timeout=ep.timeout_s,  # how long a poll waits for a free connection
        )


_BACKGROUND: set[asyncio.Task[None]] = set()


class DrainError(Exception):
    """The drain hash could not be written (Redis down, or a read-only ACL user)."""


@dataclass(frozen=True, slots=True)
class DrainTarget:
    """Where a JobQueue's drain requests go: its pooled client and its queues."""

    client: redis.asyncio.Redis
    queues: tuple[str, ...]
    display: str
    timeout_s: float

    async def request(self, pods: Sequence[str], now: float, ttl_s: float) -> None:
        """List ``pods`` in every queue's drain hash; the TTL outlives a dead operator."""
        pipe = self.client.pipeline(transaction=False)
        for q in self.queues:
            pipe.hset(keys.drain_key(q), mapping=dict.fromkeys(pods, int(now * 1000)))
            pipe.pexpire(keys.drain_key(q), int(ttl_s * 1000))
        await self._execute(pipe)

    async def withdraw(self, pods: Sequence[str]) -> None:
        """Remove ``pods`` from every queue's drain hash (their workers fetch again)."""
        pipe = self.client.pipeline(transaction=False)
        for q in self.queues:
            pipe.hdel(keys.drain_key(q), *pods)
        await self._execute(pipe)

    async def _execute(self, pipe: Any) -> None:
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise DrainError(f"Redis at {self.display}: {type(exc).__name__}: {exc}") from exc


async def read(
    client: redis.asyncio.Redis,
    queues: list[str],
    *,
    display: str,
    timeout_s: float,
    weights: Mapping[str, WatchedQueue] | None = None,
) -> tuple[Observation, dict[str, QueueStats]]:
    """One poll: one round trip, summed into an :class:`Observation`."""
    try:
        async with asyncio.timeout(timeout_s * 2):
            stats = await queue_stats(client, queues)
    except (RedisError, OSError, TimeoutError) as exc:
        raise MetricsUnavailableError(f"Redis at {display}: {type(exc).__name__}: {exc}") from exc
    return summarise(stats, weights), stats


def summarise(
    stats: Mapping[str, QueueStats], weights: Mapping[str, WatchedQueue] | None = None
) -> Observation:
    """Depth and counts add up over the queues; latency is the oldest job anywhere.

    With weights (``spec.weightedQueues``) the depth is the weighted sum (a job of
    a weight-2 queue counts as two: the pool's work in worker-seconds) and the
    age is the largest weighted age (a weight-2 queue's job at 10 s presses like
    one at 20 s). In flight, delayed, dead and the workers are plain counts. The
    reserved floor is the largest ``reservedReplicas`` of a queue that has work.

    A worker that consumes several of the queues heartbeats into each, so workers
    are counted once by id.
    """
    weights = weights or {}

    def weight(queue: str) -> float:
        found = weights.get(queue)
        return found.weight if found is not None else 1.0

    workers = {hb.worker_id: hb for s in stats.values() for hb in s.workers}
    server_time = max((s.server_time for s in stats.values()), default=0.0)
    reserved = [
        w.reserved
        for q, w in weights.items()
        if q in stats and (stats[q].waiting or stats[q].delayed_due or stats[q].in_flight)
    ]
    return Observation(
        # A delayed job that is already due waits like a ready one; only a worker's
        # fetch promotes it, so at zero replicas it would otherwise never wake a pool.
        depth=round(sum((s.waiting + s.delayed_due) * weight(q) for q, s in stats.items())),
        oldest_age_s=max((s.oldest_age_s() * weight(q) for q, s in stats.items()), default=0.0),
        reserved_floor=max(reserved, default=0),
        in_flight=sum(s.in_flight for s in stats.values()),
        busy_workers=sum(1 for hb in workers.values() if hb.active_jobs > 0),
        delayed=sum(s.delayed for s in stats.values()),
        dead=sum(s.dead for s in stats.values()),
        workers=len(workers),
        worker_loads=tuple(
            _load(hb, server_time) for hb in workers.values() if hb.pod_name is not None
        ),
        counters=_counters(stats) if stats else None,
        pod_concurrency=max(
            (hb.concurrency for hb in workers.values() if hb.concurrency), default=None
        ),
        next_delayed_in_s=min(
            (
                s.next_delayed_at - s.server_time
                for s in stats.values()
                if s.next_delayed_at is not None
            ),
            default=None,
        ),
    )


def queue_samples(stats: Mapping[str, QueueStats]) -> dict[str, QueueSample]:
    """Each queue's numbers for the per-queue gauges (``metrics.set_queue_gauges``)."""
    return {
        queue: QueueSample(
            waiting_by_priority=dict(s.waiting_by_priority),
            oldest_age_s=s.oldest_age_s(),
            delayed=s.delayed,
            in_flight=s.in_flight,
            dead=s.dead,
        )
        for queue, s in stats.items()
    }


def _counters(stats: Mapping[str, QueueStats]) -> Counters:
    """The workers' cumulative counters summed over the queues, for the SLO/rate sizing."""

    def total(name: str) -> int:
        return sum(s.counters.get(name, 0) for s in stats.values())

    return Counters(
        enqueued=total(keys.COUNTER_ENQUEUED),
        finished=total(keys.COUNTER_COMPLETED) + total(keys.COUNTER_FAILED),
        busy_ms=total(keys.COUNTER_BUSY_MS),
    )


def _load(hb: WorkerHeartbeat, server_time: float) -> WorkerLoad:
    """The heartbeat fields the victim choice and the resource triggers use."""
    return WorkerLoad(
        pod_name=hb.pod_name or "",
        state=hb.state,
        active_jobs=hb.active_jobs,
        busy_s=sum(max(0.0, server_time - job.started_at) for job in hb.jobs),
        longest_s=max((max(0.0, server_time - job.started_at) for job in hb.jobs), default=0.0),
        processed=hb.processed,
        rss_bytes=hb.rss_bytes,
        cpu_cores=hb.cpu_cores,
    )


def _queue_of(key: str | bytes) -> str | None:
    """The queue name inside a counters key's hash tag; ``None`` if it is not a valid one."""
    text = key.decode() if isinstance(key, bytes) else key
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return keys.validate_queue(text[start + 1 : end])
    except keys.InvalidKeyPartError:
        return None


async def scan_queues(client: redis.asyncio.Redis, pattern: str) -> tuple[list[str], bool]:
    """Queues whose name matches the glob ``pattern``; ``(names, complete)``.

    Bounded: at most :data:`SCAN_MAX_CALLS` SCAN calls; ``complete`` is False
    when the cursor had not come back to 0 by then.
    """
    match = keys.counters_key(pattern)
    found: set[str] = set()
    cursor: int = 0
    for _ in range(SCAN_MAX_CALLS):
        cursor, batch = await client.scan(cursor, match=match, count=SCAN_COUNT, _type="hash")
        for key in batch:
            name = _queue_of(key)
            if name is not None:
                found.add(name)
        if int(cursor) == 0:
            return sorted(found), True
    return sorted(found), False


class PatternCache:
    """The expansion of one JobQueue's queue list, re-done every ``refresh_every`` polls.

    Named queues are always read. Pattern matches come after them, by priority
    (highest first), then name, up to ``max_queues`` in all; ``matched`` and
    ``truncated`` say how many were left out (``status.queueDiscovery``). A
    failed SCAN keeps the previous expansion, so a Redis blip does not drop queues.
    """

    def __init__(self) -> None:
        self._key: tuple[tuple[QueueSource, ...], int] | None = None
        self._polls = 0
        self._last: Expansion | None = None

    async def expand(
        self,
        client: redis.asyncio.Redis,
        sources: tuple[QueueSource, ...],
        *,
        max_queues: int,
        refresh_every: int,
        timeout_s: float,
    ) -> Expansion:
        """The queues to read on this poll (a SCAN only when the cache is due)."""
        self._polls += 1
        key = (sources, max_queues)
        last = self._last
        fresh = (
            last is not None
            and self._key == key
            and self._polls - last.refreshed_at_poll < refresh_every
        )
        if fresh and last is not None:
            return last
        named = [
            WatchedQueue(s.name, s.weight, s.priority, s.reserved, s.name)
            for s in sources
            if s.name is not None
        ]
        seen = {q.name for q in named}
        matches: list[WatchedQueue] = []
        complete = True
        patterns = [s for s in sources if s.pattern is not None]
        if patterns:
            try:
                async with asyncio.timeout(timeout_s * 2):
                    for src in patterns:
                        assert src.pattern is not None
                        names, done = await scan_queues(client, src.pattern)
                        complete = complete and done
                        for name in names:
                            if name not in seen:
                                seen.add(name)
                                matches.append(
                                    WatchedQueue(
                                        name, src.weight, src.priority, src.reserved, src.pattern
                                    )
                                )
            except (RedisError, OSError, TimeoutError) as exc:
                if last is not None and self._key == key:
                    return last
                raise MetricsUnavailableError(
                    f"SCAN for queue patterns: {type(exc).__name__}: {exc}"
                ) from exc
        matches.sort(key=lambda q: (-q.priority, q.name))
        room = max(0, max_queues - len(named))
        expansion = Expansion(
            queues=tuple(named + matches[:room]),
            matched=len(matches),
            truncated=len(matches) > room,
            complete=complete,
            refreshed_at_poll=self._polls,
        )
        self._key, self._last = key, expansion
        return expansion
