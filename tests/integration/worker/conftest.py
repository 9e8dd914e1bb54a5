"""Worker test helpers on top of the shared real-Redis fixtures (tests/conftest.py).

``start_worker`` runs a Worker inside the test's event loop; ``spawn_worker``
runs ``python -m jobqueue_worker worker`` as a real process, for kill -9 and
signal tests. Both are torn down after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobqueue_devkit.waiting import eventually
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer
from jobqueue_worker.records import JobRecord
from jobqueue_worker.registry import Registry
from jobqueue_worker.runtime import Worker
from jobqueue_worker.settings import WorkerSettings, load

REPO = Path(__file__).resolve().parents[3]

FAST = {
    "http_port": 0,
    "lease_s": 1.0,
    "reap_interval_s": 0.2,
    "heartbeat_interval_s": 0.5,
    "idle_block_s": 0.5,
}


async def _until(pred: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    await eventually(pred, timeout_s, interval_s=0.02)  # Redis answers fast: poll tightly


Until = Callable[..., Awaitable[None]]


@pytest.fixture
def until() -> Until:
    """``await until_(async_predicate, timeout_s)``; a fixture because importlib mode
    keeps conftest from being imported by test modules."""
    return _until


Reach = Callable[..., Awaitable[JobRecord]]


async def _reach(
    producer: Producer, job_id: str, status: JobStatus, timeout_s: float = 10.0
) -> JobRecord:
    """Wait until the job has ``status`` in Redis; its record then."""
    found: list[JobRecord] = []

    async def there() -> bool:
        rec = await producer.status(job_id)
        if rec is not None and rec.status is status:
            found.append(rec)
            return True
        return False

    await _until(there, timeout_s)
    return found[-1]


@pytest.fixture
def reach() -> Reach:
    """``await reach(producer, job_id, JobStatus.DONE, timeout_s)`` → the job's record."""
    return _reach


@pytest.fixture
def settings_for(redis_url: str) -> Callable[..., WorkerSettings]:
    def make(**overrides: Any) -> WorkerSettings:
        return load(**{"redis_url": redis_url, **FAST, **overrides})

    return make


StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(
    settings_for: Callable[..., WorkerSettings],
) -> AsyncIterator[StartWorker]:
    running: list[tuple[Worker, asyncio.Task[int]]] = []

    async def start(registry: Registry, **overrides: Any) -> Worker:
        w = Worker(settings_for(**overrides), registry, rng=__import__("random").Random(7))
        task = asyncio.create_task(w.run())
        running.append((w, task))
        await asyncio.sleep(0.05)
        return w

    yield start
    for w, _ in running:
        w.request_stop()
        w.request_stop()
    for _, task in running:
        try:
            await asyncio.wait_for(asyncio.shield(task), 15)
        except TimeoutError:
            task.print_stack()  # where shutdown hangs, for the log
            raise


class Spawned:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, pod: str) -> None:
        self.proc = proc
        self.log = log
        self.pod = pod

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def dump_stacks(self) -> str:
        """For a process that does not exit: its threads' stacks, then its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        return self.output()[-8000:]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    procs: list[Spawned] = []

    def spawn(pod: str = "w", **settings: Any) -> Spawned:
        env = {
            **os.environ,
            "JQW_REDIS_URL": redis_url,
            "JQW_HANDLERS": "jobqueue_worker.examples",
            "POD_NAME": pod,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "worker-image"), str(REPO / "worker-image/protocol")]
            ),
            # SIGABRT (Spawned.dump_stacks) prints every thread's stack to the log.
            "PYTHONFAULTHANDLER": "1",
        }
        for k, v in {**FAST, **settings}.items():
            env[f"JQW_{k.upper()}"] = str(v)
        log = tmp_path / f"{pod}-{len(procs)}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobqueue_worker", "worker"],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        s = Spawned(proc, log, pod)
        procs.append(s)
        return s

    yield spawn
    for s in procs:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)
