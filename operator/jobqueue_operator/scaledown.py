"""The busy-aware scale-down of one JobQueue, as one state machine (pure, no I/O).

Without drain-first (``scaleDown.drainChosenPods: false``, or a drain write
Redis refused), right before ``/scale`` is lowered the loop lists the target's
Pods and :meth:`ScaleDown.choose` picks the ones to go from the worker
heartbeats (:func:`~jobqueue_operator.victims.choose_victims`): a low
``pod-deletion-cost`` on those, a high one on the busy survivors, and, when
Redis takes it, their names in the queues' drain hashes so their workers start
no job the deletion would interrupt. On a later tick, when
the ReplicaSet has acted or after :data:`SETTLE_S`, :meth:`ScaleDown.settle_due`
says which annotations to remove and :meth:`ScaleDown.settled` records which
Pods actually went. The costs are written once and removed again because the
ReplicaSet reads them only at the moment it scales down; a cost left behind
would skew the next, unrelated scale-down.

States: idle (no selection) → chosen (annotated, maybe drained) → settled
(back to idle). A scale-up while chosen withdraws the drain at once; a new
scale-down while chosen replaces the choice. Pods taken off a selection are
queued in :attr:`ScaleDown.undrain` until their withdrawal succeeds.

Drain first (``scaleDown.drainChosenPods``, the default): a scale-down does not
lower ``/scale`` at once. :meth:`ScaleDown.plan` drains the Pods to go
(:func:`~jobqueue_operator.victims.plan_drain`): they stay in
:attr:`ScaleDown.draining`, still counted in ``/scale`` but not in the capacity
the policy decides on, and fetch nothing; a later tick removes each one a
heartbeat shows idle, through the same choice → settled states. So no job is
cut short by a scale-down, however long it runs.

A StatefulSet's Pods (``ordinals.is_ordered``) go by ordinal, not by cost: the
same states, with ``ordinals.plan_top_drain`` and ``ordinals.choose_top``.

The machine decides; ``act.py`` does the writes and reports their outcome back
through :meth:`ScaleDown.chosen` and :meth:`ScaleDown.withdrawn`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from jobqueue_operator.ordinals import choose_top, is_ordered, plan_top_drain
from jobqueue_operator.policy import WorkerLoad
from jobqueue_operator.status import from_rfc3339, to_rfc3339
from jobqueue_operator.status_models import PodSelectionRecord
from jobqueue_operator.victims import (
    DrainPlan,
    PodView,
    choose_victims,
    drained_capacity,
    owner_note,
    plan_drain,
)

#: How long after a scale-down the loop waits for the ReplicaSet to remove the
#: Pods before it records what went and removes the deletion costs anyway.
SETTLE_S = 60.0
#: A drain entry outlives the settle window, so one left by a dead operator goes too.
DRAIN_TTL_S = SETTLE_S + 30.0
#: The most Pod names listed in ``status.podSelection`` per list.
MAX_LISTED_PODS = 50


@dataclass
class PodSelection:
    """A scale-down whose Pods were chosen and annotated, until it has settled."""

    at: float
    from_replicas: int
    to_replicas: int
    chosen: tuple[str, ...]
    protected: tuple[str, ...]
    annotated: tuple[str, ...]
    before: tuple[str, ...]
    note: str = ""
    #: Listed in the queues' drain hashes (scaleDown.drainChosenPods), until settled.
    drained: tuple[str, ...] = ()
    #: Who removes the Pods, for the record's message.
    controller: str = "ReplicaSet"

    def record(self, *, removed: Sequence[str] | None = None) -> PodSelectionRecord:
        """``status.podSelection``; ``removed`` is known only once it settled."""
        message = self.note
        if removed is not None:
            unexpected = sorted(set(removed) - set(self.chosen))
            spared = sorted(set(self.chosen) - set(removed))
            if unexpected:
                went = ", ".join(unexpected)
                text = f"the {self.controller} removed {went}, which were not chosen"
            elif spared:
                text = f"chosen but still running: {', '.join(spared)}"
            else:
                text = f"the {self.controller} removed exactly the chosen Pods"
            message = "; ".join(filter(None, [text, self.note]))
        return PodSelectionRecord(
            time=to_rfc3339(self.at),
            from_replicas=self.from_replicas,
            to_replicas=self.to_replicas,
            chosen_pods=list(self.chosen[:MAX_LISTED_PODS]),
            protected_pods=list(self.protected[:MAX_LISTED_PODS]),
            drain_requested=list(self.drained[:MAX_LISTED_PODS]),
            removed_pods=None if removed is None else list(removed[:MAX_LISTED_PODS]),
            settled=removed is not None,
            message=message,
        )

    @classmethod
    def from_status(cls, raw: object) -> PodSelection | None:
        """An unsettled selection a previous operator left, so its annotations get removed."""
        if not isinstance(raw, Mapping) or raw.get("settled", True):
            return None
        chosen = tuple(str(n) for n in raw.get("chosenPods") or [])
        protected = tuple(str(n) for n in raw.get("protectedPods") or [])
        return cls(
            at=from_rfc3339(raw.get("time")) or 0.0,
            from_replicas=int(raw.get("fromReplicas") or 0),
            to_replicas=int(raw.get("toReplicas") or 0),
            chosen=chosen,
            protected=protected,
            annotated=chosen + protected,
            before=chosen + protected,
            note=str(raw.get("message") or ""),
            drained=tuple(str(n) for n in raw.get("drainRequested") or []),
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """What a scale-down asks ``act.py`` to write before ``/scale`` is lowered."""

    #: The selection this becomes once written (nothing annotated or drained yet).
    selection: PodSelection
    #: Pod → deletion cost to write (victims low, busy survivors high).
    costs: Mapping[str, int]
    #: Annotations of an earlier, unsettled choice that the new one does not keep.
    stale: tuple[str, ...]
    #: The Pods to list in the drain hashes (empty when draining is off).
    drain: tuple[str, ...]
    #: Pods a drain-first step listed already (recorded as drained, not written again).
    already_drained: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DrainStep:
    """One tick of a drain-first scale-down: the plan, and the removal of idle drained Pods."""

    plan: DrainPlan
    #: The costs and selection of ``plan.remove``; ``None`` when no drained Pod is idle.
    removal: Choice | None


@dataclass
class ScaleDown:
    """The selection/drain state of one JobQueue between ticks."""

    selection: PodSelection | None = None
    #: Pods to take off the drain hashes again (retried every tick until it works).
    undrain: set[str] = field(default_factory=set)
    #: Drain first: Pod → when it was drained; still in ``/scale``, fetching nothing.
    draining: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_status(cls, raw: object, draining: object = None, *, now: float = 0.0) -> ScaleDown:
        """Resume from ``status.podSelection`` and ``status.drainingPods``.

        An unsettled selection is cleaned up later. The Pods a previous operator
        drained stay drained, as of ``now``: a heartbeat must show each idle
        :data:`~jobqueue_operator.victims.DRAIN_CONFIRM_S` after this restart
        before it goes, whatever happened to the drain hash meanwhile.
        """
        names = draining if isinstance(draining, list) else []
        return cls(
            selection=PodSelection.from_status(raw),
            draining={str(name): now for name in names},
        )

    @property
    def pending(self) -> bool:
        """Whether a scale-down waits to settle or Pods drain (then every tick lists the Pods)."""
        return self.selection is not None or bool(self.draining)

    def capacity(self, replicas: int) -> int:
        """The replicas the policy counts on: ``/scale`` less the Pods draining."""
        return drained_capacity(replicas, self.draining)

    def plan(
        self,
        pods: Sequence[PodView],
        loads: Sequence[WorkerLoad],
        *,
        replicas: int,
        desired: int,
        now: float,
    ) -> DrainStep:
        """Drain first: move the drained set towards ``desired`` Pods that fetch.

        ``desired`` is the policy's count for the Pods that fetch (it decided on
        :meth:`capacity`). Nothing changes here until :meth:`drains_written`.
        """
        ordered = is_ordered(pods)
        planner = plan_top_drain if ordered else plan_drain
        plan = planner(pods, loads, self.draining, replicas=replicas, desired=desired, now=now)
        if not plan.remove:
            return DrainStep(plan, None)
        stale: tuple[str, ...] = ()
        if self.selection is not None:  # an earlier removal that has not settled yet
            stale = tuple(sorted(set(self.selection.annotated) - set(plan.costs)))
            self.undrain.update(set(self.selection.drained) - set(plan.remove))
        protected = tuple(sorted(pod for pod in plan.costs if pod not in plan.remove))
        before = tuple(p.name for p in pods if not p.terminating)
        note = "drained first: removed once a heartbeat after the drain showed them idle"
        if ordered:
            note += "; StatefulSet: the highest ordinals, drained before /scale went down"
        note = "; ".join(filter(None, [note, owner_note(pods)]))
        controller = "StatefulSet" if ordered else "ReplicaSet"
        selection = PodSelection(
            now, replicas, plan.replicas, plan.remove, protected, (), before, note, (), controller
        )
        choice = Choice(selection, dict(plan.costs), stale, (), already_drained=plan.remove)
        return DrainStep(plan, choice)

    def drains_written(self, plan: DrainPlan) -> None:
        """The drain hashes list ``plan``'s Pods: they are the drained set now."""
        self.draining = dict(plan.drained)
        self.undrain.update(plan.withdrawn)
        self.undrain.difference_update(plan.drained)
        self.undrain.difference_update(plan.remove)

    def stop_draining(self) -> bool:
        """Drain first is off (paused, switched off, or it could not write): all fetch again.

        ``True`` when there were drains to withdraw.
        """
        had = bool(self.draining)
        self.undrain.update(self.draining)
        self.draining = {}
        return had

    def settle_due(self, live: Iterable[str], now: float) -> tuple[str, ...] | None:
        """The annotations to remove when the pending scale-down has settled, else ``None``.

        Settled once no more Pods run than the scale-down asked for, or after
        :data:`SETTLE_S` (a Pod stuck in termination, a later scale-up).
        """
        selection = self.selection
        if selection is None:
            return None
        running = set(live)
        if len(running) > selection.to_replicas and now - selection.at < SETTLE_S:
            return None
        return tuple(pod for pod in selection.annotated if pod in running)

    def settled(self, live: Iterable[str]) -> PodSelectionRecord:
        """The annotations are gone: record which Pods went and queue their drain's withdrawal."""
        selection = self.selection
        assert selection is not None
        running = set(live)
        removed = [name for name in selection.before if name not in running]
        self.undrain.update(selection.drained)
        self.selection = None
        return selection.record(removed=removed)

    def choose(
        self,
        pods: Sequence[PodView],
        loads: Sequence[WorkerLoad],
        *,
        current: int,
        desired: int,
        now: float,
        drain: bool,
    ) -> Choice:
        """Which Pods go on this scale-down, and what an unsettled earlier choice leaves."""
        ordered = is_ordered(pods)
        if ordered:
            plan = choose_top(pods, loads, current=current, remove=current - desired)
        else:
            plan = choose_victims(pods, loads, current - desired)
        stale: tuple[str, ...] = ()
        if self.selection is not None:  # an earlier choice that has not settled yet
            stale = tuple(sorted(set(self.selection.annotated) - set(plan.costs)))
            self.undrain.update(set(self.selection.drained) - set(plan.victims))
        before = tuple(p.name for p in pods if not p.terminating)
        proposed = PodSelection(
            now,
            current,
            desired,
            plan.victims,
            plan.protected,
            (),
            before,
            plan.note,
            controller="StatefulSet" if ordered else "ReplicaSet",
        )
        return Choice(proposed, dict(plan.costs), stale, plan.victims if drain else ())

    def chosen(
        self,
        choice: Choice,
        *,
        annotated: Sequence[str],
        drained: Sequence[str],
        problems: Sequence[str],
    ) -> PodSelectionRecord:
        """The writes of ``choice`` are done (some may have failed): it is now pending."""
        drained = (*choice.already_drained, *drained)
        self.undrain.difference_update(drained)
        proposed = choice.selection
        self.selection = replace(
            proposed,
            annotated=tuple(annotated),
            note="; ".join(filter(None, [proposed.note, *problems[:3]])),
            drained=tuple(drained),
        )
        return self.selection.record()

    def scaling_up(self) -> bool:
        """Scaling up (or down blind) before the scale-down settled.

        The Pods the ReplicaSet has not removed yet must fetch again now, not after
        :data:`SETTLE_S`; ``True`` when there are drains to withdraw.
        """
        if self.selection is None or not self.selection.drained:
            return False
        self.undrain.update(self.selection.drained)
        self.selection.drained = ()
        return True

    def withdrawn(self, pods: Iterable[str]) -> None:
        """These Pods are off the drain hashes."""
        self.undrain.difference_update(pods)


def unreadable(now: float, current: int, desired: int, message: str) -> PodSelectionRecord:
    """``status.podSelection`` when the Pods could not be listed: scaled down blind."""
    return PodSelection(now, current, desired, (), (), (), (), message).record(removed=[])
