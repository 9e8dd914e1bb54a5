"""Every Prometheus series of the operator, defined once.

Labels are ``namespace`` and ``jobqueue`` (plus a closed set like ``direction``),
never anything unbounded or secret. Current and desired replicas sit next to
the signal that moved them, so one dashboard explains a scale without a second
exporter for the Deployment's replicas.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from jobqueue_operator.ports import QueueSample

# No ``<name>_created`` series: one more series per counter and histogram child
# that no query here reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
_LABELS = ("namespace", "jobqueue")

QUEUE_DEPTH = Gauge(
    "jobqueue_operator_queue_depth",
    "Waiting jobs summed over the JobQueue's queues.",
    _LABELS,
    registry=REGISTRY,
)
OLDEST_AGE = Gauge(
    "jobqueue_operator_oldest_job_age_seconds",
    "Age of the oldest waiting job (Redis clock).",
    _LABELS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "jobqueue_operator_in_flight_jobs",
    "Jobs being processed by workers.",
    _LABELS,
    registry=REGISTRY,
)
DEAD_JOBS = Gauge(
    "jobqueue_operator_dead_jobs",
    "Jobs in the dead-letter queues of the JobQueue's queues.",
    _LABELS,
    registry=REGISTRY,
)
LEADER = Gauge(
    "jobqueue_operator_leader",
    "1 while this replica holds the leader Lease (or runs standalone), 0 on a standby.",
    registry=REGISTRY,
)
CURRENT_REPLICAS = Gauge(
    "jobqueue_operator_current_replicas",
    "spec.replicas of the target as read.",
    _LABELS,
    registry=REGISTRY,
)
DESIRED_REPLICAS = Gauge(
    "jobqueue_operator_desired_replicas",
    "Replicas the last decision asked for.",
    _LABELS,
    registry=REGISTRY,
)
MIN_REPLICAS = Gauge(
    "jobqueue_operator_min_replicas",
    "Effective minReplicas (spec, priority class or operator default).",
    _LABELS,
    registry=REGISTRY,
)
MAX_REPLICAS = Gauge(
    "jobqueue_operator_max_replicas",
    "Effective maxReplicas; alerts compare current replicas with it.",
    _LABELS,
    registry=REGISTRY,
)
DRAINING_PODS = Gauge(
    "jobqueue_operator_draining_pods",
    "Pods drained before removal: in spec.replicas, taking no new job (scaleDown.drainChosenPods).",
    _LABELS,
    registry=REGISTRY,
)
SCALE_ACTIONS = Counter(
    "jobqueue_operator_scale_actions_total",
    "Scale writes by direction.",
    (*_LABELS, "direction"),
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "jobqueue_operator_redis_errors_total", "Failed polls of Redis.", _LABELS, registry=REGISTRY
)
API_ERRORS = Counter(
    "jobqueue_operator_api_errors_total",
    "Failed Kubernetes API calls.",
    (*_LABELS, "call"),
    registry=REGISTRY,
)
LOOP_SECONDS = Histogram(
    "jobqueue_operator_loop_duration_seconds",
    "Time of one observe-decide-act-report pass.",
    _LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
# Operator-wide, so the series count does not grow with the JobQueues: the one figure
# that says whether this replica keeps up with all of them.
POLL_LATENESS = Histogram(
    "jobqueue_operator_poll_lateness_seconds",
    "How long after it was due each poll started (0 when on time).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
# Operator-wide: status writes leave the poll (status_writes.py); these say whether
# the API server keeps up with them.
STATUS_WRITES_PENDING = Gauge(
    "jobqueue_operator_status_writes_pending",
    "JobQueue statuses made by a poll and not yet written to the API server.",
    registry=REGISTRY,
)
STATUS_WRITE_DELAY = Histogram(
    "jobqueue_operator_status_write_delay_seconds",
    "From a status being made (the oldest one it replaced) to its PATCH returning.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
STATUS_WRITES_SUPERSEDED = Counter(
    "jobqueue_operator_status_writes_superseded_total",
    "Statuses replaced by a newer one of the same JobQueue before they were written.",
    registry=REGISTRY,
)

# Per queue of a JobQueue: exported once, by the operator that polls them anyway
# (the leader only), instead of by every worker Pod, so the series count does not
# grow with the workers and the series exist at 0 workers.
_QUEUE_LABELS = (*_LABELS, "queue")
QUEUE_WAITING = Gauge(
    "jobqueue_operator_queue_waiting",
    "Waiting (ready) jobs of one queue, per priority.",
    (*_QUEUE_LABELS, "priority"),
    registry=REGISTRY,
)
QUEUE_OLDEST_AGE = Gauge(
    "jobqueue_operator_queue_oldest_age_seconds",
    "Age of the oldest waiting job of one queue (Redis clock).",
    _QUEUE_LABELS,
    registry=REGISTRY,
)
QUEUE_DELAYED = Gauge(
    "jobqueue_operator_queue_delayed",
    "Delayed jobs of one queue (scheduled, retry backoff).",
    _QUEUE_LABELS,
    registry=REGISTRY,
)
QUEUE_IN_FLIGHT = Gauge(
    "jobqueue_operator_queue_in_flight",
    "Leased jobs of one queue over all workers.",
    _QUEUE_LABELS,
    registry=REGISTRY,
)
QUEUE_DEAD = Gauge(
    "jobqueue_operator_queue_dead",
    "Dead-letter queue size of one queue.",
    _QUEUE_LABELS,
    registry=REGISTRY,
)


@dataclass(slots=True)
class _QueueChildren:
    """One queue's gauge children, kept so that a poll sets them without a lookup.

    ``labels()`` takes a lock and hashes the label values on every call; a poll
    of a JobQueue sets fourteen per queue (ten priorities), which at 1,000
    JobQueues was several per cent of the operator's CPU.
    """

    labels: tuple[str, str, str]
    waiting: dict[int, Gauge]  # priority → child
    oldest_age: Gauge
    delayed: Gauge
    in_flight: Gauge
    dead: Gauge

    @classmethod
    def of(cls, labels: tuple[str, str, str]) -> _QueueChildren:
        return cls(
            labels,
            {},
            QUEUE_OLDEST_AGE.labels(*labels),
            QUEUE_DELAYED.labels(*labels),
            QUEUE_IN_FLIGHT.labels(*labels),
            QUEUE_DEAD.labels(*labels),
        )

    def set(self, sample: QueueSample) -> None:
        waiting = self.waiting
        for priority, count in sample.waiting_by_priority.items():
            child = waiting.get(priority)
            if child is None:
                child = waiting[priority] = QUEUE_WAITING.labels(*self.labels, str(priority))
            child.set(count)
        if len(waiting) > len(sample.waiting_by_priority):
            for priority in [p for p in waiting if p not in sample.waiting_by_priority]:
                _remove(QUEUE_WAITING, (*self.labels, str(priority)))
                del waiting[priority]
        self.oldest_age.set(sample.oldest_age_s)
        self.delayed.set(sample.delayed)
        self.in_flight.set(sample.in_flight)
        self.dead.set(sample.dead)

    def remove(self) -> None:
        for priority in self.waiting:
            _remove(QUEUE_WAITING, (*self.labels, str(priority)))
        for metric in (QUEUE_OLDEST_AGE, QUEUE_DELAYED, QUEUE_IN_FLIGHT, QUEUE_DEAD):
            _remove(metric, self.labels)


def _remove(metric: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


#: (namespace, jobqueue) → queue → its gauge children, to set them on each poll and
#: to remove those of a queue that left the JobQueue, and all when it goes.
_QUEUE_CHILDREN: dict[tuple[str, str], dict[str, _QueueChildren]] = {}


def set_queue_gauges(namespace: str, jobqueue: str, samples: Mapping[str, QueueSample]) -> None:
    """Set the per-queue gauges of one JobQueue; drop the children no longer sampled."""
    key = (namespace, jobqueue)
    known = _QUEUE_CHILDREN.get(key, {})
    current: dict[str, _QueueChildren] = {}
    for queue, sample in samples.items():
        children = known.get(queue) or _QueueChildren.of((namespace, jobqueue, queue))
        children.set(sample)
        current[queue] = children
    for queue, children in known.items():
        if queue not in current:
            children.remove()
    _QUEUE_CHILDREN[key] = current


_PER_JOBQUEUE = (
    QUEUE_DEPTH,
    OLDEST_AGE,
    IN_FLIGHT,
    DEAD_JOBS,
    CURRENT_REPLICAS,
    DESIRED_REPLICAS,
    MIN_REPLICAS,
    MAX_REPLICAS,
    DRAINING_PODS,
    REDIS_ERRORS,
    LOOP_SECONDS,
)


def forget(namespace: str, jobqueue: str) -> None:
    """Drop a deleted JobQueue's gauges so they do not report stale values forever."""
    for metric in _PER_JOBQUEUE:
        try:
            metric.remove(namespace, jobqueue)
        except KeyError:
            continue
    for children in _QUEUE_CHILDREN.pop((namespace, jobqueue), {}).values():
        children.remove()


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` in a background thread (0: do not serve)."""
    if port:
        start_http_server(port, registry=REGISTRY)
