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

Pure: plans, orders and the merge of results; the broker does the calls.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobqueue_worker.broker import FetchPlan, FinishOp, StepResult


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
