"""A StatefulSet's scale-down (``ordinals``): the highest ordinals go, idle first.

Tables, a hypothesis property, the ScaleDown state machine with StatefulSet Pods,
and how a Pod from the API is read (owner kind, ordinal).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_operator.observation import WorkerLoad
from jobqueue_operator.ordinals import choose_top, is_ordered, members, plan_top_drain
from jobqueue_operator.scaledown import ScaleDown
from jobqueue_operator.victims import DRAIN_CONFIRM_S, PodView, choose_victims, pod_view

NOW = 1000.0
OLD = NOW - DRAIN_CONFIRM_S


def sts(count: int, *, not_ready: tuple[int, ...] = (), start: int = 0) -> list[PodView]:
    return [
        PodView(f"w-{i}", i not in not_ready, owner="w", owner_kind="StatefulSet", ordinal=i)
        for i in range(start, start + count)
    ]


def load(ordinal: int, jobs: int) -> WorkerLoad:
    return WorkerLoad(f"w-{ordinal}", "busy" if jobs else "idle", jobs, busy_s=5.0 * jobs,
                      longest_s=5.0 if jobs else 0.0)  # fmt: skip


def test_statefulset_pods_are_recognised_and_others_are_not() -> None:
    assert is_ordered(sts(3))
    assert not is_ordered([PodView("a", True, owner="rs", owner_kind="ReplicaSet")])
    assert not is_ordered([PodView("a", True)])
    assert not is_ordered([])
    unknown = PodView("w-x", True, owner="w", owner_kind="StatefulSet", ordinal=None)
    assert not is_ordered([*sts(2), unknown])


def test_members_are_the_lowest_ordinals_highest_first() -> None:
    leaving = sts(4)  # /scale already says 2: w-3 terminates first, then w-2
    assert [p.name for p in members(leaving, 2)] == ["w-1", "w-0"]
    assert [p.name for p in members(sts(3, start=5), 3)] == ["w-7", "w-6", "w-5"]


def test_drain_first_drains_the_highest_ordinals_even_when_they_are_busy() -> None:
    plan = plan_top_drain(sts(4), [load(3, 2), load(0, 0)], {}, replicas=4, desired=2, now=NOW)
    assert plan.drained == {"w-3": NOW, "w-2": NOW}, "the StatefulSet will remove these two"
    assert plan.remove == ()
    assert plan.replicas == 4
    assert plan.costs == {}, "a StatefulSet ignores deletion cost: none is written"


def test_scale_goes_down_only_over_an_idle_run_from_the_top() -> None:
    drained = {"w-3": OLD, "w-2": OLD}
    busy_top = plan_top_drain(sts(4), [load(3, 1)], drained, replicas=4, desired=2, now=NOW)
    assert busy_top.remove == (), "w-3 is busy: lowering /scale would remove it first"
    assert busy_top.replicas == 4
    busy_below = plan_top_drain(sts(4), [load(2, 1)], drained, replicas=4, desired=2, now=NOW)
    assert busy_below.remove == ("w-3",)
    assert busy_below.replicas == 3
    assert busy_below.drained == {"w-2": OLD}
    idle = plan_top_drain(sts(4), [], drained, replicas=4, desired=2, now=NOW)
    assert idle.remove == ("w-3", "w-2")
    assert idle.replicas == 2


def test_a_fresh_drain_waits_for_a_heartbeat_after_it_but_a_cold_pod_goes_at_once() -> None:
    fresh = plan_top_drain(sts(3), [load(2, 0)], {}, replicas=3, desired=2, now=NOW)
    assert fresh.remove == ()
    cold = plan_top_drain(sts(3, not_ready=(2,)), [], {}, replicas=3, desired=2, now=NOW)
    assert cold.remove == ("w-2",)
    assert cold.replicas == 2


def test_a_surge_takes_back_the_lowest_drained_first_then_raises_scale() -> None:
    drained = {"w-3": OLD, "w-2": OLD}
    back = plan_top_drain(sts(4), [load(3, 1)], drained, replicas=4, desired=3, now=NOW)
    assert back.withdrawn == ("w-2",), "what stays drained is still the top"
    assert back.drained == {"w-3": OLD}
    assert back.remove == ()
    idle = plan_top_drain(sts(4), [], drained, replicas=4, desired=3, now=NOW)
    assert (idle.withdrawn, idle.remove, idle.replicas) == (("w-2",), ("w-3",), 3)
    more = plan_top_drain(sts(4), [], drained, replicas=4, desired=6, now=NOW)
    assert set(more.withdrawn) == {"w-2", "w-3"}
    assert more.replicas == 6


def test_replicas_without_a_pod_yet_go_first_and_at_once() -> None:
    plan = plan_top_drain(sts(2), [], {}, replicas=3, desired=1, now=NOW)
    assert plan.replicas == 2, "the missing w-2 goes without a drain"
    assert plan.drained == {"w-1": NOW}


def test_leaving_pods_above_the_count_are_never_drained_again() -> None:
    # /scale is 2, w-3 is still running on its way out (OrderedReady removes one at a time)
    plan = plan_top_drain(sts(4), [], {}, replicas=2, desired=1, now=NOW)
    assert plan.drained == {"w-1": NOW}


def test_without_drain_first_the_record_names_the_top_and_the_busy_ones() -> None:
    plan = choose_top(sts(4), [load(3, 1), load(0, 2)], current=4, remove=2)
    assert plan.victims == ("w-3", "w-2")
    assert plan.costs == {}
    assert plan.protected == ()
    assert "highest ordinals" in plan.note
    assert "busy when removed: w-3" in plan.note


def test_the_machine_uses_ordinals_for_statefulset_pods() -> None:
    machine = ScaleDown()
    choice = machine.choose(
        sts(3), [load(2, 1), load(0, 0)], current=3, desired=2, now=NOW, drain=False
    )
    assert choice.selection.chosen == ("w-2",), "not the idle w-0: the StatefulSet decides"
    assert choice.costs == {}
    record = machine.chosen(choice, annotated=[], drained=[], problems=[])
    assert "StatefulSet" in record.message
    settled = machine.settled(["w-0", "w-1"])
    assert settled.message.startswith("the StatefulSet removed exactly the chosen Pods")

    draining = ScaleDown()
    step = draining.plan(sts(3), [load(2, 1)], replicas=3, desired=2, now=NOW)
    assert dict(step.plan.drained) == {"w-2": NOW}
    draining.drains_written(step.plan)
    step = draining.plan(sts(3), [], replicas=3, desired=2, now=NOW + DRAIN_CONFIRM_S)
    assert step.removal is not None
    assert step.plan.remove == ("w-2",)
    assert "highest ordinals" in step.removal.selection.note


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 8),
    replicas_extra=st.integers(0, 2),
    desired=st.integers(0, 10),
    busy=st.sets(st.integers(0, 9)),
    drained_top=st.integers(0, 8),
)
def test_only_the_top_is_ever_drained_or_removed_and_never_a_busy_pod(
    count: int, replicas_extra: int, desired: int, busy: set[int], drained_top: int
) -> None:
    pods = sts(count)
    replicas = count + replicas_extra
    drained = {f"w-{i}": OLD for i in range(count - min(drained_top, count), count)}
    loads = [load(i, 1) for i in busy if i < count]
    plan = plan_top_drain(pods, loads, drained, replicas=replicas, desired=desired, now=NOW)
    out = sorted([int(n.split("-")[1]) for n in (*plan.drained, *plan.remove)], reverse=True)
    assert out == list(range(count - 1, count - 1 - len(out), -1)), "a run from the top"
    assert not {f"w-{i}" for i in busy} & set(plan.remove), "a busy Pod is never removed"
    assert plan.costs == {}
    assert plan.replicas >= 0
    assert set(plan.remove) <= set(drained) | {p.name for p in pods}


def _pod(name: str, owner_kind: str | None, labels: dict[str, str] | None = None) -> Any:
    owners = [] if owner_kind is None else [
        SimpleNamespace(kind=owner_kind, name="w", controller=True),
        SimpleNamespace(kind="Other", name="x", controller=False),
    ]  # fmt: skip
    meta = SimpleNamespace(
        name=name, labels=labels, owner_references=owners, deletion_timestamp=None
    )
    ready = SimpleNamespace(type="Ready", status="True")
    return SimpleNamespace(metadata=meta, status=SimpleNamespace(conditions=[ready]))


def test_a_pod_from_the_api_carries_its_controller_and_ordinal() -> None:
    pod = pod_view(_pod("w-12", "StatefulSet"))
    assert (pod.owner, pod.owner_kind, pod.ordinal, pod.ready) == ("w", "StatefulSet", 12, True)
    labelled = pod_view(_pod("w-odd", "StatefulSet", {"apps.kubernetes.io/pod-index": "3"}))
    assert labelled.ordinal == 3, "the controller's label wins over the name"
    assert pod_view(_pod("w-abc12", "ReplicaSet")).ordinal is None
    bare = pod_view(_pod("lonely", None))
    assert (bare.owner, bare.owner_kind) == (None, None)


def test_pods_of_another_controller_get_a_note_about_deletion_cost() -> None:
    pods = [PodView(n, True, owner="pool", owner_kind="WorkerPool") for n in ("a", "b")]
    plan = choose_victims(pods, [], 1)
    assert "controlled by WorkerPool" in plan.note
    assert "ReplicaSets (a rollout)" not in plan.note
    deployment = [PodView(n, True, owner="rs", owner_kind="ReplicaSet") for n in ("a", "b")]
    assert choose_victims(deployment, [], 1).note == ""
