"""The migrator's /healthz and /metrics, served by the real `jobqueue migrator` process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis

from jobqueue_devkit.ports import free_port
from jobqueue_devkit.waiting import eventually
from jobqueue_protocol import keys
from jobqueue_worker import pgstore
from jobqueue_worker.producer import JobRequest

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

ROWS = 25


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def test_the_migrator_reports_its_health_and_counts_the_rows_it_moves(
    pg_dsn: str,
    redis_url: str,
    spawn: Callable[..., Any],
    migrator_env: Callable[[str, str], dict[str, Any]],
) -> None:
    port = free_port()
    proc = spawn(
        "migrator",
        "--poll-interval-s",
        "0.2",
        "--http-port",
        str(port),
        "--http-host",
        "127.0.0.1",
        env=migrator_env(redis_url, pg_dsn),
    )

    async def serving() -> bool:
        assert proc.proc.poll() is None, proc.output()
        try:
            return get(port, "/healthz")[0] == 200
        except OSError:
            return False

    await eventually(serving, 30, interval_s=0.1)
    status, body = get(port, "/metrics")
    assert status == 200
    assert metric(body, "jobqueue_migrator_rows_migrated_total") == 0

    with psycopg.connect(pg_dsn) as conn, conn.transaction():
        pgstore.enqueue_many(conn, [JobRequest(type="noop") for _ in range(ROWS)])

    async def counted() -> bool:
        return metric(get(port, "/metrics")[1], "jobqueue_migrator_rows_migrated_total") == ROWS

    await eventually(counted, 30, interval_s=0.1)
    text = get(port, "/metrics")[1]
    assert metric(text, "jobqueue_migrator_batches_total") == 1
    assert metric(text, "jobqueue_migrator_errors_total") == 0
    age = metric(text, "jobqueue_migrator_last_pass_age_seconds")
    assert age is not None
    assert age < 5
    r = redis.Redis.from_url(redis_url)
    try:
        waiting = sum(int(r.zcard(k)) for k in keys.ready_keys("default"))
    finally:
        r.close()
    assert waiting == ROWS
    status, body = get(port, "/healthz")
    assert status == 200
    assert json.loads(body)["ok"] is True
    assert get(port, "/readyz")[0] == 404  # it takes no traffic: no readiness to report
    assert proc.stop() == 0
