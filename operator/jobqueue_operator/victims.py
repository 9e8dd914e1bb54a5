"""Which Pods go on a scale-down, and the deletion costs that make the ReplicaSet agree.

Pure: the caller lists the Pods and passes the workers' heartbeats; the result
names the victims and the ``controller.kubernetes.io/pod-deletion-cost`` to
write on each Pod, once, right before ``/scale`` is lowered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobqueue_operator.observation import WorkerLoad

#: Deletion cost of the pods chosen to go: below the default 0 of every other pod.
VICTIM_COST = -1000
#: Base deletion cost of busy pods that stay; their run time in seconds is added.
PROTECTED_COST = 1000
#: Cap on the seconds added to a protected pod's cost (one day, as Windmill does).
PROTECTED_CAP_S = 86_400


@dataclass(frozen=True, slots=True)
class PodView:
    """A Pod of the target as the victim choice needs it (from the API server)."""

    name: str
    ready: bool
    terminating: bool = False
    #: The owning ReplicaSet; pod-deletion-cost orders pods only within one.
    owner: str | None = None


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
    owners = {p.owner for p in live}
    note = ""
    if len(owners) > 1:
        note = (
            f"pods belong to {len(owners)} ReplicaSets (a rollout): deletion cost orders "
            "pods only within one, so the choice may not be honoured"
        )
    if count < remove:
        note = "; ".join(filter(None, [note, f"only {count} pods to choose from"]))
    return VictimPlan(victims, tuple(protected), costs, note)
