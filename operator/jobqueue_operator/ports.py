"""What one JobQueue's loop needs from the outside world, as ``typing.Protocol``s.

The loop (``reconcile.py``) and its phases know Kubernetes only as
:class:`KubePort` and Redis only as :class:`QueuePort`. ``kube.Kube`` and
``observe.RedisQueues`` implement them against the real services; a unit test
of the loop passes its own small classes with the same methods. The errors and
values that cross a port live here too, so the loop never imports a module that
imports a client library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from jobqueue_operator.policy import Observation
from jobqueue_operator.redis_spec import RedisConnection
from jobqueue_operator.targets import TargetRef
from jobqueue_operator.victims import PodView


class KubeError(Exception):
    """An API call failed in a way the loop reports as a condition and retries."""


class TargetKindError(KubeError):
    """The target's kind cannot be scaled in this cluster; the message names the field."""


class NoPodSelectorError(KubeError):
    """The target's ``/scale`` reports no Pod selector: its Pods cannot be found."""


class SecretError(Exception):
    """The Redis password Secret or its key is missing or unreadable."""


class MetricsUnavailableError(Exception):
    """Redis could not be read; the message is safe to show (no credentials)."""


class DrainError(Exception):
    """The drain hash could not be written (Redis down, or a read-only ACL user)."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The JobQueue an Event is about."""

    namespace: str
    name: str
    uid: str | None


@dataclass(frozen=True, slots=True)
class QueueSource:
    """One entry of the spec's queue list: a name or a pattern, with its weights."""

    name: str | None = None
    pattern: str | None = None
    weight: float = 1.0
    priority: int = 0
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class WatchedQueue:
    """A concrete queue the loop reads, and the source that brought it in."""

    name: str
    weight: float = 1.0
    priority: int = 0
    reserved: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True)
class Expansion:
    """The queues to read, and what the pattern expansion found and left out."""

    queues: tuple[WatchedQueue, ...]
    matched: int = 0  # queues the patterns matched, before the cap
    truncated: bool = False  # more queues than queueDiscovery.maxQueues: the rest is not read
    complete: bool = True  # every SCAN finished within the SCAN budget
    refreshed_at_poll: int = 0


@dataclass(frozen=True, slots=True)
class QueueSample:
    """One queue's numbers from one poll (what ``jobqueue_protocol.stats`` read)."""

    waiting_by_priority: Mapping[int, int]
    oldest_age_s: float
    delayed: int
    in_flight: int
    dead: int


@dataclass(frozen=True, slots=True)
class PollRequest:
    """What one poll of a JobQueue's queues needs: where, its Secrets, which queues."""

    conn: RedisConnection
    #: The Secret values the connection needs, by role (``redis_spec.secret_refs``).
    secrets: Mapping[str, str]
    sources: tuple[QueueSource, ...]
    #: ``spec.queueDiscovery``: the cap on queues and how often patterns are expanded.
    max_queues: int
    refresh_every: int


@dataclass(frozen=True, slots=True)
class QueuePoll:
    """One poll of a JobQueue's queues: the sum the policy reads, and each queue.

    ``error`` says why Redis could not be read (then ``observation`` is ``None``);
    ``expansion`` is the pattern expansion when that much succeeded.
    """

    observation: Observation | None
    per_queue: dict[str, QueueSample]
    expansion: Expansion | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseView:
    """What leader election reads and writes of a Lease; ``version`` is its resourceVersion."""

    holder: str
    duration_s: int
    renewed: str = ""
    transitions: int = 0
    version: str = ""

    def manifest(
        self, namespace: str, name: str, renewed: datetime, acquired: datetime | None
    ) -> dict[str, Any]:
        """The Lease to create (``version`` empty) or to replace at ``version``."""
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_s,
            "renewTime": renewed.isoformat(timespec="microseconds"),
            "leaseTransitions": self.transitions,
        }
        if acquired is not None:
            spec["acquireTime"] = acquired.isoformat(timespec="microseconds")
        meta = {"name": name, "namespace": namespace}
        if self.version:
            meta["resourceVersion"] = self.version
        kind = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
        return {**kind, "metadata": meta, "spec": spec}


class LeasePort(Protocol):
    """The Lease calls of leader election (``kube.Kube``)."""

    async def read_lease(self, namespace: str, name: str) -> LeaseView | None:
        """The Lease; ``None`` if there is none."""
        ...

    async def write_lease(
        self, namespace: str, name: str, lease: LeaseView, *, acquired: datetime | None
    ) -> bool:
        """Create or replace the Lease; ``False`` when another replica wrote it first."""
        ...


class ConfigMapPort(Protocol):
    """The one ConfigMap read of the defaults source (``kube.Kube``)."""

    async def read_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ``data`` of one ConfigMap; ``None`` if it does not exist."""
        ...


class KubePort(Protocol):
    """The Kubernetes calls one JobQueue's loop makes (``kube.Kube``).

    The target calls raise :class:`TargetKindError` (a :class:`KubeError` too)
    when the target's kind cannot be scaled in this cluster.
    """

    def watched_replicas(self, namespace: str, target: TargetRef) -> int | None:
        """The target's replicas from a watch; ``None`` when the watch cannot say."""
        ...

    async def get_replicas(self, namespace: str, target: TargetRef) -> int | None:
        """``spec.replicas`` through ``/scale``; ``None`` when the target does not exist."""
        ...

    async def set_replicas(self, namespace: str, target: TargetRef, replicas: int) -> None:
        """Write the absolute count through ``/scale``."""
        ...

    async def list_target_pods(self, namespace: str, target: TargetRef) -> list[PodView]:
        """The Pods the target's ``/scale`` selector matches (:class:`NoPodSelectorError`)."""
        ...

    async def get_worker_requests(
        self, namespace: str, target: TargetRef
    ) -> tuple[float | None, float | None]:
        """The worker container's CPU (cores) and memory (bytes) request."""
        ...

    async def set_deletion_cost(self, namespace: str, pod: str, cost: int | None) -> None:
        """Write (or with ``None`` remove) a Pod's deletion cost."""
        ...

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """One key of one Secret (raises :class:`SecretError`)."""
        ...

    async def hpa_targets(self, namespace: str) -> list[tuple[str, TargetRef]]:
        """(HPA name, its target) for every HPA in the namespace."""
        ...

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the JobQueue's ``status``."""
        ...

    async def post_event(self, ref: ObjectRef, reason: str, message: str, *, warning: bool) -> None:
        """An Event on the JobQueue (best effort)."""
        ...


class QueuePort(Protocol):
    """One JobQueue's side of Redis (``observe.RedisQueues``): its reads and drain writes."""

    async def poll(self, request: PollRequest) -> QueuePoll:
        """Expand the patterns and read every queue; a Redis failure is in ``error``."""
        ...

    async def request_drain(self, pods: Sequence[str], now: float, ttl_s: float) -> bool:
        """List ``pods`` in the queues' drain hashes; ``False`` before the first poll.

        Raises :class:`DrainError` when Redis refuses the write.
        """
        ...

    async def withdraw_drain(self, pods: Sequence[str]) -> bool:
        """Take ``pods`` off the drain hashes; ``False`` before the first poll."""
        ...

    def close(self) -> None:
        """The loop stops: let go of the connection pool."""
        ...


#: owner ("namespace/name") → that JobQueue's side of Redis.
QueuesFor = Callable[[str], QueuePort]
