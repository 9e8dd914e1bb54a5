"""Many JobQueues polling one Redis through one shared pool wait for a connection, never fail.

The operator benchmark found 300 JobQueues on one endpoint failing polls with
MaxConnectionsError: a plain pool raises when every connection is in use.
"""

from __future__ import annotations

import asyncio

import pytest

from jobqueue_operator.observe import RedisPools, read
from jobqueue_operator.redis_endpoint import endpoint_for
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


async def test_polls_that_meet_share_one_pipeline_and_each_sees_its_own_queues(
    redis_url: str,
) -> None:
    """200 JobQueues polling at once on one endpoint: a handful of reads, right depths."""
    from jobqueue_worker.producer import JobRequest, Producer

    async with Producer(redis_url, default_queue="unused") as producer:
        for i in range(20):
            await producer.enqueue_many(
                [JobRequest(type="noop", payload={}, queue=f"share{i}") for _ in range(i)]
            )
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    endpoint = endpoint_for(RedisConnection(host="127.0.0.1", port=port), None)
    pools = RedisPools(max_connections=2)
    try:
        client = pools.client("ns/jq", endpoint)
        via = pools.coalescer(endpoint)
        polls = [[f"share{i % 20}", f"share{(i + 1) % 20}"] for i in range(200)]
        results = await asyncio.gather(
            *(read(client, p, display="test", timeout_s=5.0, via=via) for p in polls)
        )
    finally:
        await pools.close()
    for queues, (observation, per_queue) in zip(polls, results, strict=True):
        assert sorted(per_queue) == sorted(queues)
        assert observation.depth == sum(int(q.removeprefix("share")) for q in queues)
    assert via.polls == 200
    assert via.reads <= 3, via.reads  # the first turn's polls share one read


async def test_a_redis_that_stops_answering_fails_the_shared_read_in_time_then_recovers() -> None:
    """The shared stats read has no timeout per reply; the whole read is bounded instead.

    A Redis that accepts but never answers (SIGSTOP) must fail the polls within
    the endpoint's timeout, and once it answers again the next read must see the
    right depths: a read cut off half-way leaves no reply on a pooled connection.
    """
    import os
    import signal
    import time

    from jobqueue_devkit.redis_server import RedisServer
    from jobqueue_worker.producer import JobRequest, Producer

    server = RedisServer(appendonly=False).start()
    assert server.process is not None
    pools = RedisPools()
    try:
        async with Producer(server.url, default_queue="unused") as producer:
            for queue, n in (("a", 3), ("b", 5)):
                await producer.enqueue_many(
                    [JobRequest(type="noop", payload={}, queue=queue) for _ in range(n)]
                )
        endpoint = endpoint_for(
            RedisConnection(host="127.0.0.1", port=server.port, timeoutSeconds=1.0), None
        )
        pools.client("ns/jq", endpoint)
        shared = pools.coalescer(endpoint)
        assert {q: s.waiting for q, s in (await shared.read(["a", "b"])).items()} == {
            "a": 3,
            "b": 5,
        }
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await shared.read(["a", "b"])
            assert time.monotonic() - started < 3.0
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        # The replies of the cut-off read arrive now; none may answer the next read.
        for _ in range(3):
            got = await shared.read(["b", "a"])
            assert {q: s.waiting for q, s in got.items()} == {"a": 3, "b": 5}
    finally:
        await pools.close()
        server.cleanup()
