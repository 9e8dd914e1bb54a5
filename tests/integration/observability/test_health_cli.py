"""``jobqueue health`` on the real Redis fixture, through typer's CliRunner on a tiny
app that registers the command exactly as ``jobqueue_worker.cli`` does (``register(app)``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import typer
from typer.testing import CliRunner

from jobqueue_devkit.redis_server import RedisServer
from jobqueue_protocol.stats import WorkerHeartbeat, heartbeat_json
from jobqueue_worker.broker import Broker
from jobqueue_worker.cli.health import redact, register
from jobqueue_worker.producer import JobRequest, SyncProducer

pytestmark = pytest.mark.redis


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A group, so ``health`` stays a subcommand as in the real ``jobqueue`` app."""

    register(app)
    return app


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["health", *args], env={"COLUMNS": "250"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out = _invoke(*args, "--json")
    return code, json.loads(out)


def _fill(url: str, queue: str, n: int) -> None:
    producer = SyncProducer(url, default_queue=queue)
    try:
        producer.enqueue_many([JobRequest(type="noop", queue=queue) for _ in range(n)])
    finally:
        producer.close()


def _beat(url: str, queue: str, state: str = "idle") -> None:
    """A live worker, through the worker's own heartbeat script."""

    async def go() -> None:
        b = Broker(url)
        try:
            hb = WorkerHeartbeat(
                worker_id="w-1",
                state=state,
                seen_at=0.0,
                active_jobs=0,
                jobs=(),
                started_at=time.time(),
                rss_bytes=40_000_000,
                processed=0,
                failed=0,
                mean_processing_s=0.0,
                pod_name="pod-1",
            )
            await b.heartbeat([queue], "w-1", heartbeat_json(hb), stale_s=120)
        finally:
            await b.close()

    asyncio.run(go())


def test_empty_queue_on_a_safe_redis_is_healthy(redis_url: str) -> None:
    code, data = _json("--redis-url", redis_url, "-q", "idle")
    assert code == 0, data
    assert data["level"] == "healthy"
    assert data["redis"]["findings"] == []
    assert data["redis"]["facts"]["maxmemory_policy"] == "noeviction"
    (q,) = data["queues"]
    assert (q["queue"], q["level"], q["waiting"], q["reasons"]) == ("idle", "healthy", 0, [])


def test_each_queue_gets_its_own_verdict_and_the_worst_sets_the_exit_code(redis_url: str) -> None:
    _fill(redis_url, "busy", 250)
    _beat(redis_url, "busy")
    _fill(redis_url, "orphan", 3)
    code, data = _json("--redis-url", redis_url, "-q", "busy,orphan", "-q", "idle")
    assert code == 2
    by_name = {q["queue"]: q for q in data["queues"]}
    assert list(by_name) == ["busy", "orphan", "idle"]
    busy = by_name["busy"]
    assert busy["level"] == "warning"
    assert [r["code"] for r in busy["reasons"]] == ["depth"]
    assert busy["waiting"] == 250
    assert busy["waiting_by_priority"]["5"] == 250
    assert busy["workers_alive"] == 1
    assert busy["workers"][0]["pod_name"] == "pod-1"
    assert busy["counters_total"]["enqueued"] == 250
    orphan = by_name["orphan"]
    assert orphan["level"] == "critical"
    assert [r["code"] for r in orphan["reasons"]] == ["no_workers"]
    assert by_name["idle"]["level"] == "healthy"


def test_thresholds_are_options(redis_url: str) -> None:
    _fill(redis_url, "small", 6)
    _beat(redis_url, "small")
    code, data = _json("--redis-url", redis_url, "-q", "small", "--depth-warning", "5")
    assert code == 1
    assert data["queues"][0]["reasons"][0]["message"] == "6 jobs waiting (>= 5)"
    code, out = _invoke("--redis-url", redis_url, "--depth-warning", "9", "--depth-critical", "3")
    assert code == 2
    assert "warning <= critical" in out


def test_sample_window_counts_recent_jobs(redis_url: str) -> None:
    import threading

    timer = threading.Timer(0.3, _fill, (redis_url, "live", 4))
    timer.start()
    try:
        code, data = _json("--redis-url", redis_url, "-q", "live", "--sample", "1")
    finally:
        timer.join()
    recent = data["queues"][0]["recent"]
    assert recent == {
        "window_s": 1.0,
        "enqueued": 4,
        "completed": 0,
        "failed": 0,
        "retried": 0,
        "dead": 0,
    }
    assert code == 2  # four jobs and no worker


def test_the_table_names_queues_levels_and_reasons(redis_url: str) -> None:
    _fill(redis_url, "orphan", 2)
    code, out = _invoke("--redis-url", redis_url, "-q", "orphan")
    assert code == 2
    for text in ("Redis", "noeviction", "orphan", "critical", "no live worker while 2 jobs wait"):
        assert text in out, text


@pytest.fixture
def unsafe_redis() -> Iterator[RedisServer]:
    server = RedisServer(appendonly=False)
    server.start()
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.close()
    yield server
    server.cleanup()


def test_redis_findings_make_the_verdict_warning(unsafe_redis: RedisServer) -> None:
    code, data = _json("--redis-url", unsafe_redis.url, "-q", "q")
    assert code == 1
    assert data["redis"]["level"] == "warning"
    assert {f["code"] for f in data["redis"]["findings"]} == {"eviction_policy", "no_persistence"}
    assert data["queues"][0]["level"] == "healthy"


def test_unreachable_redis_is_critical(unsafe_redis: RedisServer) -> None:
    url = unsafe_redis.url
    unsafe_redis.stop()
    code, data = _json("--redis-url", url)
    assert code == 2
    assert data["redis"]["reachable"] is False
    assert data["redis"]["findings"][0]["code"] == "unreachable"
    assert data["queues"] == []


def test_passwords_never_reach_the_output() -> None:
    assert redact("redis://app:s3cret@redis:6379/0") == "redis://app:***@redis:6379/0"
    assert redact("rediss://:s3cret@redis/1") == "rediss://:***@redis/1"
    assert redact("redis://redis:6379/0") == "redis://redis:6379/0"
