"""Log lines of the real worker process, in both formats, with secrets in its configuration.

The worker runs as ``jobqueue worker`` (the console script) against the real
Redis fixture, logged in through an ACL user whose password is in the Redis
URL; a handler module of the test's own fails with a connection string in its
exception and logs a password field. Nothing secret may reach the output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cli_harness import BIN

from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import SyncProducer

pytestmark = pytest.mark.redis

REDIS_PW = "s3cr3t-redis-pw"
DB_PW = "db-pw-123"
HANDLERS = textwrap.dedent(
    f'''
    import logging, os
    from jobqueue_worker import Registry, PermanentError

    registry = Registry()
    log = logging.getLogger("leaky")

    @registry.job_type("connect")
    async def connect(job):
        log.warning("using %s", os.environ["JQW_REDIS_URL"], extra={{"db_password": "{DB_PW}"}})
        raise PermanentError("could not connect to postgres://app:{DB_PW}@db:5432/app")
    '''
)


@pytest.fixture
def secret_url(redis_url: str) -> Iterator[str]:
    """The fixture's Redis through an ACL user with a password (the default user is untouched)."""
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("jqtest", enabled=True, passwords=[f"+{REDIS_PW}"], keys=["*"],
                      channels=["*"], commands=["+@all"])  # fmt: skip
    try:
        yield redis_url.replace("redis://", f"redis://jqtest:{REDIS_PW}@")
    finally:
        admin.acl_deluser("jqtest")
        admin.close()


def _run_worker(secret_url: str, tmp_path: Path, log_format: str) -> str:
    (tmp_path / "leaky_handlers.py").write_text(HANDLERS)
    producer = SyncProducer(secret_url)
    job_id = producer.enqueue("connect", {"card": "4111-1111"})
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JQW_")},
        "PYTHONPATH": str(tmp_path),
        "JQW_REDIS_URL": secret_url,
        "JQW_HANDLERS": "leaky_handlers",
        "JQW_HTTP_PORT": "0",
        "JQW_LOG_FORMAT": log_format,
        "JQW_LOG_LEVEL": "DEBUG",
        "SMTP_PASSWORD": "smtp-pw-456",
    }
    log = tmp_path / f"worker-{log_format}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "jobqueue"), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rec = producer.status(job_id)
            if rec is not None and rec.status is JobStatus.DEAD:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the job never died:\n{log.read_text()}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        producer.close()
    text = log.read_text()
    for secret in (REDIS_PW, DB_PW, "smtp-pw-456", "4111-1111"):
        assert secret not in text, f"{secret!r} leaked into the {log_format} log:\n{text}"
    return text


def test_json_logs_carry_the_job_fields_and_no_secret(secret_url: str, tmp_path: Path) -> None:
    text = _run_worker(secret_url, tmp_path, "json")
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    failed = next(r for r in records if r.get("job_type") == "connect" and r["level"] == "ERROR")
    assert (failed["queue"], failed["attempt"]) == ("default", 1)
    assert failed["job_id"]
    assert "could not connect to postgres://app:***@db:5432/app" in failed["exc"]
    leaky = next(r for r in records if r["logger"] == "leaky")
    assert leaky["db_password"] == "***"
    assert leaky["msg"] == f"using {secret_url.replace(REDIS_PW, '***')}"
    assert leaky["job_id"] == failed["job_id"], "a handler's own lines carry the job too"


def test_text_logs_carry_the_same_fields_and_no_secret(secret_url: str, tmp_path: Path) -> None:
    text = _run_worker(secret_url, tmp_path, "text")
    assert not text.lstrip().startswith("{")
    failed = next(line for line in text.splitlines() if " ERROR " in line and "connect" in line)
    assert "job_type=connect" in failed
    assert "attempt=1" in failed
    assert "db_password=***" in text
