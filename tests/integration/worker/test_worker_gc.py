"""A serving worker has frozen what it built at start, so no collection walks it again.

Checked in a real ``python -m jobqueue_worker worker`` process: a job reports the
collector's frozen count from inside the worker.
"""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path
from typing import Any

from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer

PROBE = """
    import gc

    from jobqueue_worker.registry import Job, Registry

    registry = Registry()


    @registry.job_type("frozen_count")
    async def frozen_count(job: Job) -> int:
        return gc.get_freeze_count()
"""


async def test_the_start_up_heap_is_frozen_before_the_first_job(
    redis_url: str, tmp_path: Path, spawn_worker: Any, reach: Any
) -> None:
    (tmp_path / "gc_probe.py").write_text(textwrap.dedent(PROBE))
    w = spawn_worker("gc", handlers="gc_probe", import_path=[tmp_path])
    async with Producer(redis_url) as p:
        job_id = await p.enqueue("frozen_count")
        rec = await reach(p, job_id, JobStatus.COMPLETED, 30)
    # The imports alone (pydantic, redis, prometheus_client) leave tens of thousands
    # of objects; an unfrozen heap reports 0.
    assert isinstance(rec.result, int)
    assert rec.result > 10_000, w.output()
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(15) == 0, w.output()
