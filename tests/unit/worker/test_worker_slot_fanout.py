"""The per-queue fetch order and result merge a worker uses on a Redis Cluster."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from jobqueue_worker.slot_fanout import caps_left, merge, queue_order, single_queue_plan
from jobqueue_worker.wire import Fetched, FetchPlan, FinishOp, StepResult


def test_strict_keeps_the_plan_order() -> None:
    plan = FetchPlan(queues=("hi", "mid", "lo"))
    assert queue_order(plan, 0.3) == ["hi", "mid", "lo"]


@given(st.floats(min_value=0, max_value=1, exclude_max=True))
def test_weighted_order_is_a_permutation_and_repeatable(rnd: float) -> None:
    plan = FetchPlan(queues=("a", "b", "c"), mode="weighted", weights=(5.0, 1.0, 0.0))
    order = queue_order(plan, rnd)
    assert sorted(order) == ["a", "b", "c"]
    assert order == queue_order(plan, rnd)
    assert order[-1] == "c"  # weight 0 never goes before a weighted queue


def test_weighted_first_pick_follows_the_weights() -> None:
    plan = FetchPlan(queues=("a", "b"), mode="weighted", weights=(3.0, 1.0))
    rng = random.Random(1)
    firsts = Counter(queue_order(plan, rng.random())[0] for _ in range(4000))
    assert 0.70 < firsts["a"] / 4000 < 0.80  # 3:1 -> 75 %


def test_single_queue_plan_keeps_limits_in_the_queue_slot() -> None:
    plan = FetchPlan(queues=("a", "b"), mode="weighted", weights=(1.0, 2.0))
    single = single_queue_plan(plan, "b")
    assert single.queues == ("b",)
    assert single.mode == "strict"
    assert all("{b}" in k for k in single.step_keys)


def _fetched(queue: str, job_id: str, job_type: str = "") -> Fetched:
    return Fetched(queue, job_id, "{}", 1, 1, "t", job_type)


def test_merge_puts_acks_back_in_the_order_of_the_finishes() -> None:
    finishes = [
        FinishOp("a", "1", "t", "complete"),
        FinishOp("b", "2", "t", "complete"),
        FinishOp("a", "3", "t", "complete"),
    ]
    parts = [
        ("b", StepResult(acks=[False], jobs=[_fetched("b", "x")], next_due_ms=900, now_ms=10)),
        ("a", StepResult(acks=[True, True], jobs=[], next_due_ms=500, now_ms=12, drained=True)),
    ]
    merged = merge(finishes, parts, StepResult(acks=[], jobs=[], next_due_ms=None, now_ms=0))
    assert merged.acks == [True, False, True]
    assert [j.id for j in merged.jobs] == ["x"]
    assert (merged.next_due_ms, merged.now_ms, merged.drained) == (500, 12, True)


def test_caps_shrink_by_what_earlier_queues_fetched() -> None:
    assert caps_left(None, Counter({"a": 1})) is None
    assert caps_left({"mail": 3, "sms": 1}, Counter({"mail": 2, "sms": 4})) == {"mail": 1, "sms": 0}
