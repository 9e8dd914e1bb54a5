"""Worker test helpers on top of the shared real-Redis fixtures (tests/conftest.py).

``start_worker`` runs a Worker inside the test's event loop; ``spawn_worker``
runs ``python -m jobqueue_worker worker`` as a real process, for kill -9 and
signal tests. Both are torn down after the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobqueue_devkit.waiting import eventually
from jobqueue_devkit.worker_process import WorkerProcess, spawn_worker_process
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer
from jobqueue_worker.records import JobRecord
from jobqueue_worker.registry import Registry
from jobqueue_worker.runtime import Worker
from jobqueue_worker.settings import WorkerSettings, load

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


Spawned = WorkerProcess


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    procs: list[Spawned] = []

    def spawn(pod: str = "w", *, import_path: Sequence[Path] = (), **settings: Any) -> Spawned:
        log = tmp_path / f"{pod}-{len(procs)}.log"
        s = spawn_worker_process(redis_url, pod, log, {**FAST, **settings}, import_path)
        procs.append(s)
        return s

    yield spawn
    for s in procs:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)
