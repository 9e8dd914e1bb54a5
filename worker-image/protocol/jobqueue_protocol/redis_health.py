"""Facts about the Redis server a queue lives on, and what they mean for the queue.

A job queue on Redis is only as safe as the server's settings: an eviction policy
other than ``noeviction`` lets Redis delete queue keys silently when memory runs
out (BullMQ and Celery both require ``noeviction``), and a server that persists
nothing (no AOF, no RDB snapshots) loses every queued job on a restart.

``read_facts`` / ``read_facts_async`` take ONE pipelined round trip (``PING``,
``INFO memory|persistence|clients|server``, ``CONFIG GET maxmemory-policy`` and
``save``). Managed Redis often disables ``CONFIG`` (renamed command, or an ACL
without ``+config``): the pipeline does not raise on that reply, the policy is
then read from ``INFO memory``'s ``maxmemory_policy`` and the RDB ``save``
schedule is marked unknown. ``assess`` is pure (facts in, findings out) so the
CLI, the worker and the operator judge a server the same way, and tests can
table it. ``startup_warnings`` is what the worker and operator log at start.

Only the standard library and ``redis`` are imported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from jobqueue_protocol.health import Level, Reason

NOEVICTION = "noeviction"

# Order of the replies in the pipeline (see _queue_commands).
_PING, _MEMORY, _PERSISTENCE, _CLIENTS, _SERVER, _POLICY, _SAVE = range(7)


@dataclass(frozen=True)
class RedisFacts:
    """What one pipelined read of a Redis server tells about it.

    ``rdb_save`` is the ``save`` schedule (``""`` = snapshots off) or ``None`` when
    ``CONFIG`` is unavailable; ``policy_source`` says where the eviction policy was
    read (``"config"`` or ``"info"``).
    """

    ping_ok: bool
    round_trip_s: float
    version: str
    mode: str
    used_memory_bytes: int
    maxmemory_bytes: int  # 0 = no limit
    maxmemory_policy: str
    policy_source: str
    aof_enabled: bool
    aof_last_write_ok: bool
    rdb_save: str | None
    rdb_last_bgsave_ok: bool
    rdb_saves: int
    rdb_changes_since_last_save: int
    rdb_last_save_time: float
    connected_clients: int
    blocked_clients: int
    maxclients: int | None

    @property
    def memory_ratio(self) -> float | None:
        """used / maxmemory, or None without a limit."""
        if self.maxmemory_bytes <= 0:
            return None
        return self.used_memory_bytes / self.maxmemory_bytes

    @property
    def rdb_configured(self) -> bool | None:
        """True/False when the ``save`` schedule is known, None when CONFIG is unavailable."""
        if self.rdb_save is None:
            return None
        return bool(self.rdb_save.strip())


# A Finding is a Reason about the server rather than a queue: same levels, same shape.
Finding = Reason


@dataclass(frozen=True)
class RedisThresholds:
    """Memory use against ``maxmemory`` and clients against ``maxclients`` (fractions)."""

    memory_warning: float = 0.80
    memory_critical: float = 0.95
    clients_warning: float = 0.90


#: The reads of one check, in the order facts_from_replies expects.
_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("PING",),
    ("INFO", "memory"),
    ("INFO", "persistence"),
    ("INFO", "clients"),
    ("INFO", "server"),
    ("CONFIG GET", "maxmemory-policy"),
    ("CONFIG GET", "save"),
)


def _queue_commands(pipe: Any) -> None:
    pipe.ping()
    pipe.info("memory")
    pipe.info("persistence")
    pipe.info("clients")
    pipe.info("server")
    pipe.config_get("maxmemory-policy")
    pipe.config_get("save")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _config_value(reply: Any, name: str) -> str | None:
    """The value of a ``CONFIG GET`` reply, or None when the command was refused."""
    if isinstance(reply, BaseException) or not isinstance(reply, Mapping):
        return None
    for k, v in reply.items():
        if _text(k) == name:
            return _text(v)
    return None


def _int(info: Mapping[str, Any], key: str, default: int = 0) -> int:
    try:
        return int(info.get(key, default))
    except (TypeError, ValueError):
        return default


def facts_from_replies(replies: Sequence[Any], round_trip_s: float) -> RedisFacts:
    """Build the facts from the pipeline's replies (exceptions in place of refused ones).

    ``PING`` and ``INFO`` are needed (an error there is raised); ``CONFIG`` is
    optional.
    """
    for i in (_PING, _MEMORY, _PERSISTENCE, _CLIENTS, _SERVER):
        if isinstance(replies[i], BaseException):
            raise replies[i]
    memory: Mapping[str, Any] = replies[_MEMORY]
    persistence: Mapping[str, Any] = replies[_PERSISTENCE]
    clients: Mapping[str, Any] = replies[_CLIENTS]
    server: Mapping[str, Any] = replies[_SERVER]
    policy = _config_value(replies[_POLICY], "maxmemory-policy")
    source = "config"
    if policy is None:
        policy = _text(memory.get("maxmemory_policy", "unknown"))
        source = "info"
    maxclients = clients.get("maxclients")
    return RedisFacts(
        ping_ok=replies[_PING] is True or _text(replies[_PING]) in {"PONG", "True"},
        round_trip_s=round_trip_s,
        version=_text(server.get("redis_version", "unknown")),
        mode=_text(server.get("redis_mode", "unknown")),
        used_memory_bytes=_int(memory, "used_memory"),
        maxmemory_bytes=_int(memory, "maxmemory"),
        maxmemory_policy=policy,
        policy_source=source,
        aof_enabled=_int(persistence, "aof_enabled") == 1,
        aof_last_write_ok=_text(persistence.get("aof_last_write_status", "ok")) == "ok",
        rdb_save=_config_value(replies[_SAVE], "save"),
        rdb_last_bgsave_ok=_text(persistence.get("rdb_last_bgsave_status", "ok")) == "ok",
        rdb_saves=_int(persistence, "rdb_saves"),
        rdb_changes_since_last_save=_int(persistence, "rdb_changes_since_last_save"),
        rdb_last_save_time=float(_int(persistence, "rdb_last_save_time")),
        connected_clients=_int(clients, "connected_clients"),
        blocked_clients=_int(clients, "blocked_clients"),
        maxclients=None if maxclients is None else int(maxclients),
    )


def read_facts(client: redis.Redis) -> RedisFacts:
    """One pipelined round trip with a synchronous client (the CLI)."""
    pipe = client.pipeline(transaction=False)
    _queue_commands(pipe)
    started = time.monotonic()
    replies = pipe.execute(raise_on_error=False)
    return facts_from_replies(replies, time.monotonic() - started)


async def read_facts_async(client: redis.asyncio.Redis) -> RedisFacts:
    """One pipelined round trip with an asyncio client (the worker and the operator)."""
    pipe = client.pipeline(transaction=False)
    _queue_commands(pipe)
    started = time.monotonic()
    replies = await pipe.execute(raise_on_error=False)
    return facts_from_replies(replies, time.monotonic() - started)


def assess(facts: RedisFacts, thresholds: RedisThresholds | None = None) -> list[Finding]:
    """What is wrong with this server for a job queue, worst first; empty when nothing.

    Codes: ``ping``, ``eviction_policy``, ``no_persistence``,
    ``persistence_unknown``, ``aof_write_failed``, ``rdb_save_failed``,
    ``memory``, ``clients``.
    """
    t = thresholds or RedisThresholds()
    out: list[Finding] = []
    if not facts.ping_ok:
        out.append(Finding(Level.CRITICAL, "ping", "PING did not answer PONG"))
    if facts.maxmemory_policy != NOEVICTION:
        out.append(
            Finding(
                Level.WARNING,
                "eviction_policy",
                f"maxmemory-policy is {facts.maxmemory_policy}: when memory runs out Redis "
                "deletes keys, queued jobs included, without an error; set noeviction",
            )
        )
    rdb = facts.rdb_configured
    if not facts.aof_enabled and rdb is False:
        out.append(
            Finding(
                Level.WARNING,
                "no_persistence",
                "Redis persists nothing (appendonly no, no save schedule): a restart "
                "loses every queued job; turn on appendonly yes",
            )
        )
    elif not facts.aof_enabled and rdb is None and facts.rdb_saves == 0:
        out.append(
            Finding(
                Level.WARNING,
                "persistence_unknown",
                "appendonly is off and CONFIG is unavailable, so the RDB schedule is "
                "unknown and no snapshot was taken since start: a restart may lose jobs",
            )
        )
    if facts.aof_enabled and not facts.aof_last_write_ok:
        out.append(Finding(Level.CRITICAL, "aof_write_failed", "the last AOF write failed (disk?)"))
    if not facts.rdb_last_bgsave_ok:
        out.append(Finding(Level.WARNING, "rdb_save_failed", "the last RDB snapshot failed"))
    ratio = facts.memory_ratio
    if ratio is not None and ratio >= t.memory_warning:
        level = Level.CRITICAL if ratio >= t.memory_critical else Level.WARNING
        verb = (
            "enqueues will fail with OOM"
            if facts.maxmemory_policy == NOEVICTION
            else "keys will be evicted"
        )
        out.append(
            Finding(
                level,
                "memory",
                f"memory {facts.used_memory_bytes} of {facts.maxmemory_bytes} bytes used "
                f"({ratio:.0%}); at the limit {verb}",
            )
        )
    if facts.maxclients and facts.connected_clients >= t.clients_warning * facts.maxclients:
        out.append(
            Finding(
                Level.WARNING,
                "clients",
                f"{facts.connected_clients} of {facts.maxclients} client connections in use",
            )
        )
    out.sort(key=lambda f: -f.level.rank)
    return out


# What a process warns about once at start: settings that lose jobs silently.
_STARTUP_CODES = frozenset(
    {"eviction_policy", "no_persistence", "persistence_unknown", "memory", "aof_write_failed"}
)


def _startup_messages(facts: RedisFacts) -> list[str]:
    return [f"Redis: {f.message}" for f in assess(facts) if f.code in _STARTUP_CODES]


def _unreadable(exc: Exception) -> str:
    return f"Redis: could not check eviction and persistence settings: {type(exc).__name__}: {exc}"


def startup_warnings(client: redis.Redis) -> list[str]:
    """Messages to log at start when Redis evicts keys or persists nothing; never raises.

    A server that cannot be read yet yields one message saying so (the caller's
    own retry loop deals with an unreachable Redis).
    """
    try:
        facts = read_facts(client)
    except Exception as exc:
        return [_unreadable(exc)]
    return _startup_messages(facts)


async def startup_warnings_async(
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
) -> list[str]:
    """``startup_warnings`` for an asyncio client (the worker's broker, the operator).

    On a Redis Cluster (whose client the connection helper types as a ``Redis``)
    every master is checked: each holds its own queues.
    """
    try:
        if isinstance(client, redis.asyncio.RedisCluster):
            return await _cluster_warnings(client)
        facts = await read_facts_async(client)
    except Exception as exc:
        return [_unreadable(exc)]
    return _startup_messages(facts)


async def _cluster_warnings(client: redis.asyncio.RedisCluster) -> list[str]:
    # A cluster pipeline refuses keyless commands: ask each master in turn.
    await client.initialize()
    messages = []
    for node in client.get_primaries():
        started = time.monotonic()
        replies: list[Any] = []
        for command in _COMMANDS:
            try:
                replies.append(await client.execute_command(*command, target_nodes=node))
            except Exception as exc:  # a refused CONFIG is a fact to report, not a failure
                replies.append(exc)
        facts = facts_from_replies(replies, time.monotonic() - started)
        messages += [f"{m} (cluster node {node.name})" for m in _startup_messages(facts)]
    return messages
