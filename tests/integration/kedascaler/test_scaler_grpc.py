"""The external scaler over real gRPC and real Redis: answers, and errors that never scale blind."""

from __future__ import annotations

import time

import grpc
import pytest
import redis
from scaler_client import ScalerClient

from jobqueue_devkit.ports import free_port
from jobqueue_operator.kedascaler.cli import redis_endpoint
from jobqueue_operator.kedascaler.server import start
from jobqueue_operator.kedascaler.service import RedisSource, ScalerService
from jobqueue_protocol import keys
from jobqueue_worker.producer import JobRequest, SyncProducer

pytestmark = pytest.mark.redis

QUEUE = "emails"
BACKLOG = {"queue": QUEUE, "scalerAddress": "scaler:9090", "targetBacklogPerReplica": "5"}


def fill(url: str, queue: str, count: int) -> None:
    producer = SyncProducer(url, default_queue=queue)
    try:
        producer.enqueue_many([JobRequest(type="noop", queue=queue) for _ in range(count)])
    finally:
        producer.close()


def hold_in_flight(url: str, queue: str, count: int) -> None:
    """Leases, as workers that took ``count`` jobs hold them."""
    client = redis.Redis.from_url(url)
    try:
        expires = int((time.time() + 60) * 1000)
        client.zadd(keys.lease_key(queue), {f"job-{i}": expires for i in range(count)})
    finally:
        client.close()


async def test_backlog_counts_waiting_and_running_jobs(
    scaler: ScalerClient, redis_url: str
) -> None:
    fill(redis_url, QUEUE, 12)
    hold_in_flight(redis_url, QUEUE, 3)
    [(name, target)] = await scaler.metric_spec(BACKLOG)
    assert (name, target) == ("jobqueue-backlog-emails", 5.0)
    assert await scaler.metrics(BACKLOG, name) == [(name, 15.0)]
    assert await scaler.is_active(BACKLOG)


async def test_an_emptied_queue_with_running_jobs_stays_active(
    scaler: ScalerClient, redis_url: str
) -> None:
    fill(redis_url, QUEUE, 1)
    redis.Redis.from_url(redis_url).delete(*keys.ready_keys(QUEUE))
    assert not await scaler.is_active(BACKLOG)
    hold_in_flight(redis_url, QUEUE, 2)
    assert await scaler.is_active(BACKLOG)
    assert await scaler.metrics(BACKLOG, "jobqueue-backlog-emails") == [
        ("jobqueue-backlog-emails", 2.0)
    ]


async def test_replicas_mode_serves_the_policy_count(scaler: ScalerClient, redis_url: str) -> None:
    meta = {
        "queue": QUEUE,
        "mode": "replicas",
        "maxReplicas": "6",
        "scaleUpQueueDepth": "10",
        "scaleDownQueueDepth": "2",
    }
    fill(redis_url, QUEUE, 40)
    [(name, target)] = await scaler.metric_spec(meta)
    assert (name, target) == ("jobqueue-replicas-emails", 1.0)
    [(_, replicas)] = await scaler.metrics(meta, name)
    # From zero the policy wakes one worker per scaleUp.queueDepth waiting jobs.
    assert replicas == 4.0
    assert await scaler.is_active(meta)


async def test_stream_is_active_sends_the_state_and_then_each_change(
    scaler: ScalerClient, redis_url: str
) -> None:
    fill(redis_url, QUEUE, 1)
    stream = scaler.stream_is_active(BACKLOG)
    assert await anext(stream) is True
    redis.Redis.from_url(redis_url).delete(*keys.ready_keys(QUEUE))
    assert await anext(stream) is False
    fill(redis_url, QUEUE, 2)
    assert await anext(stream) is True


@pytest.mark.parametrize(
    ("metadata", "names"),
    [
        ({}, "metadata.queue is missing"),
        ({"queue": QUEUE, "mode": "guess"}, "metadata.mode"),
        ({"queue": "nobody-ever-used-this"}, "queue 'nobody-ever-used-this' is unknown"),
    ],
)
async def test_bad_input_is_invalid_argument_with_a_message(
    scaler: ScalerClient, redis_url: str, metadata: dict[str, str], names: str
) -> None:
    fill(redis_url, QUEUE, 1)
    for call in (scaler.is_active(metadata), scaler.metrics(metadata, "")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert names in (caught.value.details() or "")
        assert "demo/worker" in (caught.value.details() or "")
    # The server is still up and answers a good request.
    assert await scaler.is_active(BACKLOG)


async def test_a_wrong_metric_name_is_refused(scaler: ScalerClient, redis_url: str) -> None:
    fill(redis_url, QUEUE, 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await scaler.metrics(BACKLOG, "jobqueue-backlog-other")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "jobqueue-backlog-emails" in (caught.value.details() or "")


async def test_redis_down_is_unavailable_never_a_zero() -> None:
    """A 0 would tell the HPA the queue is empty; an error makes KEDA hold."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    service = ScalerService(RedisSource(redis_endpoint(dead, timeout_s=0.3)))
    server, port = await start(service, "127.0.0.1:0", None)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = ScalerClient(channel)
    try:
        for call in (
            client.is_active(BACKLOG),
            client.metrics(BACKLOG, "jobqueue-backlog-emails"),
            anext(client.stream_is_active(BACKLOG)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert f"Redis at {dead}" in (caught.value.details() or "")
        # The spec needs no Redis: KEDA can still build the HPA, which then holds.
        assert await client.metric_spec(BACKLOG) == [("jobqueue-backlog-emails", 5.0)]
    finally:
        await channel.close()
        await server.stop(None)
        await service.source.close()
