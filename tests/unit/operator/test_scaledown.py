"""The scale-down state machine on its own: choose, settle, withdraw (pure, no fakes)."""

from __future__ import annotations

import pytest

from jobqueue_operator.policy import WorkerLoad
from jobqueue_operator.scaledown import SETTLE_S, ScaleDown, unreadable
from jobqueue_operator.status import Tick, build, to_rfc3339
from jobqueue_operator.victims import PodView

NOW = 1_800_000_000.0
PODS = [PodView("w-a", True), PodView("w-b", True), PodView("w-c", True)]
LOADS = [WorkerLoad("w-a", "idle", 0), WorkerLoad("w-b", "busy", 1, busy_s=12.0)]


def chosen_machine(*, drained: bool = True) -> ScaleDown:
    machine = ScaleDown()
    choice = machine.choose(PODS, LOADS, current=3, desired=1, now=NOW, drain=drained)
    machine.chosen(choice, annotated=list(choice.costs), drained=choice.drain, problems=[])
    return machine


def test_choose_names_the_idle_pods_protects_the_busy_one_and_drains_only_when_asked() -> None:
    machine = ScaleDown()
    on = machine.choose(PODS, LOADS, current=3, desired=1, now=NOW, drain=True)
    off = machine.choose(PODS, LOADS, current=3, desired=1, now=NOW, drain=False)
    assert on.selection.chosen == ("w-c", "w-a"), "no heartbeat goes before idle"
    assert on.selection.protected == ("w-b",)
    assert on.drain == ("w-c", "w-a")
    assert off.drain == ()
    assert on.stale == ()
    assert machine.selection is None, "choosing alone changes nothing until the writes are done"


@pytest.mark.parametrize(
    ("live", "after_s", "due"),
    [
        (["w-a", "w-b", "w-c"], 2.0, None),  # the ReplicaSet has not acted yet
        (["w-b"], 2.0, ("w-b",)),  # it has: remove the survivor's cost
        (["w-a", "w-b", "w-c"], SETTLE_S, ("w-a", "w-c", "w-b")),  # waited long enough
        ([], 2.0, ()),  # everything went: nothing left to clean
    ],
)
def test_settle_is_due_once_the_pods_went_or_the_wait_is_over(
    live: list[str], after_s: float, due: tuple[str, ...] | None
) -> None:
    machine = chosen_machine()
    found = machine.settle_due(live, NOW + after_s)
    assert (None if found is None else sorted(found)) == (None if due is None else sorted(due))


def test_settled_records_what_went_and_queues_the_drains_for_withdrawal() -> None:
    machine = chosen_machine()
    record = machine.settled(["w-b"])
    assert record.settled is True
    assert record.removed_pods == ["w-a", "w-c"]
    assert "exactly the chosen" in record.message
    assert machine.selection is None
    assert machine.undrain == {"w-a", "w-c"}
    machine.withdrawn(["w-a", "w-c"])
    assert machine.undrain == set()


def test_a_scale_up_before_settling_withdraws_once() -> None:
    machine = chosen_machine()
    assert machine.scaling_up() is True
    assert machine.undrain == {"w-a", "w-c"}
    assert machine.scaling_up() is False, "the drains are already queued"
    assert ScaleDown().scaling_up() is False


def test_a_new_choice_replaces_an_unsettled_one_and_frees_what_it_no_longer_names() -> None:
    machine = chosen_machine()
    loads = [WorkerLoad("w-a", "busy", 1, busy_s=30.0), WorkerLoad("w-b", "idle", 0)]
    choice = machine.choose(PODS[:2], loads, current=2, desired=1, now=NOW + 5, drain=True)
    assert choice.selection.chosen == ("w-b",)
    assert choice.stale == ("w-c",), "w-c's cost is not part of the new plan"
    assert machine.undrain == {"w-a", "w-c"}, "drained before, not chosen now"


def test_resumed_from_status_it_cleans_up_what_a_previous_operator_left() -> None:
    machine = chosen_machine()
    assert machine.selection is not None
    previous = build({}, Tick(now=NOW, generation=1, pod_selection=machine.selection.record()))
    resumed = ScaleDown.from_status(previous["podSelection"])
    assert resumed.pending
    assert resumed.settle_due(["w-b"], NOW + 1) == ("w-b",)
    assert resumed.settled(["w-b"]).removed_pods == ["w-c", "w-a"]
    assert resumed.undrain == {"w-a", "w-c"}
    settled = {"settled": True, "time": to_rfc3339(NOW)}
    assert not ScaleDown.from_status(settled).pending


def test_an_unsettled_selection_clears_the_previous_removed_list_in_the_merge_patch() -> None:
    machine = chosen_machine()
    assert machine.selection is not None
    status = build({}, Tick(now=NOW, generation=1, pod_selection=machine.selection.record()))
    assert status["podSelection"]["removedPods"] is None
    assert status["podSelection"]["drainRequested"] == ["w-c", "w-a"]
    blind = build({}, Tick(now=NOW, generation=1, pod_selection=unreadable(NOW, 3, 1, "403")))
    assert blind["podSelection"]["removedPods"] == []
    assert "403" in blind["podSelection"]["message"]
