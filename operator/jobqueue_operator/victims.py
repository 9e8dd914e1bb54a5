"""Which Pods go on a scale-down, and the deletion costs that make the ReplicaSet agree.

Pure: the caller lists the Pods and passes the workers' heartbeats. Two ways to
scale down:

* :func:`choose_victims` names the victims and the
  ``controller.kubernetes.io/pod-deletion-cost`` to write on each Pod, once,
  right before ``/scale`` is lowered (a job still running on a victim has the
  termination grace period to finish);
* :func:`plan_drain` (``scaleDown.drainChosenPods``) drains first: the chosen
  Pods are listed in the drain hash and stop fetching, still counted in
  ``/scale``; ``/scale`` is lowered only by the drained Pods a heartbeat shows
  idle, with the deletion cost that makes the ReplicaSet remove exactly those.
  No job is ever interrupted, whatever its length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobqueue_operator.observation import Observation, WorkerLoad

#: Deletion cost of the pods chosen to go: below the default 0 of every other pod.
VICTIM_COST = -1000
#: Base deletion cost of busy pods that stay; their run time in seconds is added.
PROTECTED_COST = 1000
#: Cap on the seconds added to a protected pod's cost (one day, as Windmill does).
PROTECTED_CAP_S = 86_400


#: The label the StatefulSet controller puts on each of its Pods with its ordinal.
POD_INDEX = "apps.kubernetes.io/pod-index"


@dataclass(frozen=True, slots=True)
class PodView:
    """A Pod of the target as the victim choice needs it (from the API server)."""

    name: str
    ready: bool
    terminating: bool = False
    #: The controlling owner (a Deployment's ReplicaSet); pod-deletion-cost orders
    #: pods only within one ReplicaSet.
    owner: str | None = None
    #: The owner's kind; ``None`` when unknown (then it is treated as a ReplicaSet).
    owner_kind: str | None = None
    #: A StatefulSet Pod's ordinal: the StatefulSet removes the highest first.
    ordinal: int | None = None


def pod_view(pod: Any) -> PodView:
    """A Pod as the API client returns it (``V1Pod``), reduced to what the choice needs."""
    meta, status = pod.metadata, pod.status
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    owner = next((ref for ref in meta.owner_references or [] if ref.controller), None)
    ordinal = None
    if owner is not None and owner.kind == "StatefulSet":
        index = (meta.labels or {}).get(POD_INDEX) or meta.name.rpartition("-")[2]
        ordinal = int(index) if index.isdigit() else None
    return PodView(
        name=meta.name,
        ready=ready,
        terminating=meta.deletion_timestamp is not None,
        owner=None if owner is None else owner.name,
        owner_kind=None if owner is None else owner.kind,
        ordinal=ordinal,
    )


def owner_note(pods: Sequence[PodView]) -> str:
    """What the choice cannot promise when the Pods' controller is not a ReplicaSet."""
    kinds = sorted({p.owner_kind for p in pods if p.owner_kind not in (None, "ReplicaSet")})
    if not kinds:
        return ""
    return (
        f"the Pods are controlled by {', '.join(kinds)}: ReplicaSets honour "
        "pod-deletion-cost, whether this controller does is unknown (removedPods says what went)"
    )


@dataclass(frozen=True, slots=True)
class VictimPlan:
    """Which Pods should go on a scale-down and the deletion cost to write on each.

    ``costs`` holds only the Pods to annotate: victims (low) and busy survivors
    (high). Idle survivors keep the default 0, which is already between the two.
    """

    victims: tuple[str, ...]
    protected: tuple[str, ...]
    costs: Mapping[str, int]
    note: str = ""


def _removal_rank(pod: PodView, load: WorkerLoad | None) -> tuple[int, float, float, int, str]:
    """Sort key, lowest goes first; mirrors what the ReplicaSet itself must respect.

    NotReady pods go first whatever their cost (ReplicaSet rule 3 precedes the
    cost), so the plan names them first too. Then pods with no heartbeat (a worker
    that never came up or hung: nothing to lose), then idle workers, then busy
    ones whose longest-running job has run the least (a job far into a heavy tail
    is the one most likely to outlast the grace period), then the least summed
    run time, then the fewest jobs processed (the youngest). The name breaks ties
    so the choice is deterministic.
    """
    if not pod.ready:
        return (0, 0.0, 0.0, 0, pod.name)
    if load is None:
        return (1, 0.0, 0.0, 0, pod.name)
    if load.active_jobs <= 0:
        return (2, 0.0, 0.0, load.processed, pod.name)
    return (3, load.longest_s, load.busy_s, load.processed, pod.name)


def choose_victims(pods: Sequence[PodView], loads: Sequence[WorkerLoad], remove: int) -> VictimPlan:
    """The ``remove`` Pods to delete first and the costs that make the ReplicaSet agree.

    Pure: the caller lists the Pods and passes the heartbeats. Pods already
    terminating are not candidates (they are on their way out and do not count
    towards the replicas the ReplicaSet keeps). Costs are written once, right
    before ``/scale`` is lowered, and removed afterwards: the Kubernetes documentation
    asks for that, not for a cost kept up to date.
    """
    by_pod = {load.pod_name: load for load in loads}
    live = [p for p in pods if not p.terminating]
    ranked = sorted(live, key=lambda p: _removal_rank(p, by_pod.get(p.name)))
    count = max(0, min(remove, len(ranked)))
    victims = tuple(p.name for p in ranked[:count])
    costs = dict.fromkeys(victims, VICTIM_COST)
    protected = []
    for pod in ranked[count:]:
        load = by_pod.get(pod.name)
        if load is not None and load.active_jobs > 0:
            protected.append(pod.name)
            costs[pod.name] = PROTECTED_COST + int(min(max(load.busy_s, 0.0), PROTECTED_CAP_S))
    owners = {p.owner for p in live if p.owner_kind in (None, "ReplicaSet")}
    note = owner_note(live)
    if len(owners) > 1:
        rollout = (
            f"pods belong to {len(owners)} ReplicaSets (a rollout): deletion cost orders "
            "pods only within one, so the choice may not be honoured"
        )
        note = "; ".join(filter(None, [rollout, note]))
    if count < remove:
        note = "; ".join(filter(None, [note, f"only {count} pods to choose from"]))
    return VictimPlan(victims, tuple(protected), costs, note)


#: A drained Pod is idle for good only when a heartbeat written after the drain
#: says so: the workers heartbeat every 5 s, so a heartbeat read this long after
#: the drain request is newer than it, and a drained worker fetches nothing.
DRAIN_CONFIRM_S = 6.0


@dataclass(frozen=True, slots=True)
class DrainPlan:
    """One tick of a drain-first scale-down (or of its withdrawal on a scale-up).

    ``drained`` maps each Pod that stays drained to when it was first listed
    (rewrite them in the drain hash every tick: the hash has a TTL). ``remove``
    are drained Pods provably idle: write ``costs`` on the Pods, then ``/scale``
    = ``replicas``; they stay in the drain hash until they are gone (its TTL
    clears them). ``withdrawn`` leave the drain hash and fetch again.
    """

    replicas: int
    drained: Mapping[str, float]
    remove: tuple[str, ...]
    withdrawn: tuple[str, ...]
    costs: Mapping[str, int]


def drained_capacity(replicas: int, drained: Collection[str]) -> int:
    """The replicas the policy may count on: those not drained."""
    return max(0, replicas - len(drained))


def rebalance_drains(
    live: Sequence[PodView],
    kept: dict[str, float],
    *,
    replicas: int,
    desired: int,
    rank: Callable[[PodView], Any],
) -> tuple[int, list[str], list[PodView]]:
    """Move the drained set towards ``desired`` Pods that fetch, as both planners do.

    More: withdraw drains first (a drained Pod is already warm), highest ``rank``
    first, and raise ``/scale`` for the rest. Fewer: first the replicas the API
    server lists no Pod for yet (they have nothing to interrupt, and the
    controller removes a Pod not yet created first: they go at once), then the
    undrained Pods, lowest ``rank`` first, are the ones to drain next. Withdrawn
    Pods leave ``kept``. Returns ``/scale``'s new count, the withdrawn names and
    the Pods to drain (the caller adds them to ``kept``, or removes them at once).
    """
    capacity = drained_capacity(replicas, kept)
    if desired > capacity:
        back = sorted((p for p in live if p.name in kept), key=rank, reverse=True)
        withdrawn = [p.name for p in back[: desired - capacity]]
        for name in withdrawn:
            del kept[name]
        return replicas + desired - capacity - len(withdrawn), withdrawn, []
    if desired < capacity:
        unlisted = min(max(0, replicas - len(live)), capacity - desired)
        fresh = sorted((p for p in live if p.name not in kept), key=rank)
        return replicas - unlisted, [], fresh[: capacity - desired - unlisted]
    return replicas, [], []


def without_drained(obs: Observation, drained: Collection[str]) -> Observation:
    """The poll as the policy must see it while Pods drain: their jobs and slots apart.

    A drained Pod finishes what it runs and takes nothing new, so its jobs are
    neither work for the remaining Pods nor capacity for the waiting ones.
    """
    if not drained:
        return obs
    gone = [w for w in obs.worker_loads if w.pod_name in drained]
    jobs = sum(max(0, w.active_jobs) for w in gone)
    busy = sum(1 for w in gone if w.active_jobs > 0)
    return dataclasses.replace(
        obs,
        in_flight=max(0, obs.in_flight - jobs),
        busy_workers=max(0, obs.busy_workers - busy),
        workers=max(0, obs.workers - len(gone)),
        worker_loads=tuple(w for w in obs.worker_loads if w.pod_name not in drained),
    )


def plan_drain(
    pods: Sequence[PodView],
    loads: Sequence[WorkerLoad],
    drained: Mapping[str, float],
    *,
    replicas: int,
    desired: int,
    now: float,
    confirm_s: float = DRAIN_CONFIRM_S,
) -> DrainPlan:
    """Move the drain set towards ``desired`` Pods that fetch, and remove the idle drained.

    ``desired`` is the policy's count for the Pods that fetch (it decided on
    :func:`drained_capacity` and :func:`without_drained`). Fewer: drain the next
    Pods by the removal rank. More: withdraw drains first (a drained Pod is
    already warm), then raise ``/scale`` for the rest; so ``/scale`` is raised
    only when nothing is drained. A drained Pod goes off ``/scale`` once it is
    idle: a heartbeat read ``confirm_s`` or more after its drain shows no job
    (or there is no heartbeat: a worker that never came up has nothing to lose).
    A Pod to go that is not Ready and has no heartbeat at all is not drained but
    removed at once, like a replica with no Pod yet.
    While another Pod is NotReady nothing is removed, as the ReplicaSet would
    take that Pod first, whatever its cost.
    """
    by_pod = {load.pod_name: load for load in loads}
    live = [p for p in pods if not p.terminating]
    names = {p.name for p in live}
    kept = {name: at for name, at in drained.items() if name in names}
    # Withdrawn busiest first: a drained Pod with work has the least left to wait for.
    replicas, withdrawn, candidates = rebalance_drains(
        live,
        kept,
        replicas=replicas,
        desired=desired,
        rank=lambda p: _removal_rank(p, by_pod.get(p.name)),
    )
    # Not Ready with no heartbeat (Pending, or a worker that never came up): no job
    # to protect, and the ReplicaSet removes such Pods first anyway. They go now.
    cold = tuple(p.name for p in candidates if not p.ready and p.name not in by_pod)
    kept.update((p.name, now) for p in candidates if p.name not in cold)
    remove = (*cold, *_idle_drained(live, by_pod, kept, now, confirm_s=confirm_s, going=cold))
    costs: dict[str, int] = {}
    if remove:
        costs = dict.fromkeys(remove, VICTIM_COST)
        for pod in live:
            load = by_pod.get(pod.name)
            if pod.name not in costs and load is not None and load.active_jobs > 0:
                costs[pod.name] = PROTECTED_COST + int(min(max(load.busy_s, 0.0), PROTECTED_CAP_S))
    return DrainPlan(
        replicas=max(0, replicas - len(remove)),
        drained={name: at for name, at in kept.items() if name not in remove},
        remove=remove,
        withdrawn=tuple(withdrawn),
        costs=costs,
    )


def _idle_drained(
    live: Sequence[PodView],
    by_pod: Mapping[str, WorkerLoad],
    drained: Mapping[str, float],
    now: float,
    *,
    confirm_s: float,
    going: Collection[str],
) -> tuple[str, ...]:
    if any(not p.ready and p.name not in drained and p.name not in going for p in live):
        return ()
    out = []
    for pod in live:
        if pod.name not in drained:
            continue
        load = by_pod.get(pod.name)
        jobs = load.active_jobs if load is not None else 0
        if jobs > 0:
            continue
        # Even a NotReady Pod waits: it may have become Ready and fetched a job
        # just before its drain, and only a later heartbeat shows that.
        if now - drained[pod.name] >= confirm_s:
            out.append(pod.name)
    return tuple(sorted(out))
