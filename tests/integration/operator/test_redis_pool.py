"""Many JobQueues polling one Redis through one shared pool wait for a connection, never fail.

The operator benchmark found 300 JobQueues on one endpoint failing polls with
MaxConnectionsError: a plain pool raises when every connection is in use.
"""

from __future__ import annotations

import asyncio

import pytest

from jobqueue_operator.models import RedisConnection
from jobqueue_operator.observe import RedisPools, endpoint_for, read

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
