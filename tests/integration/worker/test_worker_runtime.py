"""Round trips per job, lease renewal while the loop is blocked, HTTP probes, CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from typer.testing import CliRunner

from jobqueue_protocol import keys
from jobqueue_protocol.clikit import CliError, ExitCode
from jobqueue_worker import cli
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]


async def _evalsha_calls(r: redis.asyncio.Redis) -> dict[str, int]:
    stats = await r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


@pytest.mark.parametrize(
    ("concurrency", "max_per_job", "limited"),
    [(1, 1.0, False), (8, 0.5, False), (1, 1.0, True), (8, 0.5, True)],
)
async def test_round_trips_per_job_at_steady_state(  # noqa: PLR0917 - fixtures + params
    redis_url: str,
    start_worker: StartWorker,
    until: Any,
    concurrency: int,
    max_per_job: float,
    limited: bool,
) -> None:
    n = 2000
    done: list[str] = []
    reg = Registry()

    @reg.job_type("noop")
    async def noop(job: Job) -> None:
        done.append(job.id)

    async with Producer(redis_url) as p:
        await p.enqueue_many([JobRequest(type="noop") for _ in range(n)])
    r = redis.asyncio.Redis.from_url(redis_url)
    before = await _evalsha_calls(r)
    # Long background intervals so what we count is the per-job traffic.
    # limited: three rate limits (never reached) and a per-type cap are checked in the
    # same step call, so the count must not change.
    extra: dict[str, Any] = (
        {
            "rate_limits": {"NOOP": "100000/second,1000000/minute:bucket,1000000/hour:fixed"},
            "type_concurrency": {"NOOP": concurrency},
        }
        if limited
        else {}
    )
    w = await start_worker(
        reg, concurrency=concurrency, heartbeat_interval_s=60, reap_interval_s=60, **extra
    )

    async def all_done() -> bool:
        return len(done) >= n

    await until(all_done, 60)
    await asyncio.sleep(0.2)  # the last ack
    after = await _evalsha_calls(r)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in delta.items() if v and k != "info"}
    per_job = w.step_calls / n
    print(
        f"\nconcurrency {concurrency}{' with limits + cap' if limited else ''}:"
        f" {w.step_calls} step calls for {n} jobs "
        f"= {per_job:.3f} round trips per job; Redis commands: {delta}"
    )
    assert per_job <= max_per_job + 0.01
    # Everything went through scripts (+ a handful of start-up reads and blocking waits).
    assert delta.get("evalsha", 0) + delta.get("eval", 0) <= w.step_calls + 20
    await r.aclose()


async def test_lease_survives_a_handler_that_blocks_the_event_loop(
    redis_url: str, spawn_worker: Any, reach: Any, until: Any
) -> None:
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("hog_loop", {"seconds": 8.0})
        a = spawn_worker("hog", lease_s=1.0)

        await reach(p, job_id, JobStatus.ACTIVE, 15)
        b = spawn_worker("bystander", lease_s=1.0)  # its reaper would steal an expired lease
        await until(b.started_or_gone, 20)
        await asyncio.sleep(1.5)  # over a lease: the bystander's reaper has looked
        rec = await p.status(job_id)
        # Else the job ended before the bystander could look, and proved nothing.
        assert rec is not None
        assert rec.status is JobStatus.ACTIVE, "the hog finished before the bystander started"

        rec = await reach(p, job_id, JobStatus.COMPLETED, 20)
        assert rec.deliveries == 1  # never reaped, never run twice
        assert rec.worker is not None
        assert rec.worker.startswith("hog:")
        r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        assert await r.hget(keys.counters_key("default"), "reaped") is None
        await r.aclose()
        for w in (a, b):
            w.proc.send_signal(signal.SIGTERM)
            assert w.proc.wait(15) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_http_probes_and_metrics(redis_url: str, start_worker: StartWorker) -> None:
    from jobqueue_worker import examples, http

    w = await start_worker(examples.registry)
    port = _free_port()
    runner = await http.start(w, "127.0.0.1", port)
    try:
        async with Producer(redis_url) as p:
            await p.enqueue("noop")
        await asyncio.sleep(0.7)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["heartbeat_fresh"] is True
            w.chores.last_ok -= 3600  # as if Redis had refused heartbeats for an hour
            async with s.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 503
            w.chores.last_ok += 3600
            async with s.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 200
            async with s.get(f"http://127.0.0.1:{port}/metrics") as resp:
                body = await resp.text()
                assert (
                    'jobqueue_jobs_total{outcome="completed",queue="default",type="noop"}' in body
                )
                assert "jobqueue_job_duration_seconds_bucket" in body
            w.draining = True  # what the first SIGTERM does
            async with s.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 503
    finally:
        await runner.cleanup()


def test_cli_enqueue_job_stats_and_dlq(redis_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"JQW_REDIS_URL": redis_url, "COLUMNS": "200"}
    res = runner.invoke(cli.app, ["enqueue", "noop", "--priority", "high", "--count", "3"], env=env)
    assert res.exit_code == 0, res.output
    ids = res.output.split()
    assert len(ids) == 3
    res = runner.invoke(cli.app, ["enqueue", "noop", "--priority", "11"], env=env)
    assert res.exit_code == 2
    res = runner.invoke(cli.app, ["stats"], env=env)
    assert res.exit_code == 0
    assert "default" in res.output
    assert "3:3" in res.output  # three waiting at priority 3
    res = runner.invoke(cli.app, ["job", ids[0]], env=env)
    assert res.exit_code == 0
    assert "queued" in res.output
    missing = runner.invoke(cli.app, ["job", "nope"], env=env).exception
    assert isinstance(missing, CliError)
    assert missing.code == ExitCode.FAILED

    async def make_dead() -> None:
        r = redis.asyncio.Redis.from_url(redis_url)
        await r.hset(
            keys.job_key("default", "d1"),
            mapping={
                "envelope": json.dumps({"id": "d1", "type": "noop", "queue": "default"}),
                "priority": 5,
                "status": "dead",
                "dead_reason": "exception",
                "error": "RuntimeError: x",
            },
        )
        await r.zadd(keys.dead_key("default"), {"d1": 1})
        await r.aclose()

    asyncio.run(make_dead())
    res = runner.invoke(cli.app, ["dlq", "list"], env=env)
    assert res.exit_code == 0
    assert "d1" in res.output
    assert "exception" in res.output
    res = runner.invoke(cli.app, ["dlq", "show", "d1"], env=env)
    assert "RuntimeError: x" in res.output
    assert runner.invoke(cli.app, ["dlq", "replay"], env=env).exit_code == 2
    res = runner.invoke(cli.app, ["dlq", "replay", "--reason", "exception"], env=env)
    assert "replayed 1" in res.output
    asyncio.run(make_dead())
    res = runner.invoke(cli.app, ["dlq", "purge", "--all"], env=env)
    # No terminal to ask at and no --yes: refused (the console script prints it, exit 2).
    assert isinstance(res.exception, CliError), res.output
    assert res.exception.code == ExitCode.USAGE
    assert "refusing to purge" in res.exception.message
    res = runner.invoke(cli.app, ["dlq", "purge", "--all", "--yes"], env=env)
    assert "purged 1" in res.output


def test_cli_worker_exits_at_start_naming_a_bad_setting(redis_url: str) -> None:
    res = CliRunner().invoke(
        cli.app, ["worker"], env={"JQW_REDIS_URL": redis_url, "JQW_LEASE_S": "-1"}
    )
    assert isinstance(res.exception, CliError), res.output
    assert res.exception.code == ExitCode.USAGE
    assert "JQW_LEASE_S" in res.exception.message
