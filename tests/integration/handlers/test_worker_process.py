"""The shipped job types in a real ``jobqueue worker`` process, on the real Redis fixture.

``JQW_HANDLERS=jobqueue_worker.handlers`` is the way a user runs them; these tests
prove that path: settings validated at start, and a webhook that first fails
(503 with ``Retry-After: 0``) retried through Redis's delayed set to success.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from handler_servers import SECRET, Receiver, SmtpSink

from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer

pytestmark = pytest.mark.redis


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JQW_", "WEBHOOK_", "SMTP_", "EMAIL_"))
    }
    env.update(extra)
    return env


def test_missing_settings_stop_the_worker_at_start() -> None:
    # Unreachable Redis on purpose: the error must come before any connection attempt.
    proc = subprocess.run(
        [sys.executable, "-m", "jobqueue_worker", "worker"],
        env=_env(JQW_HANDLERS="jobqueue_worker.handlers", JQW_REDIS_URL="redis://127.0.0.1:1/0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "WEBHOOK_SIGNING_SECRET" in proc.stdout + proc.stderr


async def _wait_done(producer: Producer, job_id: str, queue: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    record = None
    while time.monotonic() < deadline:
        record = await producer.status(job_id, queue)
        if record is not None and record.status in (JobStatus.COMPLETED, JobStatus.DEAD):
            return record
        await asyncio.sleep(0.1)  # also lets the in-test aiohttp receiver answer
    raise AssertionError(f"job {job_id} not finished in {timeout_s} s: {record}")


async def test_worker_runs_webhook_and_email_jobs(
    redis_url: str, receiver: Receiver, smtp_sink: SmtpSink
) -> None:
    receiver.respond("/orders", (503, {"Retry-After": "0"}, 0.0), (200, {}, 0.0))
    env = _env(
        JQW_HANDLERS="jobqueue_worker.handlers",
        JQW_REDIS_URL=redis_url,
        JQW_QUEUES="hooks,email",
        JQW_HTTP_PORT="0",
        WEBHOOK_SIGNING_SECRET=SECRET,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=str(smtp_sink.port),
        SMTP_STARTTLS="false",
        EMAIL_FROM="no-reply@shop.example",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobqueue_worker",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with Producer(redis_url) as producer:
            hook_id = await producer.enqueue(
                "webhook", {"url": receiver.url("/orders"), "body": {"order": 7}}, queue="hooks"
            )
            mail_id = await producer.enqueue(
                "email",
                {
                    "to": "ana@customer.example",
                    "subject": "Hi $name",
                    "body": "Dear $name",
                    "vars": {"name": "Ana"},
                },
                queue="email",
            )
            hook = await _wait_done(producer, hook_id, "hooks", 30)
            mail = await _wait_done(producer, mail_id, "email", 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            raw, _ = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            raw, _ = await proc.communicate()
    output = raw.decode(errors="replace")

    assert hook.status is JobStatus.COMPLETED, (hook.error, output)
    assert hook.attempt == 2
    assert hook.result["status"] == 200
    hits = receiver.hits("/orders")
    assert [h.headers["X-Jobqueue-Attempt"] for h in hits] == ["1", "2"]
    assert {h.headers["Idempotency-Key"] for h in hits} == {hook_id}
    assert all(h.signature_ok for h in hits)

    assert mail.status is JobStatus.COMPLETED, (mail.error, output)
    (captured,) = smtp_sink.handler.messages
    assert captured.message["Subject"] == "Hi Ana"
    assert captured.message["Message-ID"] == f"<{mail_id}@shop.example>"
    assert proc.returncode == 0, output
