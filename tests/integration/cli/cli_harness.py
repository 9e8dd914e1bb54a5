"""The installed console scripts, run as real subprocesses (as a user or a script would)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from jobqueue_protocol import keys

BIN = Path(sys.executable).parent
Run = Callable[..., subprocess.CompletedProcess[str]]


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``name ARGS...`` with a clean JQW_/JQO_ environment and stdin that is not a terminal."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is not installed: run `make install`")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JQW_", "JQO_"))}
    environ.pop("JOBQUEUE_DEBUG", None)
    environ.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environ,
        input=stdin,
    )


def bury(redis_url: str, job_id: str, job_type: str = "noop", queue: str = "default") -> None:
    """A dead-lettered job as the worker leaves it: its hash and its DLQ entry."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(
            keys.job_key(queue, job_id),
            mapping={
                "envelope": json.dumps({"id": job_id, "type": job_type, "queue": queue}),
                "priority": 5,
                "attempt": 3,
                "max_attempts": 3,
                "status": "dead",
                "dead_reason": "exception",
                "error": "RuntimeError: x",
                "traceback": "Traceback (most recent call last):\nRuntimeError: x",
                "enqueued_at": 1_700_000_000_000,
                "dead_at": 1_700_000_100_000,
            },
        )
        client.zadd(keys.dead_key(queue), {job_id: 1_700_000_100_000})
    finally:
        client.close()
