"""One worker, several queues, a Redis Cluster: one script call per queue instead of one in all.

On a single node (or behind Sentinel) a worker's fetch is one ``step`` over the
keys of all its queues. On a Redis Cluster each queue's keys sit in its own hash
slot, possibly on another shard, and a script may touch one slot only. So there
the broker calls ``step`` once per queue, in the plan's order (strict) or in an
order drawn by the weights (weighted), each call fetching what the previous ones
left of ``n_fetch``; acks go with their own queue's call. The cost is one round
trip per queue that has acks or is asked to fetch, instead of one in all, and
ageing across queues (a low queue's old job overtaking a high one) is lost: a
queue's jobs only compete with each other.

Plans, orders and the merge of results are pure; the calls go through the
broker's own methods, handed in, so no Redis client is used here.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from jobqueue_worker.wire import FetchPlan, FinishOp, StepResult


def single_queue_plan(plan: FetchPlan, queue: str) -> FetchPlan:
    """``plan`` narrowed to ``queue``: its keys only, limiter keys in its slot."""
    return replace(
        plan,
        queues=(queue,),
        mode="strict",
        weights=(),
        limiter_queue=queue,
        all_keys=[],
        step_keys=[],
    )


def queue_order(plan: FetchPlan, rnd: float) -> list[str]:
    """The order to fetch in: the plan's (strict), or drawn by weight without replacement."""
    queues = list(plan.queues)
    if plan.mode != "weighted" or not plan.weights:
        return queues
    rng = random.Random(rnd)  # the step's random number: the same draw for the same input
    weights = list(plan.weights)
    order: list[str] = []
    while queues:
        total = sum(weights)
        if total <= 0:
            order += queues
            break
        pick = rng.random() * total
        i = 0
        while i < len(weights) - 1 and pick >= weights[i]:
            pick -= weights[i]
            i += 1
        order.append(queues.pop(i))
        weights.pop(i)
    return order


def ops_for(finishes: Sequence[FinishOp], queue: str) -> list[FinishOp]:
    return [f for f in finishes if f.queue == queue]


def caps_left(caps: Mapping[str, int] | None, fetched: Counter[str]) -> dict[str, int] | None:
    """Per-type free slots after the jobs fetched so far in this fan-out."""
    if caps is None:
        return None
    return {t: max(0, n - fetched.get(t, 0)) for t, n in caps.items()}


def merge(
    finishes: Sequence[FinishOp], parts: Sequence[tuple[str, StepResult]], empty: StepResult
) -> StepResult:
    """The per-queue results as one: acks back in the order of ``finishes``."""
    acks_by_queue = {q: iter(r.acks) for q, r in parts}
    acks = [next(acks_by_queue[f.queue], False) for f in finishes]
    dues = [r.next_due_ms for _, r in parts if r.next_due_ms is not None]
    return replace(
        empty,
        acks=acks,
        jobs=[j for _, r in parts for j in r.jobs],
        next_due_ms=min(dues) if dues else None,
        now_ms=max((r.now_ms for _, r in parts), default=empty.now_ms),
        throttled=[t for _, r in parts for t in r.throttled],
        drained=any(r.drained for _, r in parts),
    )


# -- the calls, made through the broker's own methods (no Redis client here) -----------
#: One queue's step: the broker's ``step`` with what is the same for every queue of
#: the fan-out (the worker, the random number, the Pod) bound. Called with the
#: queue's plan, its acks, how many jobs to fetch, and the per-type slots left.
QueueStep = Callable[
    [FetchPlan, Sequence[FinishOp], int, Mapping[str, int] | None], Awaitable[StepResult]
]


async def step_each_queue(  # noqa: PLR0917
    step: QueueStep,
    narrowed: dict[str, tuple[FetchPlan, FetchPlan]],
    plan: FetchPlan,
    finishes: Sequence[FinishOp],
    n_fetch: int,
    rnd: float,
    caps: Mapping[str, int] | None,
) -> StepResult:
    """``step`` on a Redis Cluster: one single-slot call per queue, merged into one result.

    ``narrowed`` caches each queue's single-queue plan (keyed by the plan it came from).
    """
    parts: list[tuple[str, StepResult]] = []
    left, drained, fetched = n_fetch, False, Counter[str]()
    for queue in queue_order(plan, rnd):
        ops = ops_for(finishes, queue)
        want = 0 if drained else max(0, left)
        if not ops and want == 0:
            continue
        cached = narrowed.get(queue)
        if cached is None or cached[0] is not plan:
            cached = narrowed[queue] = (plan, single_queue_plan(plan, queue))
        res = await step(cached[1], ops, want, caps_left(caps, fetched))
        parts.append((queue, res))
        left -= len(res.jobs)
        fetched.update(j.type for j in res.jobs)
        drained = drained or res.drained
    empty = StepResult(acks=[], jobs=[], next_due_ms=None, now_ms=0)
    return merge(finishes, parts, empty)


async def wait_for_any(
    blpop: Callable[..., Awaitable[Any]], wake: Sequence[str], timeout_s: float
) -> bool:
    """One BLPOP per queue (each in its own slot); the first token wins.

    A BLPOP cancelled after it took a token loses that token: harmless, a token
    is only a hint to fetch now instead of after the block time.
    """
    waits = [asyncio.ensure_future(blpop([k], timeout=max(0.01, timeout_s))) for k in wake]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return any(not w.cancelled() and w.exception() is None and w.result() for w in done)


def renew_each_queue(
    renew: Callable[[FetchPlan, Sequence[tuple[str, str, str]]], list[bool]],
    plan: FetchPlan,
    held: Sequence[tuple[str, str, str]],
) -> list[bool]:
    """``renew`` on a Redis Cluster: one single-slot call per queue, answers in order."""
    answers: dict[int, bool] = {}
    for queue in plan.queues:
        mine = [(i, h) for i, h in enumerate(held) if h[0] == queue]
        if not mine:
            continue
        ok = renew(single_queue_plan(plan, queue), [h for _, h in mine])
        answers.update((i, o) for (i, _), o in zip(mine, ok, strict=True))
    return [answers.get(i, False) for i in range(len(held))]
