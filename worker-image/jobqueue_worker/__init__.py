"""jobqueue_worker: the Redis worker runtime, producer API and ``jobqueue`` CLI.

Small public API; everything else is internal.
"""

from jobqueue_worker.backoff import BackoffPolicy, Jitter
from jobqueue_worker.eager import EagerProducer
from jobqueue_worker.envelope import DeadReason, JobEnvelope, JobStatus, Priority
from jobqueue_worker.errors import PermanentError, Retry
from jobqueue_worker.producer import JobRequest, Producer, SyncProducer
from jobqueue_worker.registry import Job, Registry

__all__ = [
    "BackoffPolicy",
    "DeadReason",
    "EagerProducer",
    "Jitter",
    "Job",
    "JobEnvelope",
    "JobRequest",
    "JobStatus",
    "PermanentError",
    "Priority",
    "Producer",
    "Registry",
    "Retry",
    "SyncProducer",
]
