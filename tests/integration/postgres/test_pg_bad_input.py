"""Bad input gets a one-line error that names the problem; nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from jobqueue_devkit.postgres_server import PostgresServer
from jobqueue_worker import examples, pgschema, pgstore
from jobqueue_worker.errors import ConfigError, EnqueueError
from jobqueue_worker.runtime import Worker
from jobqueue_worker.settings import load

pytestmark = [pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[3]


def jobqueue(*args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "worker-image"), str(REPO / "worker-image/protocol")]
        ),
        "COLUMNS": "80",
    }
    env.pop("JQW_POSTGRES_DSN", None)
    if dsn is not None:
        env["JQW_POSTGRES_DSN"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "jobqueue_worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


@pytest.mark.parametrize("args", [("db", "upgrade"), ("history",), ("migrator",), ("job", "abc")])
def test_a_dsn_that_does_not_parse(args: tuple[str, ...]) -> None:
    proc = jobqueue(*args, dsn="host=127.0.0.1 port")
    assert proc.returncode != 0
    line = one_line_error(proc)
    assert "JQW_POSTGRES_DSN does not parse" in line


def test_a_worker_with_an_unparsable_dsn_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="JQW_POSTGRES_DSN does not parse"):
        Worker(load(postgres_dsn="not a dsn", http_port=0), examples.registry)


def test_a_wrong_password(postgres_server: PostgresServer, pg_dsn: str) -> None:
    dbname = pg_dsn.rsplit("/", 1)[1]
    bad = postgres_server.dsn(dbname, password="not-the-password")
    for args in (("history",), ("migrator",), ("db", "upgrade")):
        proc = jobqueue(*args, dsn=bad)
        assert proc.returncode == 3, args  # UNREACHABLE: the server refused the login
        line = one_line_error(proc)
        assert "password authentication failed" in line, args
        assert "not-the-password" not in line


def test_a_database_without_the_schema(pg_empty_dsn: str) -> None:
    for args in (("history",), ("migrator",), ("job", "abc"), ("db", "prune")):
        proc = jobqueue(*args, dsn=pg_empty_dsn)
        assert proc.returncode != 0, args
        assert "run `jobqueue db upgrade`" in one_line_error(proc), args
    with (
        psycopg.connect(pg_empty_dsn) as conn,
        pytest.raises(pgstore.SchemaMissingError, match=r"run `jobqueue db upgrade`"),
    ):
        pgstore.enqueue(conn, "noop")
    proc = jobqueue("db", "upgrade", dsn=pg_empty_dsn)
    assert proc.returncode == 0, proc.stderr
    assert f"upgraded from nothing to {pgschema.LATEST}" in proc.stdout
    assert jobqueue("history", dsn=pg_empty_dsn).returncode == 0


def test_a_payload_too_large_is_refused_and_the_transaction_goes_on(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        with conn.transaction():
            with pytest.raises(EnqueueError, match=r"over the 1000000-byte limit") as info:
                pgstore.enqueue(conn, "noop", {"blob": "x" * 1_100_000})
            assert "\n" not in str(info.value)
            kept = pgstore.enqueue(conn, "noop", {"small": True})
        rows = conn.execute("SELECT id FROM jobs").fetchall()
    assert rows == [(kept,)]
