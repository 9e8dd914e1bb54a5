"""Phase 4 of a poll: what one tick learnt goes to status, Events and metrics.

The status comes from one typed model (``status.model``, the pydantic
``JobQueueStatus`` the CRD declares). A status whose decision did not change is
rewritten only every :data:`STATUS_REFRESH_S`: with many JobQueues, a PATCH per
poll for a moving queue sample would be most of the operator's API traffic.
The write itself goes through :mod:`status_writes`: in the operator it leaves
the poll's path (a new decision first), so the API server's pace never sets the
polling rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobqueue_operator import metrics
from jobqueue_operator import status as status_mod
from jobqueue_operator.policy import Action, Reason
from jobqueue_operator.ports import KubeError, KubePort, ObjectRef
from jobqueue_operator.status import Tick
from jobqueue_operator.status_writes import StatusWrites

#: A status whose decision did not change (only the queue sample and the messages
#: that quote it moved, :func:`status.same_decision`) is rewritten this often.
STATUS_REFRESH_S = 30.0

_SCALE_EVENTS = {Action.SCALE_UP: "ScaledUp", Action.SCALE_DOWN: "ScaledDown"}


@dataclass
class Reporter:
    """The status, Events and gauges of one JobQueue."""

    kube: KubePort
    writes: StatusWrites
    namespace: str
    name: str
    #: The last status handed to ``writes`` (written, or on its way).
    previous_status: dict[str, Any] = field(default_factory=dict)
    _written_at: float | None = None  # memory only: a restart writes at once
    _submitted: bool = False  # this Reporter's first status is urgent, like a new decision
    #: The trouble last announced by a Warning Event (reason), to post on change only.
    _announced: str | None = None

    async def report(self, body: Mapping[str, Any], tick: Tick) -> None:
        """Write the status (when it changed or is due), post Events, set the gauges."""
        new_status = status_mod.build(self.previous_status, tick)
        written = self._written_at
        unchanged = (
            written is not None
            and tick.now - written < STATUS_REFRESH_S
            and status_mod.same_decision(new_status, self.previous_status)
        )
        if not unchanged:
            # A new decision (or the first status) goes before the routine refreshes;
            # a write again after a failure does not (under API errors every JobQueue
            # writes again, and the new decisions must still go first).
            urgent = not self._submitted or not status_mod.same_decision(
                new_status, self.previous_status
            )
            self._submitted = True
            self.previous_status = new_status
            self._written_at = tick.now
            await self.writes.submit(
                (self.namespace, self.name), new_status, urgent=urgent, on_failure=self._failed
            )
        await self._events(body, tick)
        self._gauges(tick)

    def _failed(self, error: KubeError) -> None:
        """The write failed: count it, and have the next poll write again."""
        metrics.API_ERRORS.labels(self.namespace, self.name, "status").inc()
        self._written_at = None

    async def _events(self, body: Mapping[str, Any], tick: Tick) -> None:
        meta = body.get("metadata", {})
        ref = ObjectRef(self.namespace, self.name, meta.get("uid"))
        decision = tick.decision
        if decision is not None and decision.action is not Action.HOLD and tick.problem is None:
            reason = _SCALE_EVENTS[decision.action]
            if decision.reason is Reason.FALLBACK:
                reason = "ScaledToFallback"
            target = "the target" if tick.target is None else tick.target.describe()
            text = (
                f"Scaled {target} from {tick.current_replicas} to "
                f"{decision.desired}: {decision.reason.value}: {decision.message}"
            )
            await self.kube.post_event(ref, reason, text, warning=False)
        # Warnings only when the trouble changes, not on every tick of an outage.
        trouble = None
        if tick.problem is not None:
            trouble = (tick.problem.reason, tick.problem.message)
        elif tick.metrics_error is not None:
            trouble = ("MetricsUnavailable", tick.metrics_error)
        key = trouble[0] if trouble else None
        if key != self._announced:
            if trouble is not None:
                await self.kube.post_event(ref, trouble[0], trouble[1], warning=True)
            elif self._announced is not None:
                await self.kube.post_event(
                    ref, "Recovered", f"Recovered from {self._announced}", warning=False
                )
            self._announced = key

    def _gauges(self, tick: Tick) -> None:
        labels = (self.namespace, self.name)
        if tick.observation is not None:
            metrics.QUEUE_DEPTH.labels(*labels).set(tick.observation.depth)
            metrics.OLDEST_AGE.labels(*labels).set(tick.observation.oldest_age_s)
            metrics.IN_FLIGHT.labels(*labels).set(tick.observation.in_flight)
            metrics.DEAD_JOBS.labels(*labels).set(tick.observation.dead)
        if tick.current_replicas is not None:
            metrics.CURRENT_REPLICAS.labels(*labels).set(tick.current_replicas)
        if tick.decision is not None:
            metrics.DESIRED_REPLICAS.labels(*labels).set(tick.decision.desired)
        if tick.draining is not None:
            metrics.DRAINING_PODS.labels(*labels).set(len(tick.draining))
        if tick.min_replicas is not None and tick.max_replicas is not None:
            metrics.MIN_REPLICAS.labels(*labels).set(tick.min_replicas)
            metrics.MAX_REPLICAS.labels(*labels).set(tick.max_replicas)
