"""Every Prometheus series of the operator, defined once.

Labels are ``namespace`` and ``jobqueue`` (plus a closed set like ``direction``),
never anything unbounded or secret. KEDA leaves replica counts to
kube-state-metrics; here current and desired replicas sit next to the signal that
moved them.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

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

_PER_JOBQUEUE = (
    QUEUE_DEPTH,
    OLDEST_AGE,
    IN_FLIGHT,
    DEAD_JOBS,
    CURRENT_REPLICAS,
    DESIRED_REPLICAS,
    MIN_REPLICAS,
    MAX_REPLICAS,
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


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` in a background thread (0: do not serve)."""
    if port:
        start_http_server(port, registry=REGISTRY)
