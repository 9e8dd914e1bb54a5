"""Redis behind Sentinel: every client follows a failover without a restart; durable enqueue.

The topology is real (Debian's redis-server ×3, redis-sentinel ×3); the master is
killed with SIGKILL and the sentinels promote a replica.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from redis.exceptions import RedisError

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.redis_sentinel import MASTER_NAME, SentinelTopology
from jobqueue_operator.observe import RedisPools, read
from jobqueue_operator.ports import MetricsUnavailableError
from jobqueue_operator.redis_endpoint import endpoint_for
from jobqueue_operator.redis_spec import RedisConnection, secret_refs
from jobqueue_worker.broker import DurabilityError
from jobqueue_worker.producer import Producer, SyncProducer
from jobqueue_worker.wire import BrokerSettings

pytestmark = pytest.mark.redis

T = TypeVar("T")


async def retrying(call: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
    """``call()`` until it succeeds: what an application does while a failover runs."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except (RedisError, MetricsUnavailableError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def cli_stats(url: str, queue: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobqueue_worker",
            "stats",
            "--redis-url",
            url,
            "-q",
            queue,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


async def test_producer_cli_and_operator_follow_a_failover(settled: SentinelTopology) -> None:
    url = settled.url
    conn = RedisConnection.model_validate(
        {
            "sentinel": {
                "addresses": [f"127.0.0.1:{p}" for p in settled.sentinel_ports],
                "masterName": MASTER_NAME,
            }
        }
    )
    pools = RedisPools()
    sync = SyncProducer(url, default_queue="ha")
    try:
        async with Producer(url, default_queue="ha") as producer:
            client = pools.client("ns/jq", endpoint_for(conn, None))
            for i in range(5):
                await producer.enqueue("noop", {"i": i})
            sync.enqueue("noop", {"i": "sync"})
            observed, _ = await read(client, ["ha"], display="ha", timeout_s=5)
            assert observed.depth == 6
            assert "ha" in json.dumps(cli_stats(url, "ha"))

            old = settled.master_port()
            assert old is not None
            settled.kill_master()
            new = settled.wait_failover(old, 30)
            assert new != old

            # The same objects, no restart: each reaches the promoted replica.
            await retrying(lambda: producer.enqueue("noop", {"i": "after"}))
            sync_id = await retrying(lambda: asyncio.to_thread(sync.enqueue, "noop", {"i": 2}))
            assert sync_id
            after, _ = await retrying(lambda: read(client, ["ha"], display="ha", timeout_s=5))
            # 6 before (replicated long before the kill) + 2 after; WAIT-free writes
            # acked right before a kill could be missing, but these were not.
            assert after.depth == 8
            assert '"ha"' in json.dumps(cli_stats(url, "ha"))
    finally:
        sync.close()
        await pools.close()


async def test_durable_enqueue_waits_for_replicas_and_says_when_it_cannot(
    settled: SentinelTopology,
) -> None:
    enough = BrokerSettings(durable_replicas=2, durable_timeout_ms=2000)
    async with Producer(settled.url, default_queue="durable", limits=enough) as producer:
        job_id = await producer.enqueue("noop")
        ids = await producer.enqueue_many([])
        assert ids == []
        assert await producer.status(job_id) is not None

    too_many = BrokerSettings(durable_replicas=3, durable_timeout_ms=300)
    async with Producer(settled.url, default_queue="durable", limits=too_many) as producer:
        started = time.monotonic()
        with pytest.raises(DurabilityError, match="2 of 3 replicas confirmed 1 job") as info:
            await producer.enqueue("noop")
        assert time.monotonic() - started >= 0.3  # it waited for the timeout
        (unconfirmed,) = info.value.job_ids
        assert await producer.status(unconfirmed) is not None  # on the master, not confirmed

    sync = SyncProducer(settled.url, default_queue="durable", limits=too_many)
    try:
        with pytest.raises(DurabilityError, match="2 of 3 replicas"):
            sync.enqueue("noop")
    finally:
        sync.close()


def test_cli_durable_enqueue(settled: SentinelTopology) -> None:
    def enqueue(replicas: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobqueue_worker", "enqueue", "noop", "-q", "cli",
             "--durable-replicas", str(replicas), "--durable-timeout", "0.3",
             "--redis-url", settled.url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    ok = enqueue(2)
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.split()) == 1
    short = enqueue(3)
    assert short.returncode == 1
    assert "durable enqueue: 2 of 3 replicas confirmed 1 job(s) within 300 ms" in short.stderr
    assert "Traceback" not in short.stderr


@pytest.fixture(scope="module")
def guarded() -> Iterator[SentinelTopology]:
    """Sentinel with passwords: the data nodes' and, a different one, the sentinels'."""
    topology = SentinelTopology(password="data-pw", sentinel_password="sentinel-pw")
    try:
        topology.start()
    except DevkitError as exc:
        topology.cleanup()
        pytest.fail(f"Sentinel topology with passwords did not start: {exc}", pytrace=False)
    yield topology
    topology.cleanup()


async def test_both_passwords_from_the_url_and_from_the_spec(guarded: SentinelTopology) -> None:
    async with Producer(guarded.url, default_queue="auth") as producer:
        await producer.enqueue("noop")
    no_sentinel_pw = guarded.url.split("?", 1)[0]
    async with Producer(no_sentinel_pw, default_queue="auth") as producer:
        with pytest.raises(RedisError):
            await producer.enqueue("noop")

    conn = RedisConnection.model_validate(
        {
            "sentinel": {
                "addresses": [f"127.0.0.1:{p}" for p in guarded.sentinel_ports],
                "masterName": MASTER_NAME,
                "passwordSecretRef": {"name": "sentinel-auth"},
            },
            "passwordSecretRef": {"name": "redis-auth"},
        }
    )
    assert secret_refs(conn) == {
        "password": ("redis-auth", "password"),
        "sentinel_password": ("sentinel-auth", "password"),
    }
    pools = RedisPools()
    try:
        secrets = {"sentinel_password": "sentinel-pw"}
        client = pools.client("ns/jq", endpoint_for(conn, "data-pw", secrets))
        observed, _ = await read(client, ["auth"], display="auth", timeout_s=5)
        assert observed.depth == 1
        wrong = pools.client("ns/wrong", endpoint_for(conn, "data-pw", {}))
        with pytest.raises(MetricsUnavailableError):
            await read(wrong, ["auth"], display="auth", timeout_s=5)
    finally:
        await pools.close()
