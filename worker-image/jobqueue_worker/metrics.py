"""Every Prometheus collector of the worker, defined once with fixed label sets.

Labels never carry job ids (unbounded cardinality); queue and type names are
bounded by configuration and the handler registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``<name>_created`` series: one more series per counter and histogram child
# that no query reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

JOBS = Counter(
    "jobqueue_jobs_total",
    "Finished job attempts by outcome (completed, retried, dead, failed, released, rejected).",
    ["queue", "type", "outcome"],
)
DURATION = Histogram(
    "jobqueue_job_duration_seconds",
    "Handler wall time per attempt.",
    ["queue", "type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
WAIT = Histogram(
    "jobqueue_job_wait_seconds",
    "From enqueue to start of the attempt.",
    ["queue"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600),
)
IN_FLIGHT = Gauge("jobqueue_in_flight", "Jobs this worker is running.")
DRAIN_REQUESTED = Gauge(
    "jobqueue_worker_drain_requested",
    "1 while the operator has chosen this worker's Pod to go on a scale-down (no fetching).",
)
RETRIES = Counter("jobqueue_retries_total", "Retries scheduled.", ["queue", "type"])
DEAD_LETTERS = Counter(
    "jobqueue_dead_letters_total", "Jobs moved to the dead-letter queue.", ["queue", "reason"]
)
LEASES_LOST = Counter(
    "jobqueue_leases_lost_total", "Leases found gone at renewal (the job may run twice)."
)
REAPED = Counter("jobqueue_reaped_total", "Expired leases returned by this worker's reaper.")
ROUND_TRIPS = Counter(
    "jobqueue_redis_round_trips_total",
    "Redis round trips by purpose (step = acks + fetch in one script call).",
    ["op"],
)
REDIS_ERRORS = Counter("jobqueue_redis_errors_total", "Failed Redis round trips.", ["op"])
# -- runtime limits: memory, recycling, timeouts ------------------------------
RATE_LIMITED = Counter(
    "jobqueue_rate_limited_total",
    "Jobs this worker's fetch deferred because their type was over a rate limit"
    " (no attempt, no delivery spent).",
    ["queue", "type"],
)
RATE_LIMIT_USED = Gauge(
    "jobqueue_rate_limit_used",
    "Current use of a rate limit over all workers (admissions in the window, tokens"
    " spent, window count); read every heartbeat.",
    ["type", "limit"],
)
RATE_LIMIT_CAPACITY = Gauge(
    "jobqueue_rate_limit_capacity",
    "What a rate limit allows per window (bucket: the burst).",
    ["type", "limit"],
)
TIMEOUTS = Counter(
    "jobqueue_job_timeouts_total",
    "Attempts that passed their soft (warning) or hard (stopped) timeout.",
    ["queue", "type", "kind"],
)
TIMEOUT_SECONDS = Gauge(
    "jobqueue_job_timeout_seconds",
    "The timeout the last attempt of a type ran under (adaptive or configured; 0: none).",
    ["type", "kind"],
)
MEMORY_LIMIT = Gauge(
    "jobqueue_worker_memory_limit_bytes",
    "The hard memory limit this worker enforces (WORKER_MEMORY_HARD_LIMIT, else 90% of the"
    " cgroup limit); 0 without one.",
)
MEMORY_SOFT_LIMIT = Gauge(
    "jobqueue_worker_memory_soft_limit_bytes",
    "The soft memory limit (warning, then recycle); 0 without one.",
)
MEMORY_RSS = Gauge(
    "jobqueue_worker_memory_rss_bytes",
    "Resident memory of the worker and its isolated job processes, as last sampled.",
)
MEMORY_EVENTS = Counter(
    "jobqueue_worker_memory_events_total",
    "Memory checks that found the worker over a limit (kind: soft, hard), isolated children"
    " killed (child_killed) and jobs deferred by the expected-memory pre-check (deferred).",
    ["kind"],
)
RECYCLES = Counter(
    "jobqueue_worker_recycles_total",
    "Graceful exits asked for by a limit (reason: jobs, age, memory_hard, memory_soft).",
    ["reason"],
)


class JobSeries:
    """The per-(queue, type) children a finished job touches, looked up once.

    ``labels()`` takes a lock and validates on every call; at thousands of jobs a
    second that is a measurable share of a no-op job's CPU (BENCHMARKS.md).
    """

    __slots__ = ("completed", "duration", "wait")

    def __init__(self, queue: str, job_type: str) -> None:
        self.wait = WAIT.labels(queue)
        self.duration = DURATION.labels(queue, job_type)
        self.completed = JOBS.labels(queue, job_type, "completed")


_SERIES: dict[tuple[str, str], JobSeries] = {}


def job_series(queue: str, job_type: str) -> JobSeries:
    """Bounded: queues are configured and types registered, so the cache cannot grow unbounded."""
    key = (queue, job_type)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = JobSeries(queue, job_type)
    return series


# -- status write-back to PostgreSQL (only with JQW_POSTGRES_DSN) ---------------
PG_EVENTS_BUFFERED = Gauge(
    "jobqueue_pg_events_buffered", "Job status events waiting to be written to PostgreSQL."
)
PG_EVENTS_WRITTEN = Counter(
    "jobqueue_pg_events_written_total", "Job status events written to PostgreSQL."
)
PG_EVENTS_DROPPED = Counter(
    "jobqueue_pg_events_dropped_total",
    "Events dropped because the buffer was full during a PostgreSQL outage"
    " (the migrator's reconciler repairs finished jobs from Redis).",
)
PG_WRITE_ERRORS = Counter(
    "jobqueue_pg_write_errors_total", "Failed PostgreSQL writes of status events."
)
