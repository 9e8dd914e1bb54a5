"""The operator's drain request: a Pod chosen to go fetches nothing more.

Between the operator choosing an idle Pod and the ReplicaSet deleting it, that
worker could start a job that the deletion would then interrupt. A Pod listed in
the queue's drain hash takes no job; the others take them all, and when the
request goes away the worker fetches again. Real Redis, real workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio

from jobqueue_protocol import drain
from jobqueue_worker import metrics
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.registry import Job, Registry


def _registry(ran_on: dict[str, str], worker_pod: str) -> Registry:
    reg = Registry()

    @reg.job_type("tagged")
    async def tagged(job: Job) -> None:
        await asyncio.sleep(0.05)  # slow enough that one worker cannot take them all
        ran_on[job.id] = worker_pod

    return reg


async def test_a_pod_chosen_to_go_takes_no_job_until_the_request_is_withdrawn(
    redis_url: str, start_worker: Any, until: Any
) -> None:
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pipe = r.pipeline(transaction=False)
    drain.request(pipe, ["default"], ["pod-going"], now_ms=1, ttl_ms=600_000)
    await pipe.execute()
    going: dict[str, str] = {}
    staying: dict[str, str] = {}
    w_going = await start_worker(_registry(going, "pod-going"), pod_name="pod-going", concurrency=4)
    await start_worker(_registry(staying, "pod-staying"), pod_name="pod-staying", concurrency=4)
    async with Producer(redis_url) as p:
        first = await p.enqueue_many([JobRequest(type="tagged") for _ in range(40)])

    async def first_done() -> bool:
        return len(staying) + len(going) == len(first)

    await until(first_done)
    assert going == {}, "the drained worker took a job"
    assert set(staying) == set(first)
    assert w_going.drain_requested
    assert metrics.DRAIN_REQUESTED._value.get() == 1  # type: ignore[attr-defined]

    assert (await w_going.broker.drain_requests(["default"]))["default"] == {"pod-going": 1}
    pipe = r.pipeline(transaction=False)
    drain.withdraw(pipe, ["default"], ["pod-going"])
    await pipe.execute()
    assert await w_going.broker.drain_requests(["default"]) == {"default": {}}
    async with Producer(redis_url) as p:
        second = await p.enqueue_many([JobRequest(type="tagged") for _ in range(200)])

    async def going_works_again() -> bool:
        return len(going) > 0 and len(going) + len(staying) == len(first) + len(second)

    await until(going_works_again, 15)
    assert not w_going.drain_requested
    await r.aclose()
