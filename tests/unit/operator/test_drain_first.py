"""Drain-first scale-down (``victims.plan_drain``): tables, then hypothesis properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_operator.observation import Observation, WorkerLoad
from jobqueue_operator.victims import (
    DRAIN_CONFIRM_S,
    VICTIM_COST,
    PodView,
    drained_capacity,
    plan_drain,
    without_drained,
)

NOW = 1000.0


def pods(*names: str, not_ready: str = "") -> list[PodView]:
    return [PodView(n, ready=n not in not_ready) for n in names]


def load(name: str, jobs: int, longest_s: float = 1.0) -> WorkerLoad:
    return WorkerLoad(name, "busy" if jobs else "idle", jobs, busy_s=longest_s * jobs,
                      longest_s=longest_s if jobs else 0.0)  # fmt: skip


def test_a_scale_down_drains_the_youngest_busy_pod_and_removes_nothing_yet() -> None:
    plan = plan_drain(
        pods("a", "b", "c"),
        [load("a", 2, 40.0), load("b", 1, 3.0), load("c", 3, 20.0)],
        {},
        replicas=3,
        desired=2,
        now=NOW,
    )
    assert plan.drained == {"b": NOW}
    assert plan.remove == ()
    assert plan.replicas == 3  # still counted: it finishes its job first
    assert plan.costs == {}


def test_a_drained_pod_goes_once_a_heartbeat_after_the_drain_shows_it_idle() -> None:
    loads = [load("a", 2), load("b", 0)]
    early = plan_drain(pods("a", "b"), loads, {"b": NOW - 1.0}, replicas=2, desired=1, now=NOW)
    assert early.remove == ()
    assert early.replicas == 2
    later = plan_drain(
        pods("a", "b"), loads, {"b": NOW - DRAIN_CONFIRM_S}, replicas=2, desired=1, now=NOW
    )
    assert later.remove == ("b",)
    assert later.replicas == 1
    assert later.costs["b"] == VICTIM_COST
    assert later.costs["a"] > 0
    assert later.drained == {}


def test_a_drained_pod_with_a_job_stays_however_long_it_runs() -> None:
    plan = plan_drain(
        pods("a", "b"), [load("a", 1), load("b", 1, 900.0)], {"b": NOW - 600.0},
        replicas=2, desired=1, now=NOW,
    )  # fmt: skip
    assert plan.remove == ()
    assert plan.replicas == 2
    assert plan.drained == {"b": NOW - 600.0}


def test_a_scale_up_withdraws_drains_before_it_adds_pods() -> None:
    drained = {"b": NOW - 1.0, "c": NOW - 2.0}
    loads = [load("a", 1), load("b", 1), load("c", 0)]
    one = plan_drain(pods("a", "b", "c"), loads, drained, replicas=3, desired=2, now=NOW)
    assert one.withdrawn == ("b",)  # the busier drained pod comes back first
    assert one.replicas == 3
    assert set(one.drained) == {"c"}
    more = plan_drain(pods("a", "b", "c"), loads, drained, replicas=3, desired=5, now=NOW)
    assert set(more.withdrawn) == {"b", "c"}
    assert more.replicas == 5
    assert more.drained == {}


def test_nothing_is_removed_while_another_pod_is_not_ready() -> None:
    """The ReplicaSet removes a NotReady pod first, whatever the costs say."""
    plan = plan_drain(
        pods("a", "b", "n", not_ready="n"), [load("a", 1), load("b", 0)],
        {"b": NOW - 60.0}, replicas=3, desired=2, now=NOW,
    )  # fmt: skip
    assert plan.remove == ()
    assert plan.replicas == 3


def test_replicas_without_a_pod_yet_go_first_and_at_once() -> None:
    plan = plan_drain(pods("a"), [load("a", 1)], {}, replicas=3, desired=1, now=NOW)
    assert plan.replicas == 1
    assert plan.drained == {}
    plan = plan_drain(pods("a"), [load("a", 1)], {}, replicas=3, desired=0, now=NOW)
    assert plan.replicas == 1
    assert plan.drained == {"a": NOW}


def test_a_pod_that_never_ran_a_worker_goes_at_once() -> None:
    # "p" is Pending (no heartbeat ever): nothing to protect, so it is not drained
    plan = plan_drain(
        pods("a", "b", "p", not_ready="p"), [load("a", 1), load("b", 0)], {},
        replicas=3, desired=1, now=NOW,
    )  # fmt: skip
    assert plan.remove == ("p",)
    assert plan.replicas == 2
    assert plan.drained == {"b": NOW}, "the idle worker still drains first"
    # a NotReady Pod whose worker did heartbeat may hold a job: it drains like the rest
    plan = plan_drain(
        pods("a", "p", not_ready="p"), [load("a", 1), load("p", 1)], {},
        replicas=2, desired=1, now=NOW,
    )  # fmt: skip
    assert plan.remove == ()
    assert plan.drained == {"p": NOW}


def test_the_policy_sees_the_drained_pods_apart() -> None:
    obs = Observation(
        depth=0, oldest_age_s=0.0, in_flight=5, busy_workers=2, workers=3,
        worker_loads=(load("a", 3), load("b", 2), load("c", 0)),
    )  # fmt: skip
    seen = without_drained(obs, {"b"})
    assert (seen.in_flight, seen.busy_workers, seen.workers) == (3, 1, 2)
    assert [w.pod_name for w in seen.worker_loads] == ["a", "c"]
    assert drained_capacity(3, {"b"}) == 2
    assert without_drained(obs, set()) is obs


names = st.lists(st.sampled_from("abcdefghij"), min_size=0, max_size=10, unique=True)


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[list[PodView], list[WorkerLoad], dict[str, float], int, int]:
    pod_names = draw(names)
    live = [
        PodView(n, ready=draw(st.booleans()), terminating=draw(st.booleans())) for n in pod_names
    ]
    loads = [
        load(n, draw(st.integers(0, 4)), draw(st.floats(0.0, 1e4)))
        for n in pod_names
        if draw(st.booleans())
    ]
    drained = {n: NOW - draw(st.floats(0.0, 30.0)) for n in pod_names if draw(st.booleans())}
    # /scale counts every live pod, and maybe some the API server lists no pod for yet
    replicas = sum(1 for p in live if not p.terminating) + draw(st.integers(0, 4))
    return live, loads, drained, replicas, draw(st.integers(0, 14))


@settings(max_examples=500)
@given(worlds())
def test_properties(
    world: tuple[list[PodView], list[WorkerLoad], dict[str, float], int, int],
) -> None:
    live, loads, drained, replicas, desired = world
    plan = plan_drain(live, loads, drained, replicas=replicas, desired=desired, now=NOW)
    by_pod = {w.pod_name: w for w in loads}
    names_live = {p.name for p in live if not p.terminating}
    # never a pod with a job: only drained pods, idle in a heartbeat read after the drain
    for name in plan.remove:
        pod = next(p for p in live if p.name == name and not p.terminating)
        if name not in drained:  # removed at once: a Pod that never ran a worker
            assert not pod.ready
            assert name not in by_pod
            continue
        assert name in names_live
        assert name not in by_pod or by_pod[name].active_jobs == 0
        assert NOW - drained[name] >= DRAIN_CONFIRM_S
        assert plan.costs[name] == VICTIM_COST
    # and nothing removed while the ReplicaSet would take an undrained NotReady pod first
    kept = set(plan.drained) | set(plan.remove)
    if any(not p.ready and not p.terminating and p.name not in kept for p in live):
        assert not set(plan.remove) & set(drained)
    # every survivor's cost is above every victim's
    assert all(c > VICTIM_COST for n, c in plan.costs.items() if n not in plan.remove)
    # /scale is raised only when nothing stays drained
    if plan.replicas > replicas:
        assert plan.drained == {}
    # the drain set holds live pods only, and a withdrawn pod is no longer in it
    assert set(plan.drained) <= names_live
    assert not set(plan.withdrawn) & set(plan.drained)
    # the capacity the policy counts on reaches what it asked for, unless the pods that
    # could be drained ran out (then /scale is lowered by pods that do not exist yet)
    capacity = drained_capacity(plan.replicas + len(plan.remove), kept)
    undrained = names_live - kept
    assert capacity == desired or (capacity > desired and not undrained)
