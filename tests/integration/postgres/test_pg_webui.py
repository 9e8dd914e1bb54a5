"""The web UI's PostgreSQL history: every attempt on the job page, finished jobs on the
Jobs page, and a history that cannot be read is one line on the page, never the DSN."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from starlette.testclient import TestClient

from jobqueue_web.app import create_app
from jobqueue_web.config import WebConfig
from jobqueue_worker import pgstore
from jobqueue_worker.pgevents import JobEvent
from jobqueue_worker.pgstore import AsyncStore

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _client(redis_url: str, dsn: str) -> Iterator[TestClient]:
    config = WebConfig(
        redis_url=redis_url, queues=("mail", "other"), kube_enabled=False, postgres_dsn=dsn
    )
    with TestClient(create_app(config), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
async def two_jobs(pg_dsn: str) -> tuple[str, str]:
    with psycopg.connect(pg_dsn) as conn:
        job_id = pgstore.enqueue(conn, "fail_n_times", {"n": 1, "password": "pw"}, queue="mail")
        other = pgstore.enqueue(conn, "noop", queue="other")
    store = AsyncStore(pg_dsn)
    await store.write_events(
        [
            JobEvent(job_id, 1, "running", "w1:7", 100.0, 100.0),
            JobEvent(
                job_id,
                1,
                "retry_scheduled",
                "w1:7",
                101.0,
                100.0,
                "RuntimeError: x",
                42,
                'Traceback (most recent call last):\n  File "h.py", line 3\nRuntimeError: <x>',
            ),
            JobEvent(job_id, 2, "running", "w2:9", 102.0, 102.0),
            JobEvent(job_id, 2, "completed", "w2:9", 103.0, 102.0, None, 17),
        ]
    )
    await store.close()
    return job_id, other


def test_job_page_lists_every_attempt_and_jobs_page_the_finished(
    redis_url: str, pg_dsn: str, two_jobs: tuple[str, str]
) -> None:
    job_id, other = two_jobs
    for client in _client(redis_url, pg_dsn):
        page = client.get(f"/jobs/mail/{job_id}")
        assert page.status_code == 200
        rows = re.findall(r'<tr data-attempt="(\d)">(.*?)</tr>', page.text, re.S)
        assert [n for n, _ in rows] == ["1", "2"]
        assert "<td>failed</td>" in rows[0][1]
        assert "RuntimeError: x" in rows[0][1]
        assert "w1:7" in rows[0][1]
        # the first attempt's traceback, escaped, though a later attempt succeeded
        assert "line 3\nRuntimeError: &lt;x&gt;</pre>" in rows[0][1]
        assert "Traceback" not in rows[1][1]
        assert "completed" in rows[1][1]
        assert "w2:9" in rows[1][1]
        listed = client.get("/jobs?queue=mail&hstatus=completed")
        assert job_id in listed.text
        assert other not in listed.text
        assert client.get("/jobs?queue=mail&hstatus=nonsense").text.count("history status") == 1


def test_an_unreadable_history_is_one_line_without_the_dsn(
    redis_url: str, two_jobs: tuple[str, str]
) -> None:
    dsn = "postgresql://web:s3cretpw@127.0.0.1:1/nowhere?connect_timeout=2"
    for client in _client(redis_url, dsn):
        page = client.get("/jobs?queue=mail")
        assert page.status_code == 200
        assert "PostgreSQL history unavailable" in page.text
        assert "s3cretpw" not in page.text
