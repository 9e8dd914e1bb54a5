"""`jobqueue job`, `history` and `db prune` read and prune the real rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from jobqueue_worker import pgstore
from jobqueue_worker.pgevents import JobEvent
from jobqueue_worker.pgstore import AsyncStore
from jobqueue_worker.producer import JobRequest

pytestmark = [pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[3]


def jobqueue(dsn: str, *args: str, redis_url: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JQW_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "worker-image"), str(REPO / "worker-image/protocol")]
        ),
        "JQW_POSTGRES_DSN": dsn,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "jobqueue_worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.redis
async def test_job_and_history_show_status_attempts_and_errors(pg_dsn: str, redis_url: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        job_id = pgstore.enqueue(conn, "fail_n_times", {"n": 1}, queue="mail")
        other = pgstore.enqueue(conn, "noop", queue="other")
    store = AsyncStore(pg_dsn)
    await store.write_events(
        [
            JobEvent(job_id, 1, "running", "w1:7", 100.0, 100.0),
            JobEvent(job_id, 1, "retry_scheduled", "w1:7", 101.0, 100.0, "RuntimeError: x", 42),
            JobEvent(job_id, 2, "running", "w2:9", 102.0, 102.0),
            JobEvent(job_id, 2, "completed", "w2:9", 103.0, 102.0, None, 17),
        ]
    )
    await store.close()
    shown = jobqueue(pg_dsn, "job", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "(PostgreSQL)" in shown.stdout
    assert "completed" in shown.stdout
    assert "RuntimeError: x" in shown.stdout
    assert "w1:7" in shown.stdout
    assert "w2:9" in shown.stdout
    listed = jobqueue(pg_dsn, "history", "--queue", "mail")
    assert listed.returncode == 0, listed.stderr
    assert job_id in listed.stdout
    assert other not in listed.stdout
    missing = jobqueue(pg_dsn, "job", "no-such-job", "--queue", "default", redis_url=redis_url)
    assert missing.returncode == 1  # not in PostgreSQL, then not in Redis either
    assert "job no-such-job not found in default" in missing.stderr


def test_prune_deletes_old_finished_rows_in_batches_and_never_open_ones(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        ids = pgstore.enqueue_many(conn, [JobRequest(type="noop") for _ in range(7)])
        old, recent, open_old = ids[:5], ids[5], ids[6]
        conn.execute(
            "UPDATE jobs SET status = 'completed', updated_at = now() - interval '8 days'"
            " WHERE id = ANY(%s)",
            (old,),
        )
        conn.execute("UPDATE jobs SET status = 'completed' WHERE id = %s", (recent,))
        conn.execute(
            "UPDATE jobs SET status = 'running', updated_at = now() - interval '90 days'"
            " WHERE id = %s",
            (open_old,),
        )
        conn.execute(
            "INSERT INTO job_attempts (job_id, attempt, outcome) VALUES (%s, 1, 'completed')",
            (old[0],),
        )
    pruned = jobqueue(pg_dsn, "db", "prune", "--batch", "2")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 5 rows" in pruned.stdout
    with psycopg.connect(pg_dsn) as conn:
        left = {r[0] for r in conn.execute("SELECT id FROM jobs")}
        attempts = conn.execute("SELECT count(*) FROM job_attempts").fetchone()
    assert left == {recent, open_old}
    assert attempts == (0,)
    bad = jobqueue(pg_dsn, "db", "prune", "--status", "running")
    assert bad.returncode == 2
    assert "only finished statuses can be pruned" in bad.stderr
