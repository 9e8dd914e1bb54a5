"""Many JobQueues polling one Redis through one shared pool wait for a connection, never fail.

The operator benchmark found 300 JobQueues on one endpoint failing polls with
MaxConnectionsError: a plain pool raises when every connection is in use.
"""

from __future__ import annotations

import asyncio

import pytest

from jobqueue_operator.observe import RedisPools, endpoint_for, read
from jobqueue_operator.redis_spec import RedisConnection

pytestmark = pytest.mark.redis


async def test_more_concurrent_polls_than_connections_all_succeed(redis_url: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    endpoint = endpoint_for(RedisConnection(host="127.0.0.1", port=port), None)
    pools = RedisPools(max_connections=2)
    try:
        clients = {pools.client(f"ns/jq-{i}", endpoint) for i in range(50)}
        assert len(clients) == 1  # one pool per endpoint, shared
        (client,) = clients
        results = await asyncio.gather(
            *(read(client, [f"q{i}"], display="test", timeout_s=5.0) for i in range(50)),
            return_exceptions=True,
        )
    finally:
        await pools.close()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []


async def test_an_evicting_redis_is_reported_once_per_endpoint(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An eviction policy other than noeviction can drop waiting jobs: say so at first use."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(redis_url)
    await admin.config_set("maxmemory-policy", "allkeys-lru")
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    endpoint = endpoint_for(RedisConnection(host="127.0.0.1", port=port), None)
    pools = RedisPools()
    try:
        with caplog.at_level("WARNING", logger="jobqueue_operator"):
            pools.client("ns/a", endpoint)
            pools.client("ns/b", endpoint)  # same endpoint: no second check
            for _ in range(50):
                if any("allkeys-lru" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.aclose()
        await pools.close()
    warnings = [r.getMessage() for r in caplog.records if "allkeys-lru" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{port}" in warnings[0]
