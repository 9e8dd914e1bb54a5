"""The systems under test: how to start each one's worker and producer.

A worker command template may use ``{bin}`` (the environment's bin dir), ``{python}``,
``{adapters}``, ``{node_dir}``, ``{url}``, ``{queue}`` and ``{name}`` (w1, w2, ...).
Producers are always ``<interpreter> <adapter script> enqueue|produce ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    env: str  # requirements file name, "ours" (project venv) or "bullmq" (node)
    adapter: str  # adapter script, relative to bench/adapters (or the node cache dir)
    worker: tuple[str, ...]
    settings: str
    variant: str = ""
    # Slow systems drain fewer jobs (fraction of --jobs) so one run stays bounded in time.
    job_scale: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # Redelivers a job whose worker died mid-job, as configured here.
    at_least_once: bool = False
    # Not a job queue: a yardstick the others are read against, never the "best peer".
    reference: bool = False


PEERS: tuple[Peer, ...] = (
    Peer(
        key="ours",
        label="ours (jobqueue_worker)",
        env="ours",
        adapter="ours_app.py",
        worker=(
            "{python}",
            "-m",
            "jobqueue_worker",
            "worker",
            "--handlers",
            "ours_app",
            "--queues",
            "{queue}",
            "--concurrency",
            "10",
            "--redis-url",
            "{url}",
        ),
        settings=(
            "python -m jobqueue_worker worker, concurrency 10, 30 s leases with renewal, "
            "at-least-once (defaults), results kept 1 day (default), HTTP off, log level WARNING"
        ),
        extra_env={"JQW_HTTP_PORT": "0", "JQW_LOG_LEVEL": "WARNING"},
        at_least_once=True,
    ),
    Peer(
        key="arq",
        label="arq (defaults)",
        env="arq",
        adapter="arq_app.py",
        worker=("{python}", "{adapters}/arq_app.py", "worker"),
        settings="run_worker with logging at WARNING, max_jobs=10, poll_delay=0.5 s (defaults), "
        "results kept 1 h (default)",
        variant="defaults",
        job_scale=0.2,
        at_least_once=True,
    ),
    Peer(
        key="arq-tuned",
        label="arq (tuned)",
        env="arq",
        adapter="arq_app.py",
        worker=("{python}", "{adapters}/arq_app.py", "worker"),
        settings="run_worker with logging at WARNING, max_jobs=100, poll_delay=0.01 s, "
        "results kept 1 h (default)",
        variant="tuned",
        at_least_once=True,
    ),
    Peer(
        key="rq",
        label="RQ (Worker, fork per job)",
        env="rq",
        adapter="rq_app.py",
        worker=(
            "{bin}/rq",
            "worker",
            "--url",
            "{url}",
            "--worker-class",
            "rq.Worker",
            "--quiet",
            "--name",
            "{name}",
            "{queue}",
        ),
        settings="rq worker (fork per job), result_ttl 500 s (default), --quiet",
        job_scale=0.05,
    ),
    Peer(
        key="rq-simple",
        label="RQ (SimpleWorker)",
        env="rq",
        adapter="rq_app.py",
        worker=(
            "{bin}/rq",
            "worker",
            "--url",
            "{url}",
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--quiet",
            "--name",
            "{name}",
            "{queue}",
        ),
        settings="rq worker --worker-class SimpleWorker (no fork), result_ttl 500 s, --quiet",
        job_scale=0.25,
    ),
    Peer(
        key="dramatiq",
        label="Dramatiq (RedisBroker)",
        env="dramatiq",
        adapter="dramatiq_app.py",
        worker=("{bin}/dramatiq", "dramatiq_app", "--processes", "1", "--threads", "8"),
        settings="dramatiq CLI, 1 process x 8 threads, prefetch 16 (defaults), max_retries=0",
        at_least_once=True,
    ),
    Peer(
        key="celery",
        label="Celery (Redis broker)",
        env="celery",
        adapter="celery_app.py",
        worker=(
            "{bin}/celery",
            "-A",
            "celery_app",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            "{name}@%h",
            "-Q",
            "{queue}",
        ),
        settings=(
            "celery worker --pool=solo, prefetch multiplier 64, early ack (default), "
            "no result backend, without gossip/mingle/heartbeat"
        ),
    ),
    Peer(
        key="saq",
        label="saq",
        env="saq",
        adapter="saq_app.py",
        worker=("{bin}/saq", "saq_app.settings", "--workers", "1"),
        settings="saq CLI, 1 process, concurrency 10 (default)",
        at_least_once=True,
    ),
    Peer(
        key="taskiq",
        label="taskiq (RedisStreamBroker)",
        env="taskiq",
        adapter="taskiq_app.py",
        worker=(
            "{bin}/taskiq",
            "worker",
            "taskiq_app:broker",
            "--workers",
            "1",
            "--log-level",
            "WARNING",
        ),
        settings="taskiq worker, 1 process, max-async-tasks 100, ack when saved (defaults), "
        "stream broker (XREADGROUP + XACK)",
        variant="stream",
        at_least_once=True,
    ),
    Peer(
        key="taskiq-list",
        label="taskiq (ListQueueBroker)",
        env="taskiq",
        adapter="taskiq_app.py",
        worker=(
            "{bin}/taskiq",
            "worker",
            "taskiq_app:broker",
            "--workers",
            "1",
            "--log-level",
            "WARNING",
        ),
        settings="taskiq worker, 1 process, max-async-tasks 100 (default), list broker "
        "(BRPOP, no ack: at-most-once)",
        variant="list",
    ),
    Peer(
        key="bullmq",
        label="BullMQ (Node)",
        env="bullmq",
        adapter="bench.mjs",
        worker=("{python}", "{node_dir}/bench.mjs", "worker"),
        settings="Worker concurrency 10, removeOnComplete: true, ioredis",
        at_least_once=True,
    ),
    Peer(
        key="floor",
        label="floor: bare LPUSH → BRPOP (not a queue)",
        env="ours",
        adapter="floor_app.py",
        worker=("{python}", "{adapters}/floor_app.py", "worker"),
        settings="redis-py over hiredis, one connection each side; the worker BRPOPs one value "
        "at a time and records it; no lease, ack, retry or job record (the host's hand-off cost)",
        reference=True,
    ),
)

REFERENCES = frozenset(p.key for p in PEERS if p.reference)

BY_KEY = {p.key: p for p in PEERS}
