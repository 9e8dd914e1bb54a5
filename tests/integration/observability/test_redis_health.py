"""Redis health facts read from real servers: the shared fixture (AOF on, noeviction)
and a second ``RedisServer`` started with ``appendonly=False`` whose policy and
memory limit are changed with ``CONFIG SET``, then read again through an ACL user
without ``+config`` (how managed Redis behaves)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from jobqueue_devkit.redis_server import RedisServer
from jobqueue_protocol.health import Level
from jobqueue_protocol.redis_health import (
    assess,
    read_facts,
    read_facts_async,
    startup_warnings,
    startup_warnings_async,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def unsafe_redis() -> Iterator[RedisServer]:
    """A second server: no AOF, no RDB (the devkit passes ``--save ''``)."""
    server = RedisServer(appendonly=False)
    server.start()
    yield server
    server.cleanup()


def test_the_fixture_server_is_safe(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        facts = read_facts(client)
        assert facts.ping_ok
        assert facts.aof_enabled
        assert facts.maxmemory_policy == "noeviction"
        assert facts.policy_source == "config"
        assert facts.connected_clients >= 1
        assert facts.used_memory_bytes > 0
        assert facts.version.count(".") >= 1
        assert assess(facts) == []
        assert startup_warnings(client) == []
    finally:
        client.close()


def test_eviction_and_no_persistence_are_reported(unsafe_redis: RedisServer) -> None:
    client = redis.Redis.from_url(unsafe_redis.url)
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        facts = read_facts(client)
        assert (facts.aof_enabled, facts.rdb_save, facts.maxmemory_policy) == (
            False,
            "",
            "allkeys-lru",
        )
        assert {(f.level, f.code) for f in assess(facts)} == {
            (Level.WARNING, "eviction_policy"),
            (Level.WARNING, "no_persistence"),
        }
        warnings = startup_warnings(client)
        assert len(warnings) == 2
        assert any("allkeys-lru" in w and "noeviction" in w for w in warnings)
        assert any("persists nothing" in w for w in warnings)
    finally:
        client.close()


def test_memory_near_maxmemory_is_critical(unsafe_redis: RedisServer) -> None:
    client = redis.Redis.from_url(unsafe_redis.url)
    try:
        client.set("ballast", b"x" * 200_000)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(int(used / 0.97)))
        findings = {f.code: f.level for f in assess(read_facts(client))}
        assert findings["memory"] is Level.CRITICAL
    finally:
        client.config_set("maxmemory", "0")
        client.close()


async def test_config_refused_falls_back_to_info(unsafe_redis: RedisServer) -> None:
    admin = redis.Redis.from_url(unsafe_redis.url)
    admin.config_set("maxmemory-policy", "volatile-lru")
    admin.acl_setuser(
        "app", enabled=True, passwords=["+secret"], commands=["+@all", "-config"], keys=["*"]
    )
    admin.close()
    client = redis.asyncio.Redis(
        host=unsafe_redis.host, port=unsafe_redis.port, username="app", password="secret"
    )
    try:
        with pytest.raises(redis.ResponseError, match="no permissions"):
            await client.config_get("maxmemory-policy")
        facts = await read_facts_async(client)
        assert facts.policy_source == "info"
        assert facts.maxmemory_policy == "volatile-lru"
        assert facts.rdb_save is None
        codes = {f.code for f in assess(facts)}
        assert codes == {"eviction_policy", "persistence_unknown"}
        assert len(await startup_warnings_async(client)) == 2
    finally:
        await client.aclose()


def test_startup_warnings_never_raise_on_an_unreachable_server(unsafe_redis: RedisServer) -> None:
    url = unsafe_redis.url
    unsafe_redis.stop()
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        (message,) = startup_warnings(client)
        assert message.startswith("Redis: could not check")
    finally:
        client.close()
