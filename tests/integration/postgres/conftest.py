"""A real PostgreSQL server (Debian's) for the durable-records tests, plus helpers.

One server per run; every test gets its own database (``pg_dsn``, schema
upgraded; ``pg_empty_dsn``, no schema). ``spawn`` runs the real ``jobqueue``
processes (worker, migrator) for kill -9 tests and stops them after the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.postgres_server import PostgresServer
from jobqueue_worker import pgstore

REPO = Path(__file__).resolve().parents[3]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

FAST_WORKER = {
    "http_port": 0,
    "lease_s": 2.0,
    "reap_interval_s": 0.5,
    "heartbeat_interval_s": 0.5,
    "idle_block_s": 0.5,
}


def start_postgres() -> PostgresServer:
    server = PostgresServer()
    try:
        return server.start()
    except DevkitError as exc:
        server.cleanup()
        message = f"PostgreSQL unavailable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing service fails the run)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.cleanup()


def _fresh_db(server: PostgresServer) -> tuple[str, str]:
    if server.process is None or server.process.poll() is not None:
        server.start()  # a test that stopped it must not break the next one
    name = f"t_{uuid.uuid4().hex[:12]}"
    return name, server.create_database(name)


@pytest.fixture
def pg_empty_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    name, dsn = _fresh_db(postgres_server)
    yield dsn
    postgres_server.drop_database(name)


@pytest.fixture
def pg_dsn(pg_empty_dsn: str) -> str:
    pgstore.upgrade(pg_empty_dsn)
    return pg_empty_dsn


def _rows_by_status(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            str(s): int(n)
            for s, n in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status")
        }


class Proc:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """``spawn("worker", env={...})`` or ``spawn("migrator", "--batch", "100", env=...)``."""
    procs: list[Proc] = []

    def run(command: str, *args: str, env: dict[str, Any], name: str = "") -> Proc:
        full_env = {
            **os.environ,
            "JQW_HANDLERS": "jobqueue_worker.examples",
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "worker-image"), str(REPO / "worker-image/protocol")]
            ),
            "PYTHONFAULTHANDLER": "1",
            **{k: str(v) for k, v in env.items()},
        }
        log = tmp_path / f"{name or command}-{len(procs)}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobqueue_worker", command, *args],
                env=full_env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        p = Proc(proc, log)
        procs.append(p)
        return p

    yield run
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)


def _worker_env(redis_url: str, dsn: str | None, pod: str, **settings: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"JQW_REDIS_URL": redis_url, "POD_NAME": pod}
    if dsn is not None:
        env["JQW_POSTGRES_DSN"] = dsn
    for k, v in {**FAST_WORKER, **settings}.items():
        env[f"JQW_{k.upper()}"] = v
    return env


def _migrator_env(redis_url: str, dsn: str) -> dict[str, Any]:
    return {"JQW_REDIS_URL": redis_url, "JQW_POSTGRES_DSN": dsn}


# importlib mode keeps test modules from importing conftest: helpers are fixtures.
@pytest.fixture
def rows_by_status() -> Callable[[str], dict[str, int]]:
    """``rows_by_status(dsn)`` → {status: row count}."""
    return _rows_by_status


@pytest.fixture
def worker_env() -> Callable[..., dict[str, Any]]:
    """``worker_env(redis_url, dsn_or_None, pod, **settings)`` → the worker's environment."""
    return _worker_env


@pytest.fixture
def migrator_env() -> Callable[[str, str], dict[str, Any]]:
    return _migrator_env


@pytest.fixture
def private_postgres() -> Iterator[tuple[PostgresServer, str]]:
    """A server of the test's own, for tests that stop or restart it; its DSN has the schema."""
    server = start_postgres()
    try:
        dsn = server.create_database("jobs")
        pgstore.upgrade(dsn)
        yield server, dsn
    finally:
        server.cleanup()
