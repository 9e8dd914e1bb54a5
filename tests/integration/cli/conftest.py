"""Fixtures of the command-line tests; the helpers live in ``cli_harness.py``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# the tests here share cli_harness.py, so this folder goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_harness import Run, bury, run_script


@pytest.fixture
def jobqueue() -> Run:
    """``jobqueue ARGS...`` as a subprocess (keywords ``env`` and ``stdin``)."""

    def go(
        *args: str, env: dict[str, str] | None = None, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return run_script("jobqueue", *args, env=env, stdin=stdin)

    return go


@pytest.fixture
def bury_job(redis_url: str) -> Callable[..., None]:
    """``bury_job(job_id, job_type="noop", queue="default")`` on the test's Redis."""

    def go(job_id: str, job_type: str = "noop", queue: str = "default") -> None:
        bury(redis_url, job_id, job_type, queue)

    return go


@pytest.fixture
def down_url() -> str:
    """A Redis URL with a password on a loopback port where nothing listens."""
    from jobqueue_devkit.ports import free_port

    return f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
