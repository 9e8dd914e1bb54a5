"""Which Pods go on a scale-down: a table per rule, then hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_operator.observation import WorkerLoad
from jobqueue_operator.victims import (
    PROTECTED_CAP_S,
    PROTECTED_COST,
    VICTIM_COST,
    PodView,
    choose_victims,
)


def pod(name: str, *, ready: bool = True, terminating: bool = False, rs: str = "rs1") -> PodView:
    return PodView(name=name, ready=ready, terminating=terminating, owner=rs)


def idle(name: str, processed: int = 0) -> WorkerLoad:
    return WorkerLoad(pod_name=name, state="idle", active_jobs=0, processed=processed)


def busy(name: str, busy_s: float, processed: int = 0) -> WorkerLoad:
    return WorkerLoad(
        pod_name=name, state="busy", active_jobs=1, busy_s=busy_s, processed=processed
    )


ROWS = [
    # id, pods, loads, remove, victims, protected
    ("idle before busy", [pod("a"), pod("b")], [busy("a", 5), idle("b")], 1, ("b",), ("a",)),
    (
        "busy with least run time first",
        [pod("a"), pod("b"), pod("c")],
        [busy("a", 50), busy("b", 2), busy("c", 20)],
        2,
        ("b", "c"),
        ("a",),
    ),
    (
        "NotReady first, whatever the heartbeat (ReplicaSet rule 3)",
        [pod("a", ready=False), pod("b")],
        [busy("a", 1), idle("b")],
        1,
        ("a",),
        (),
    ),
    (
        "no heartbeat before idle",
        [pod("a"), pod("b")],
        [idle("a")],
        1,
        ("b",),
        (),
    ),
    (
        "among idle, the one that processed least",
        [pod("a"), pod("b")],
        [idle("a", processed=10), idle("b", processed=3)],
        1,
        ("b",),
        (),
    ),
    (
        "terminating pods are not candidates",
        [pod("a", terminating=True), pod("b"), pod("c")],
        [idle("a"), idle("b"), busy("c", 1)],
        1,
        ("b",),
        ("c",),
    ),
    ("nothing to remove", [pod("a")], [busy("a", 1)], 0, (), ("a",)),
    ("name breaks ties", [pod("b"), pod("a")], [idle("a"), idle("b")], 1, ("a",), ()),
]


@pytest.mark.parametrize(
    ("pods", "loads", "remove", "victims", "protected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_choose_victims_table(
    pods: list[PodView],
    loads: list[WorkerLoad],
    remove: int,
    victims: tuple[str, ...],
    protected: tuple[str, ...],
) -> None:
    plan = choose_victims(pods, loads, remove)
    assert plan.victims == victims
    assert plan.protected == protected
    assert all(plan.costs[v] == VICTIM_COST for v in victims)
    assert all(plan.costs[p] >= PROTECTED_COST for p in protected)


def test_costs_rank_survivors_by_run_time_and_cap_it() -> None:
    plan = choose_victims(
        [pod("a"), pod("b"), pod("c")], [busy("a", 10), busy("b", 10**9), idle("c")], 1
    )
    assert plan.victims == ("c",)
    assert plan.costs == {
        "c": VICTIM_COST,
        "a": PROTECTED_COST + 10,
        "b": PROTECTED_COST + PROTECTED_CAP_S,
    }


def test_a_rollout_is_reported() -> None:
    plan = choose_victims([pod("a", rs="old"), pod("b", rs="new")], [], 1)
    assert "2 ReplicaSets" in plan.note


def test_fewer_pods_than_asked_is_reported() -> None:
    plan = choose_victims([pod("a")], [], 3)
    assert plan.victims == ("a",)
    assert "only 1" in plan.note


names = st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=10, unique=True)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[PodView], list[WorkerLoad], int]:
    pod_names = draw(names)
    pods = [pod(n, ready=draw(st.booleans()), terminating=draw(st.booleans())) for n in pod_names]
    loads = []
    for n in pod_names:
        kind = draw(st.sampled_from(["none", "idle", "busy"]))
        if kind == "idle":
            loads.append(idle(n, draw(st.integers(0, 100))))
        elif kind == "busy":
            loads.append(busy(n, draw(st.floats(0, 1e6)), draw(st.integers(0, 100))))
    return pods, loads, draw(st.integers(0, 12))


@settings(max_examples=400)
@given(worlds())
def test_properties(world: tuple[list[PodView], list[WorkerLoad], int]) -> None:
    pods, loads, remove = world
    plan = choose_victims(pods, loads, remove)
    live = {p.name for p in pods if not p.terminating}
    by_pod = {w.pod_name: w for w in loads}
    ready = {p.name for p in pods if p.ready}
    # exactly min(remove, live) distinct live pods go
    assert len(plan.victims) == min(remove, len(live)) == len(set(plan.victims))
    assert set(plan.victims) <= live
    # victims and protected pods never overlap; only busy live pods are protected
    assert not set(plan.victims) & set(plan.protected)
    assert all(by_pod[p].active_jobs > 0 and p in live for p in plan.protected)
    # a busy Ready pod never goes while an idle or unknown Ready pod stays
    survivors = live - set(plan.victims)
    busy_victims = {
        v for v in plan.victims if v in ready and v in by_pod and by_pod[v].active_jobs > 0
    }
    if busy_victims:
        assert all(s in by_pod and by_pod[s].active_jobs > 0 for s in survivors & ready)
    # every victim's cost is below every annotated survivor's, and below the default 0
    assert all(plan.costs[v] < 0 for v in plan.victims)
    assert all(plan.costs[p] > 0 for p in plan.protected)


def test_the_pod_with_the_oldest_job_stays_even_if_others_ran_more_in_sum() -> None:
    """Run times are heavy tailed: one 30 s job is likelier to outlast the grace than
    eight young ones, so the pod of many short jobs goes first."""
    loads = [
        WorkerLoad("a", "busy", 1, busy_s=30.0, longest_s=30.0),
        WorkerLoad("b", "busy", 8, busy_s=40.0, longest_s=6.0),
    ]
    plan = choose_victims([pod("a"), pod("b")], loads, 1)
    assert plan.victims == ("b",)
    assert plan.protected == ("a",)
