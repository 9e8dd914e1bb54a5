"""The operator's only Redis module: pooled clients, one stats read per poll, pattern SCANs.

A client per JobQueue would open connections in proportion to the JobQueues
and leak them whenever a JobQueue's loop ends without closing its own. Here every
JobQueue that points at the same endpoint (address, db, user, password, TLS)
shares one client and its connection pool; the client is closed when the last
JobQueue using it lets go. A poll is one call
of :func:`jobqueue_protocol.stats.queue_stats`, i.e. one pipelined round trip
for all of a JobQueue's queues, with no Lua (a read-only ACL user is enough);
the polls of an endpoint's JobQueues that meet share that round trip
(:mod:`jobqueue_operator.coalesce`), on a client of its own whose replies carry
no timeout each: the whole read is bounded instead (:func:`bounded_stats`).

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
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from jobqueue_operator.coalesce import Coalescer
from jobqueue_operator.policy import Observation
from jobqueue_operator.ports import (
    DrainError,
    Expansion,
    MetricsUnavailableError,
    PollRequest,
    QueuePoll,
    QueueSource,
    WatchedQueue,
)
from jobqueue_operator.queue_summary import queue_samples, summarise
from jobqueue_operator.redis_endpoint import Endpoint, endpoint_for
from jobqueue_protocol import keys
from jobqueue_protocol.redis_connect import async_client
from jobqueue_protocol.redis_health import startup_warnings_async
from jobqueue_protocol.stats import QueueStats, queue_stats

log = logging.getLogger("jobqueue_operator")

#: SCAN's COUNT hint and the most SCAN calls per pattern per expansion: at most about
#: 20 × 500 = 10,000 keys examined, a few ms of Redis time, every refreshEveryPolls polls.
SCAN_COUNT = 500
SCAN_MAX_CALLS = 20


class RedisPools:
    """One client per endpoint, shared by the JobQueues that use it (reference-counted)."""

    def __init__(self, max_connections: int = 8) -> None:
        self._max_connections = max_connections
        self._clients: dict[Endpoint, redis.asyncio.Redis] = {}
        self._coalescers: dict[Endpoint, Coalescer[QueueStats]] = {}
        #: The clients of the shared stats reads (see :func:`bounded_stats`).
        self._stats_clients: dict[Endpoint, redis.asyncio.Redis] = {}
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

    def coalescer(self, endpoint: Endpoint) -> Coalescer[QueueStats]:
        """The shared stats reads of ``endpoint``'s JobQueues (see ``coalesce``)."""
        found = self._coalescers.get(endpoint)
        if found is None:
            client = self._stats_clients[endpoint] = self._connect(endpoint, for_stats=True)
            read_all = partial(bounded_stats, client, endpoint.timeout_s)
            found = self._coalescers[endpoint] = Coalescer(read_all)
        return found

    def queues_for(self, owner: str) -> RedisQueues:
        """``owner``'s side of Redis, on the pools it shares with the other JobQueues."""
        return RedisQueues(self, owner)

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
        clients = [*self._clients.values(), *self._stats_clients.values()]
        self._clients, self._stats_clients = {}, {}
        for coalescer in self._coalescers.values():
            coalescer.close()
        self._coalescers.clear()
        self._owners.clear()
        for client in clients:
            await client.aclose()

    def _close_if_unused(self, endpoint: Endpoint) -> None:
        if endpoint in self._owners.values():
            return
        coalescer = self._coalescers.pop(endpoint, None)
        if coalescer is not None:
            coalescer.close()
        for client in (self._clients.pop(endpoint, None), self._stats_clients.pop(endpoint, None)):
            if client is not None:
                task = asyncio.get_running_loop().create_task(client.aclose())
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)

    def _connect(self, ep: Endpoint, *, for_stats: bool = False) -> redis.asyncio.Redis:
        """A client on a *blocking* pool: a poll waits for a free connection.

        Many JobQueues share one endpoint's pool; a plain pool raises
        MaxConnectionsError when every connection is busy, which shows as failed
        polls (and held scaling) once there are more JobQueues than connections.
        Waiting up to the endpoint's timeout turns that into a short queue.
        ``for_stats``: the shared stats reads' client, one read in flight at a time,
        with no timeout per reply (:func:`bounded_stats` bounds the whole read).
        """
        return async_client(
            ep.target,
            blocking_pool=True,
            socket_timeout=None if for_stats else ep.timeout_s,
            socket_connect_timeout=ep.timeout_s,
            health_check_interval=30,
            max_connections=2 if for_stats else self._max_connections,
            timeout=ep.timeout_s,  # how long a poll waits for a free connection
        )


_BACKGROUND: set[asyncio.Task[None]] = set()


async def bounded_stats(
    client: redis.asyncio.Redis, timeout_s: float, queues: list[str]
) -> dict[str, QueueStats]:
    """The shared stats read, bounded as a whole rather than reply by reply.

    With a socket timeout redis-py arms a timer for every reply, and a poll reads
    27 replies per queue: at 1,000 JobQueues those timers took 7-9 % of the
    operator's profile samples, and a third of one queue's read measured apart.
    A read that runs out of time is cancelled while reading,
    and redis-py then drops the connection, so no late reply is left on it for
    the next read to take as its own.
    """
    async with asyncio.timeout(timeout_s):
        return await queue_stats(client, queues)


class RedisQueues:
    """One JobQueue's side of Redis (:class:`~jobqueue_operator.ports.QueuePort`).

    Its client comes from the shared pools; its pattern expansion is cached between
    polls; its drain requests go to the queues of its last poll.
    """

    def __init__(self, pools: RedisPools, owner: str) -> None:
        self._pools, self._owner = pools, owner
        self._patterns = PatternCache()
        self._drain: DrainTarget | None = None

    async def poll(self, request: PollRequest) -> QueuePoll:
        """Expand the patterns (when due), then one round trip for every queue."""
        endpoint = endpoint_for(request.conn, request.secrets.get("password"), request.secrets)
        client = self._pools.client(self._owner, endpoint)
        try:
            expansion = await self._patterns.expand(
                client,
                request.sources,
                max_queues=request.max_queues,
                refresh_every=request.refresh_every,
                timeout_s=endpoint.timeout_s,
            )
        except MetricsUnavailableError as exc:
            return QueuePoll(None, {}, None, str(exc))
        queues = tuple(q.name for q in expansion.queues)
        drain = self._drain
        if drain is None or drain.client is not client or drain.queues != queues:
            self._drain = DrainTarget(client, queues, endpoint.display(), endpoint.timeout_s)
        try:
            observation, per_queue = await read(
                client,
                list(queues),
                display=endpoint.display(),
                timeout_s=endpoint.timeout_s,
                weights={q.name: q for q in expansion.queues},
                via=self._pools.coalescer(endpoint),
            )
        except MetricsUnavailableError as exc:
            return QueuePoll(None, {}, expansion, str(exc))
        return QueuePoll(observation, queue_samples(per_queue), expansion)

    async def request_drain(self, pods: Sequence[str], now: float, ttl_s: float) -> bool:
        """List ``pods`` in the drain hashes; ``False`` before the first poll."""
        if self._drain is None:
            return False
        await self._drain.request(pods, now, ttl_s)
        return True

    async def withdraw_drain(self, pods: Sequence[str]) -> bool:
        """Take ``pods`` off the drain hashes; ``False`` before the first poll."""
        if self._drain is None:
            return False
        await self._drain.withdraw(pods)
        return True

    def close(self) -> None:
        """The JobQueue's loop stops: release its pool."""
        self._pools.release(self._owner)


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
    via: Coalescer[QueueStats] | None = None,
) -> tuple[Observation, dict[str, QueueStats]]:
    """One poll: one round trip (``via``: shared with the polls meeting it), summed up."""
    try:
        async with asyncio.timeout(timeout_s * 2):
            stats = await (queue_stats(client, queues) if via is None else via.read(queues))
    except (RedisError, OSError, TimeoutError) as exc:
        raise MetricsUnavailableError(f"Redis at {display}: {type(exc).__name__}: {exc}") from exc
    return summarise(stats, weights), stats


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
