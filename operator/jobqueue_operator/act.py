"""Phase 3 of a poll: the writes. ``/scale``, deletion costs and drain requests.

The decisions were made before (``policy.decide`` and the
:class:`~jobqueue_operator.scaledown.ScaleDown` state machine); this module
carries them out in the order that makes them safe (costs and drains before
``/scale`` is lowered) and tells the state machine how each write went.
Every write is best effort except ``/scale`` itself: a scale-down whose Pods
could not be annotated still happens (the policy already kept the busy
workers' count), and the reason is in ``status.podSelection.message``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from jobqueue_operator import metrics
from jobqueue_operator.ports import DrainError, KubeError, KubePort, QueuePort
from jobqueue_operator.scaledown import DRAIN_TTL_S, Choice, DrainStep, ScaleDown
from jobqueue_operator.status_models import PodSelectionRecord
from jobqueue_operator.targets import TargetRef

log = logging.getLogger("jobqueue_operator")


@dataclass
class Actor:
    """The writes of one JobQueue's loop."""

    kube: KubePort
    queues: QueuePort
    namespace: str
    name: str

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _api_error(self, what: str) -> None:
        metrics.API_ERRORS.labels(self.namespace, self.name, what).inc()

    async def remove_costs(self, pods: Sequence[str]) -> bool:
        """Take the deletion costs off again; ``False`` (retry next tick) on an API error."""
        for pod in pods:
            try:
                await self.kube.set_deletion_cost(self.namespace, pod, None)
            except KubeError:
                self._api_error("pods")
                return False  # the annotation must not stay: the next tick tries again
        return True

    async def withdraw(self, machine: ScaleDown) -> None:
        """Take settled or superseded Pods off the drain hashes (retried every tick)."""
        if not machine.undrain:
            return
        pods = sorted(machine.undrain)
        try:
            done = await self.queues.withdraw_drain(pods)
        except DrainError as exc:
            log.warning(
                "JobQueue %s: could not withdraw the drain of %s: %s", self.owner, pods, exc
            )
            return
        if done:
            machine.withdrawn(pods)

    async def drain(self, machine: ScaleDown, step: DrainStep, now: float) -> DrainError | None:
        """Write a drain-first step's drain hashes; the error when Redis refused them.

        Every Pod still drained is listed again each tick (the hash has a TTL, so
        the drains of an operator that died do not keep workers idle), with the
        idle ones about to be removed, which must not fetch before they go.
        """
        plan = step.plan
        listed = sorted({*plan.drained, *plan.remove})
        if listed:
            try:
                await self.queues.request_drain(listed, now, ttl_s=DRAIN_TTL_S)
            except DrainError as exc:
                log.warning("JobQueue %s: could not drain %s: %s", self.owner, listed, exc)
                return exc
        new = sorted(set(plan.drained) - set(machine.draining))
        if new:
            log.info("JobQueue %s: draining %s before removing them", self.owner, ", ".join(new))
        machine.drains_written(plan)
        await self.withdraw(machine)
        return None

    async def prepare_scale_down(
        self, machine: ScaleDown, choice: Choice, target: TargetRef
    ) -> PodSelectionRecord:
        """Annotate the chosen Pods and request their drain, right before ``/scale``."""
        for pod in choice.stale:
            with contextlib.suppress(KubeError):
                await self.kube.set_deletion_cost(self.namespace, pod, None)
        annotated, problems = [], []
        for pod, cost in choice.costs.items():
            try:
                await self.kube.set_deletion_cost(self.namespace, pod, cost)
                annotated.append(pod)
            except KubeError as exc:
                problems.append(str(exc))
        if problems:
            self._api_error("pods")
        chosen = choice.selection
        drained: tuple[str, ...] = ()
        if choice.drain:  # a drain-first removal's Pods were listed already
            try:
                if await self.queues.request_drain(choice.drain, chosen.at, ttl_s=DRAIN_TTL_S):
                    drained = choice.drain
            except DrainError as exc:
                problems.append(f"drain request failed: {exc}")
        log.info(
            "JobQueue %s: scaling %s down to %d; chosen to go: %s; kept busy: %s",
            self.owner,
            target.describe(),
            chosen.to_replicas,
            ", ".join(chosen.chosen) or "-",
            ", ".join(chosen.protected) or "-",
        )
        return machine.chosen(choice, annotated=annotated, drained=drained, problems=problems)

    async def scale(
        self, target: TargetRef, current: int, desired: int, reason: str
    ) -> KubeError | None:
        """Write the absolute count through ``/scale``; the error when it failed."""
        try:
            await self.kube.set_replicas(self.namespace, target, desired)
        except KubeError as exc:
            self._api_error("scale")
            return exc
        up = desired > current
        metrics.SCALE_ACTIONS.labels(self.namespace, self.name, "up" if up else "down").inc()
        log.info(
            "Scaled %s of JobQueue %s from %d to %d (%s)",
            target.describe(),
            self.owner,
            current,
            desired,
            reason,
        )
        return None
