"""Phase 1 of a poll: every Kubernetes and Redis read one JobQueue's tick needs.

Reads that rarely change are cached here (the Secret, the worker's resource
requests, the namespace's HPAs in :class:`~jobqueue_operator.claims.HpaClaims`),
so a poll normally costs one Redis round trip and no API request: the target's
replicas of a Deployment come from the namespace's Deployment watch (any other
kind costs one ``/scale`` read per poll). Two reads depend on the
decision and are made only when the loop is about to write: ``/scale`` itself
(:meth:`Gatherer.fresh_replicas`) and the target's Pods for a scale-down
(:meth:`Gatherer.pods`).

A failed read becomes a :class:`~jobqueue_operator.status.Problem` or a
``MetricsMissing``; nothing raises out of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from jobqueue_operator import metrics
from jobqueue_operator.claims import Claim, ClaimsOn, HpaClaims, conflict
from jobqueue_operator.models import JobQueueSpec
from jobqueue_operator.policy import MetricsMissing, Observation
from jobqueue_operator.ports import (
    Expansion,
    KubeError,
    KubePort,
    NoPodSelectorError,
    PollRequest,
    QueuePort,
    QueueSource,
    SecretError,
    TargetKindError,
)
from jobqueue_operator.redis_spec import secret_refs
from jobqueue_operator.status import Problem
from jobqueue_operator.targets import TargetRef
from jobqueue_operator.victims import PodView

#: How long a Secret read and the worker's resource requests stay fresh. Both
#: change rarely; re-reading them every tick would cost a request per JobQueue
#: per poll. A change of target or Secret reference re-reads at once.
REFRESH_S = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    """The target's replicas and where they came from."""

    replicas: int
    #: From the namespace's Deployment watch, not ``/scale``: re-read before a write.
    watched: bool
    #: Another JobQueue or an HPA scales it: the replicas are reported, nothing is done.
    conflict: Problem | None = None


@dataclass(frozen=True, slots=True)
class Queues:
    """This poll of the queues: an observation, or why there is none."""

    observation: Observation | MetricsMissing
    #: The last pattern expansion (``None`` until one succeeded).
    expansion: Expansion | None


@dataclass
class Gatherer:
    """The reads of one JobQueue's loop, with their caches."""

    kube: KubePort
    queues: QueuePort
    hpas: HpaClaims
    namespace: str
    name: str
    clock: Callable[[], float]
    claims_on: ClaimsOn
    #: Redis polls that failed in a row (reset by a good one); from status on restart.
    failures: int = 0
    #: (Secret name, key) -> (read at, value); re-read every REFRESH_S so rotation is seen.
    _secrets: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    _requests: tuple[TargetRef, float, tuple[float | None, float | None]] | None = None
    _expansion: Expansion | None = None

    def _api_error(self, what: str) -> None:
        metrics.API_ERRORS.labels(self.namespace, self.name, what).inc()

    async def target(self, target: TargetRef, created: str, now: float) -> Target | Problem:
        """The target's replicas, or why it cannot be scaled (missing, unreadable, claimed)."""
        watched = self.kube.watched_replicas(self.namespace, target)
        current = watched if watched is not None else await self.fresh_replicas(target)
        if isinstance(current, Problem):
            return current
        try:
            hpas = await self.hpas.of(self.namespace, now)
        except KubeError as exc:
            self._api_error("read")
            return Problem("KubernetesAPIError", str(exc))
        claims = [
            *self.claims_on(self.namespace, target.key),
            *(hpa for hpa in hpas if hpa.target == target.key),
        ]
        found = conflict(Claim(created, self.name), target.describe(), claims)
        problem = None if found is None else Problem("TargetConflict", f"{found}; refusing to act")
        return Target(current, watched is not None, problem)

    async def fresh_replicas(self, target: TargetRef) -> int | Problem:
        """``spec.replicas`` read through ``/scale``, or why the tick cannot go on."""
        try:
            current = await self.kube.get_replicas(self.namespace, target)
        except TargetKindError as exc:
            return Problem("InvalidTarget", str(exc))
        except KubeError as exc:
            self._api_error("read")
            return Problem("KubernetesAPIError", str(exc))
        if current is None:
            return Problem(
                "TargetNotFound", f"{target.describe()} does not exist in {self.namespace}"
            )
        return current

    async def pods(self, target: TargetRef) -> list[PodView] | KubeError:
        """The target's Pods (for the scale-down's choice and its settling)."""
        try:
            return await self.kube.list_target_pods(self.namespace, target)
        except NoPodSelectorError as exc:
            return exc  # a fact about the target, not a failed call
        except KubeError as exc:
            self._api_error("pods")
            return exc

    async def queue_poll(self, spec: JobQueueSpec) -> Queues | Problem:
        """The connection's Secrets, then one poll of every queue of the spec."""
        secrets: dict[str, str] = {}
        try:
            for role, (name, key) in secret_refs(spec.redis).items():
                secrets[role] = await self._secret_value(name, key)
        except SecretError as exc:
            return Problem("SecretNotFound", str(exc))
        discovery = spec.queue_discovery
        request = PollRequest(
            spec.redis,
            secrets,
            queue_sources(spec),
            discovery.max_queues,
            discovery.refresh_every_polls,
        )
        poll = await self.queues.poll(request)
        if poll.expansion is not None:
            self._expansion = poll.expansion if spec.weighted_queues else None
        if poll.observation is None:
            self.failures += 1
            metrics.REDIS_ERRORS.labels(self.namespace, self.name).inc()
            return Queues(MetricsMissing(self.failures, poll.error or "no data"), self._expansion)
        self.failures = 0
        metrics.set_queue_gauges(self.namespace, self.name, poll.per_queue)
        return Queues(poll.observation, self._expansion)

    async def _secret_value(self, name: str, key: str) -> str:
        now = self.clock()
        cached = self._secrets.get((name, key))
        if cached is not None and now - cached[0] < REFRESH_S:
            return cached[1]
        value = await self.kube.read_secret_key(self.namespace, name, key)
        self._secrets[(name, key)] = (now, value)
        return value

    async def with_requests(self, obs: Observation, target: TargetRef, now: float) -> Observation:
        """The worker container's requests, re-read every :data:`REFRESH_S` (rarely changes).

        A failed read leaves the triggers without a reference, so they neither
        scale up nor block a scale-down on this tick (the message says "no data").
        """
        cached = self._requests
        if cached is None or cached[0] != target or now - cached[1] >= REFRESH_S:
            try:
                found = await self.kube.get_worker_requests(self.namespace, target)
            except KubeError:
                self._api_error("read")
                return obs
            cached = self._requests = (target, now, found)
        cpu, memory = cached[2]
        return replace(obs, cpu_request_cores=cpu, memory_request_bytes=memory)


def queue_sources(spec: JobQueueSpec) -> tuple[QueueSource, ...]:
    """``queues`` (weight 1) and ``weightedQueues``; a weighted entry overrides a plain name."""
    weighted = {w.name: w for w in spec.weighted_queues or [] if w.name is not None}
    out = [
        QueueSource(name=q)
        if q not in weighted
        else QueueSource(
            name=q,
            weight=weighted[q].weight,
            priority=weighted[q].priority,
            reserved=weighted[q].reserved_replicas,
        )
        for q in spec.queues
    ]
    for w in spec.weighted_queues or []:
        if w.name is not None and w.name in spec.queues:
            continue
        out.append(QueueSource(w.name, w.pattern, w.weight, w.priority, w.reserved_replicas))
    return tuple(out)
