"""Demo job types for the demo image and the end-to-end tests.

``noop`` returns at once, ``sleep`` waits ``payload["seconds"]``, ``fail_n_times``
fails its first ``payload["n"]`` attempts, ``cpu_spin`` burns CPU in the thread
pool for ``payload["seconds"]``. ``record`` appends the job id to the file named
in the payload (a ledger that survives ``kill -9``), after an optional sleep.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobqueue_worker.backoff import BackoffPolicy
from jobqueue_worker.errors import PermanentError
from jobqueue_worker.registry import Job, Registry

registry = Registry()


def _payload(job: Job) -> dict[str, Any]:
    return job.payload if isinstance(job.payload, dict) else {}


@registry.job_type("noop")
async def noop(job: Job) -> None:
    return None


@registry.job_type("sleep")
async def sleep(job: Job) -> float:
    seconds = float(_payload(job).get("seconds", 1.0))
    await asyncio.sleep(seconds)
    return seconds


@registry.job_type("fail_n_times", backoff=BackoffPolicy(retries=5, base_s=0.05, cap_s=0.2))
async def fail_n_times(job: Job) -> int:
    n = int(_payload(job).get("n", 1))
    if job.attempt <= n:
        raise RuntimeError(f"planned failure {job.attempt} of {n}")
    return job.attempt


@registry.job_type("permanent_failure")
async def permanent_failure(job: Job) -> None:
    raise PermanentError("this job can never succeed")


@registry.job_type("hog_loop")
async def hog_loop(job: Job) -> float:
    """A badly written async handler: blocks the event loop (renewal must not care)."""
    seconds = float(_payload(job).get("seconds", 1.0))
    time.sleep(seconds)  # noqa: ASYNC251 - blocking on purpose
    return seconds


@registry.job_type("cpu_spin")
def cpu_spin(job: Job) -> int:
    deadline = time.monotonic() + float(_payload(job).get("seconds", 1.0))
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


def _append(ledger: str, job: Job, note: str = "") -> None:
    """One line per run; O_APPEND keeps concurrent writers' lines whole."""
    line = f"{job.id} {os.getpid()} {job.attempt} {job.deliveries} {note}\n".encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@registry.job_type("record")
def record(job: Job) -> str:
    """Sleeps ``payload["sleep"]`` s, then appends to the ``payload["ledger"]`` file."""
    p = _payload(job)
    if p.get("sleep"):
        time.sleep(float(p["sleep"]))
    _append(str(p["ledger"]), job)
    return job.id


@registry.job_type("crash")
def crash(job: Job) -> None:
    """A poison job: notes the start in the ledger (if any), then kills its worker."""
    p = _payload(job)
    if p.get("ledger"):
        _append(str(p["ledger"]), job, "crash")
    os._exit(17)


@registry.job_type("spin_forever", isolated=True)
def spin_forever(job: Job) -> None:
    """A runaway CPU-bound job: only a hard timeout (killing its process) stops it."""
    while True:
        pass


@registry.job_type("spin_isolated", isolated=True)
def spin_isolated(job: Job) -> int:
    """``cpu_spin`` in its own process (``isolated=True``)."""
    deadline = time.monotonic() + float(_payload(job).get("seconds", 1.0))
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


_LEAK: list[bytes] = []


@registry.job_type("leak_memory")
async def leak_memory(job: Job) -> int:
    """Keeps ``payload["mb"]`` MB alive in the worker: a leaking handler."""
    mb = int(_payload(job).get("mb", 10))
    _LEAK.append(os.urandom(mb * 1024 * 1024))
    p = _payload(job)
    if p.get("ledger"):
        _append(str(p["ledger"]), job)
    return mb


@registry.job_type("crash_free_permanent", isolated=True)
def crash_free_permanent(job: Job) -> None:
    """An isolated handler that raises: the exception crosses the process boundary."""
    raise PermanentError("refused in the child process")
