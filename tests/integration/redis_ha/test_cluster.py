"""Queues spread over a real Redis Cluster (3 masters, 3 replicas).

Every key of a queue shares the queue's hash tag, so each script call stays in
one slot; queues themselves land on different shards. One pool of two worker
processes, each serving all three queues (one fetch call per queue), drains
queues on all three shards; the operator and the CLI read them all; a shard
master killed mid-run is replaced by its replica without any client restarting.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from jobqueue_devkit.redis_cluster import RedisClusterNodes
from jobqueue_operator.observe import RedisPools, read
from jobqueue_operator.ports import MetricsUnavailableError
from jobqueue_operator.redis_endpoint import endpoint_for
from jobqueue_operator.redis_spec import RedisConnection
from jobqueue_protocol import keys
from jobqueue_worker.broker import DurabilityError
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.wire import BrokerSettings

pytestmark = [pytest.mark.redis, pytest.mark.slow]

JOBS_PER_QUEUE = 1000


def queues_on_every_shard(cluster: RedisClusterNodes) -> dict[int, str]:
    """One queue name per master port."""
    found: dict[int, str] = {}
    for i in range(200):
        name = f"shard-q{i}"
        found.setdefault(cluster.master_port_for(keys.queue_prefix(name)), name)
        if len(found) == len(cluster.master_ports()):
            return found
    raise AssertionError(f"no queue names on every shard: {found}")


def _ledger_counts(ledger: Path, field: int) -> collections.Counter[str]:
    if not ledger.exists():
        return collections.Counter()
    return collections.Counter(line.split()[field] for line in ledger.read_text().splitlines())


def runs(ledger: Path) -> collections.Counter[str]:
    """Runs per job id (the ledger's first field)."""
    return _ledger_counts(ledger, 0)


def workers_in(ledger: Path) -> collections.Counter[str]:
    """Jobs run per worker process (the ledger's second field is the pid)."""
    return _ledger_counts(ledger, 1)


async def depths(client: object, queues: list[str]) -> dict[str, int]:
    _, per_queue = await read(client, queues, display="cluster", timeout_s=5)  # type: ignore[arg-type]
    return {q: s.waiting for q, s in per_queue.items()}


async def test_queues_on_three_shards_one_pool_and_a_shard_failover(
    cluster: RedisClusterNodes, spawn_worker, tmp_path: Path
) -> None:
    shards = queues_on_every_shard(cluster)
    queues = sorted(shards.values())
    url = cluster.url
    ledger = tmp_path / "ledger"
    async with Producer(url) as producer:
        ids = await producer.enqueue_many(
            [
                JobRequest(type="record", queue=q, payload={"ledger": str(ledger)})
                for q in queues
                for _ in range(JOBS_PER_QUEUE)
            ]
        )
    assert len(ids) == 3 * JOBS_PER_QUEUE
    await asyncio.sleep(1.0)  # asynchronous replication catches up before any kill

    pools = RedisPools()
    conn = RedisConnection.model_validate({"url": url})
    client = pools.client("ns/jq", endpoint_for(conn, None))
    try:
        assert await depths(client, queues) == dict.fromkeys(queues, JOBS_PER_QUEUE)
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "jobqueue_worker", "stats", "--redis-url", url,
             "-q", ",".join(queues), "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        stats = json.loads(cli.stdout)
        assert all(q in json.dumps(stats) for q in queues)

        # One pool: every worker serves all three queues, which live on three shards.
        workers = [
            spawn_worker(
                url,
                f"w{i}",
                queues=",".join(queues),
                concurrency=10,
                lease_s=2.0,
                reap_interval_s=0.5,
                heartbeat_interval_s=1.0,
                idle_block_s=0.5,
                http_port=0,
            )
            for i in range(2)
        ]
        total = 3 * JOBS_PER_QUEUE
        started = time.monotonic()
        # The kill waits for both workers to have run jobs: a worker that first
        # reaches Redis after the kill backs off until the failover, which is not
        # what this test is about (the other one may drain everything meanwhile).
        while len(runs(ledger)) < total // 3 or len(workers_in(ledger)) < 2:
            assert time.monotonic() - started < 120, f"runs by worker: {workers_in(ledger)}"
            await asyncio.sleep(0.05)
        victim = next(iter(shards))  # the master of the first queue's shard
        cluster.kill(victim)
        killed_at = time.monotonic()

        deadline = time.monotonic() + 180
        while not all(i in runs(ledger) for i in ids):
            assert time.monotonic() < deadline, f"{total - len(runs(ledger))} jobs never ran"
            await asyncio.sleep(0.2)
        drained_s = time.monotonic() - killed_at

        # The operator's client (not recreated) reads every shard again.
        while True:
            try:
                after = await depths(client, queues)
                break
            except (MetricsUnavailableError, RedisError):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        assert after == dict.fromkeys(queues, 0)
    finally:
        await pools.close()
    for w in workers:
        assert w.proc.poll() is None, w.output()
    per_worker = workers_in(ledger)
    assert len(per_worker) == 2  # both processes took part
    counts = runs(ledger)
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= 2 * 10 * 2, duplicates  # what the workers could hold at the kill
    print(
        f"\ncluster: {total} jobs on 3 shards, shard master killed, all ran;"
        f" {duplicates} duplicate runs; drained {drained_s:.1f} s after the kill"
    )


async def test_startup_check_reads_every_master(cluster: RedisClusterNodes) -> None:
    """An evicting master is named; the others are not blamed."""
    import redis as sync_redis

    from jobqueue_protocol.redis_connect import async_client
    from jobqueue_protocol.redis_health import startup_warnings_async
    from jobqueue_protocol.redis_url import parse_redis_url

    port = min(cluster.master_ports())
    admin = sync_redis.Redis(port=port)
    admin.config_set("maxmemory-policy", "allkeys-lru")
    client = async_client(parse_redis_url(cluster.url), decode_responses=True)
    try:
        warnings = await startup_warnings_async(client)
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
        await client.aclose()
    evicting = [w for w in warnings if "allkeys-lru" in w]
    assert len(evicting) == 1, warnings
    assert f"cluster node 127.0.0.1:{port}" in evicting[0]


async def test_durable_enqueue_survives_a_shard_failover(cluster: RedisClusterNodes) -> None:
    """WAIT goes to each queue's own master; a shard master killed mid-run loses no ack."""
    cluster.revive()  # an earlier test killed a master: every shard has a replica again
    queues = sorted(queues_on_every_shard(cluster).values())
    url = cluster.url
    async with Producer(
        url, limits=BrokerSettings(durable_replicas=2, durable_timeout_ms=200)
    ) as p:
        with pytest.raises(DurabilityError, match="1 of 2 replicas confirmed"):
            await p.enqueue("noop", queue=queues[0])

    jobs, batch = 6000, 60
    acked: dict[str, str] = {}
    limits = BrokerSettings(durable_replicas=1, durable_timeout_ms=2000)

    async def produce() -> int:
        errors = 0
        async with Producer(url, limits=limits) as producer:
            for start in range(0, jobs, batch):
                reqs = [
                    JobRequest(type="noop", queue=queues[i % 3], id=f"d{i:06d}")
                    for i in range(start, start + batch)
                ]
                while True:
                    try:
                        await producer.enqueue_many(reqs)
                        break
                    except (RedisError, DurabilityError, OSError):
                        errors += 1
                        await asyncio.sleep(0.05)
                for r in reqs:
                    assert r.id is not None
                    assert r.queue is not None
                    acked[r.id] = r.queue
        return errors

    task = asyncio.create_task(produce())
    started = time.monotonic()
    while len(acked) < jobs // 2:
        assert time.monotonic() - started < 120, "the producer made no progress"
        assert not task.done() or task.exception() is None
        await asyncio.sleep(0.01)
    victim = cluster.master_port_for(keys.queue_prefix(queues[0]))
    cluster.kill(victim)
    while cluster.master_port_for(keys.queue_prefix(queues[0])) == victim:
        assert time.monotonic() - started < 180, "the replica was never promoted"
        await asyncio.sleep(0.1)
    # The promoted replica has no replica of its own until the old master comes back:
    # until then WAIT 1 cannot be met and the producer keeps retrying, as it should.
    await asyncio.to_thread(cluster.revive, 90)
    errors = await asyncio.wait_for(task, 300)

    lost = []
    async with Producer(url) as reader:
        for job_id, queue in acked.items():
            if await reader.status(job_id, queue) is None:
                lost.append(job_id)
    assert lost == [], f"{len(lost)} acked durable enqueues lost"
    print(f"\ncluster durable enqueue: {jobs} acked, 0 lost, {errors} retries during failover")


async def test_dlq_purge_runs_as_a_transaction_on_the_queue_master(
    cluster: RedisClusterNodes,
) -> None:
    from jobqueue_worker.broker import Broker

    queue = "purge-q"
    broker = Broker(cluster.url)
    try:
        for i in range(3):
            await broker.redis.hset(keys.job_key(queue, f"x{i}"), mapping={"status": "dead"})
            await broker.redis.zadd(keys.dead_key(queue), {f"x{i}": i})
        assert await broker.purge(queue, ["x0", "x1"]) == 2
        assert await broker.redis.zrange(keys.dead_key(queue), 0, -1) == ["x2"]
        assert await broker.job(queue, "x0") is None
        assert await broker.job(queue, "x2") is not None
    finally:
        await broker.close()
