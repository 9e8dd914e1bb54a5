"""The supervisor seam in one event loop, no Redis: hard and soft timeouts.

The supervisor runs a handler in the caller's task under ``asyncio.timeout``, so
what only it can get wrong is telling its own deadline from a handler's
TimeoutError, counting the soft warning, and leaving no timer behind the attempt.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from jobqueue_worker import metrics
from jobqueue_worker.errors import JobTimeout
from jobqueue_worker.execution import Supervisor
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.settings import WorkerSettings
from jobqueue_worker.timeouts import History


def _job(job_type: str, timeout_s: float | None) -> Job:
    return Job(
        id=f"id-{job_type}",
        type=job_type,
        queue="sup",
        payload=None,
        priority=5,
        attempt=1,
        max_attempts=1,
        deliveries=1,
        timeout_s=timeout_s,
    )


def _soft_count(job_type: str) -> float:
    return float(metrics.TIMEOUTS.labels("sup", job_type, "soft")._value.get())


async def _run(handler: Any, job_type: str, timeout_s: float | None) -> Any:
    reg = Registry()
    reg.register(job_type, handler)
    jt = reg.get(job_type)
    assert jt is not None
    sup = Supervisor(WorkerSettings(), History())
    job = _job(job_type, timeout_s)
    return await sup.run(job, jt, lambda: jt.handler(job))


async def test_the_hard_timeout_cancels_and_raises_job_timeout() -> None:
    seen: list[str] = []

    async def slow(job: Job) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with pytest.raises(JobTimeout, match="cancelled"):
        await asyncio.wait_for(_run(slow, "sup_slow", 0.05), 5)
    assert seen == ["cancelled"]


async def test_a_handlers_own_timeout_error_is_an_ordinary_failure() -> None:
    async def own(job: Job) -> None:
        raise TimeoutError("the payment API timed out")

    with pytest.raises(TimeoutError, match="payment API") as caught:
        await _run(own, "sup_own", 10.0)
    assert not isinstance(caught.value, JobTimeout)


async def test_a_soft_timeout_that_passes_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def lagging(job: Job) -> str:
        await asyncio.sleep(0.3)
        return "done"

    before = _soft_count("sup_late")
    with caplog.at_level(logging.WARNING, logger="jobqueue_worker.execution"):
        assert await _run(lagging, "sup_late", 0.35) == "done"  # soft at 0.28 s
    assert _soft_count("sup_late") - before == 1
    assert any(r.getMessage() == "Job passed its soft timeout" for r in caplog.records)


async def test_no_timer_outlives_a_fast_job() -> None:
    async def quick(job: Job) -> int:
        return 7

    before = _soft_count("sup_quick")
    assert await _run(quick, "sup_quick", 0.05) == 7
    await asyncio.sleep(0.1)  # past the soft and hard deadlines
    assert _soft_count("sup_quick") == before


async def test_no_timeout_runs_the_handler_as_is() -> None:
    async def value(job: Job) -> dict[str, int]:
        return {"n": 1}

    assert await _run(value, "sup_none", None) == {"n": 1}


@pytest.mark.parametrize(
    ("default_s", "job_s", "hard", "soft"),
    [(10.0, None, 10.0, 8.0), (10.0, 5.0, 5.0, 4.0), (None, None, None, None)],
)
def test_soft_timeout_defaults_to_a_ratio_of_the_hard_one(
    default_s: float | None, job_s: float | None, hard: float | None, soft: float | None
) -> None:
    reg = Registry()
    reg.register("ratio", lambda job: None)
    jt = reg.get("ratio")
    assert jt is not None
    settings = WorkerSettings(default_timeout_s=default_s, soft_timeout_ratio=0.8)
    t = Supervisor(settings, History()).timeouts(_job("ratio", job_s), jt)
    assert t.hard_s == (pytest.approx(hard) if hard is not None else None)
    assert t.soft_s == (pytest.approx(soft) if soft is not None else None)
