"""A StatefulSet's scale-down: the Pods with the highest ordinals go, whatever they run (pure).

A StatefulSet ignores ``pod-deletion-cost``: lowering its replicas from R to D
removes the Pods with the R - D highest ordinals. The operator cannot choose
other victims, so for a StatefulSet busy-aware selection means making sure the
Pods that *will* go are idle first:

* drain first (:func:`plan_top_drain`, ``scaleDown.drainChosenPods``): the Pods
  the StatefulSet will remove are drained (they stop fetching), and ``/scale``
  is lowered only over the run of them, from the top, that a heartbeat shows
  idle. A busy Pod at the top holds the idle ones below it back, because
  lowering ``/scale`` past it would remove it first. No job is cut short;
* without drain first (:func:`choose_top`): the record names the Pods that go
  and which of them were busy; nothing is annotated, since no annotation would
  change the StatefulSet's choice.

The StatefulSet keeps the R lowest ordinals, so Pods above them (on their way
out, one at a time under ``OrderedReady``) are not members any more and are
never drained or counted again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jobqueue_operator.observation import WorkerLoad
from jobqueue_operator.victims import (
    DRAIN_CONFIRM_S,
    DrainPlan,
    PodView,
    VictimPlan,
    rebalance_drains,
)

NOTE = (
    "StatefulSet: it removes the highest ordinals and ignores pod-deletion-cost, "
    "so these Pods go whatever they run"
)


def is_ordered(pods: Sequence[PodView]) -> bool:
    """Whether these are a StatefulSet's Pods, every one with a known ordinal."""
    live = [p for p in pods if not p.terminating]
    return bool(live) and all(p.owner_kind == "StatefulSet" and p.ordinal is not None for p in live)


def members(pods: Sequence[PodView], replicas: int) -> list[PodView]:
    """The Pods the StatefulSet keeps at ``replicas``, highest ordinal first."""
    live = sorted((p for p in pods if not p.terminating), key=_ordinal)
    return sorted(live[: max(0, replicas)], key=_ordinal, reverse=True)


def _ordinal(pod: PodView) -> int:
    return pod.ordinal if pod.ordinal is not None else -1


def choose_top(
    pods: Sequence[PodView], loads: Sequence[WorkerLoad], *, current: int, remove: int
) -> VictimPlan:
    """The Pods a scale-down by ``remove`` takes away, with no costs (they would not count)."""
    kept = members(pods, current)
    unlisted = max(0, current - len(kept))
    victims = tuple(p.name for p in kept[: max(0, remove - unlisted)])
    busy = {load.pod_name for load in loads if load.active_jobs > 0}
    hit = [name for name in victims if name in busy]
    note = NOTE if not hit else f"{NOTE}; busy when removed: {', '.join(hit)}"
    return VictimPlan(victims, (), {}, note)


def plan_top_drain(
    pods: Sequence[PodView],
    loads: Sequence[WorkerLoad],
    drained: Mapping[str, float],
    *,
    replicas: int,
    desired: int,
    now: float,
    confirm_s: float = DRAIN_CONFIRM_S,
) -> DrainPlan:
    """Move the drained set towards ``desired`` Pods that fetch, always from the top.

    The same contract as :func:`~jobqueue_operator.victims.plan_drain`, but the
    drained Pods are always the highest ordinals: more capacity withdraws the
    lowest drained ones first (what stays drained is still the top); less drains
    the next ones below the drained set. Replicas with no Pod listed yet are the
    highest ordinals under ``OrderedReady`` and go first, at once.
    """
    by_pod = {load.pod_name: load for load in loads}
    live = members(pods, replicas)
    kept = {p.name: drained[p.name] for p in live if p.name in drained}
    # live is highest ordinal first: drain from the top, withdraw from the bottom.
    replicas, withdrawn, fresh = rebalance_drains(
        live, kept, replicas=replicas, desired=desired, rank=lambda p: -_ordinal(p)
    )
    kept.update((p.name, now) for p in fresh)
    remove: list[str] = []
    for pod in live:  # from the top: lowering /scale by k removes the k highest
        if pod.name not in kept:
            break
        load = by_pod.get(pod.name)
        cold = not pod.ready and load is None  # never came up: nothing to interrupt
        idle = (load is None or load.active_jobs <= 0) and now - kept[pod.name] >= confirm_s
        if not (cold or idle):
            break
        remove.append(pod.name)
    return DrainPlan(
        replicas=max(0, replicas - len(remove)),
        drained={name: at for name, at in kept.items() if name not in remove},
        remove=tuple(remove),
        withdrawn=tuple(withdrawn),
        costs={},
    )
