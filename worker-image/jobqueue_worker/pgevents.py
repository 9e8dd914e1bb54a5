"""What a worker tells PostgreSQL about a job, as plain values (no database library).

Events are applied at least once and in any batch split, so applying one must be
idempotent: a row moves only forward, ordered by (attempt, rank of the status).
A repeated or late event for an attempt the row has already passed changes
nothing; an attempt's own row is keyed by (job id, attempt number).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Finish kinds of the step script → the status the jobs row takes. ``release``
# (handed back at shutdown) and ``defer`` (no memory for it now) spend no attempt:
# the job is back in Redis waiting, which the row calls ``migrated``.
FINISH_STATUS: Mapping[str, str] = {
    "complete": "completed",
    "retry": "retry_scheduled",
    "dead": "dead",
    "failed": "failed",
    "release": "migrated",
    "defer": "migrated",
}

# The outcome recorded on the attempt's own row.
ATTEMPT_OUTCOME: Mapping[str, str] = {
    "running": "running",
    "completed": "completed",
    "retry_scheduled": "failed",
    "dead": "failed",
    "failed": "failed",
    "migrated": "handed_back",
}

TERMINAL_REDIS = {"completed": "completed", "failed": "failed", "dead": "dead"}
# Every finishing status of an attempt.
TERMINAL_STATUSES = ("retry_scheduled", "completed", "failed", "dead")


def rank(status: str) -> int:
    """Order of statuses within one attempt: waiting, then running, then finished."""
    if status in ("queued", "migrated"):
        return 0
    if status == "running":
        return 1
    return 2


def event_rank(status: str) -> int:
    """A hand-back comes after the attempt's start, so it ranks with ``running``."""
    return 1 if status == "migrated" else rank(status)


EVENT_RANK: Mapping[str, int] = {
    s: event_rank(s) for s in ("migrated", "running", *TERMINAL_STATUSES)
}
# Statuses after which a job runs no more (finished_at is set).
TERMINAL_EVENTS = frozenset({"completed", "failed", "dead"})
# ``job_attempts.duration_ms`` is an integer column: an attempt longer than about
# 24.8 days is recorded as this many milliseconds rather than refused (a refused
# batch would be sent again and again).
DURATION_MS_MAX = 2**31 - 1


@dataclass(slots=True)
class JobEvent:
    job_id: str
    attempt: int
    status: str  # a jobs.status value
    worker_id: str
    at: float  # epoch seconds
    started_at: float | None = None
    error: str | None = None
    duration_ms: int | None = None
    #: The failed attempt's traceback (bounded by the worker, like the error).
    traceback: str | None = None

    @property
    def finished(self) -> bool:
        return rank(self.status) == 2

    @property
    def failed(self) -> bool:
        return self.status in ("retry_scheduled", "failed", "dead")

    @property
    def rank(self) -> int:
        return event_rank(self.status)

    @property
    def clean_error(self) -> str | None:
        return _storable(self.error)

    @property
    def clean_traceback(self) -> str | None:
        return _storable(self.traceback)


def _capped(duration_ms: int | None) -> int | None:
    if duration_ms is None or duration_ms <= DURATION_MS_MAX:
        return duration_ms
    return DURATION_MS_MAX


def _storable(text: str | None) -> str | None:
    # PostgreSQL text holds neither NUL nor a lone surrogate (which is not UTF-8);
    # an exception message can hold both, e.g. a file name decoded with
    # surrogateescape. Either would make the batch fail every time it is sent.
    if not text:
        return None
    text = text.replace("\x00", "\\0")
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Batch:
    """A batch of events reduced to one per attempt, as column arrays.

    One statement for the whole batch (``unnest`` of these arrays) costs far less
    than statements per event, and each row appears once, as ``UPDATE ... FROM``
    and ``ON CONFLICT DO UPDATE`` require. Rows are sorted by job id so that
    concurrent writers lock them in one order (no deadlocks). A job's row takes
    its newest attempt's event: the furthest of all its events, since attempts
    only go up.
    """

    # id, attempt, status, worker, at, started, error, duration_ms, traceback
    events: list[list[Any]]
    failures: list[list[Any]]  # id, error, at


def collapse(events: Iterable[JobEvent]) -> Batch:
    """Per attempt the furthest event; per job the latest failure.

    Later events win ties, so the result equals applying the events one by one.
    """
    ranks = EVENT_RANK
    # Hot: a worker's flush runs this for every event, so ranks are looked up once
    # and stored beside the event instead of recomputed in each comparison.
    failures: dict[str, JobEvent] = {}
    attempts: dict[tuple[str, int], tuple[int, JobEvent]] = {}
    for ev in events:
        r = ranks[ev.status]
        if r == 2 and ev.status != "completed":
            f = failures.get(ev.job_id)
            if f is None or f.at <= ev.at:
                failures[ev.job_id] = ev
        key = (ev.job_id, ev.attempt)
        a = attempts.get(key)
        if a is None or a[0] <= r:
            attempts[key] = (r, ev)
    fs = [failures[k] for k in sorted(failures)]
    ats = [attempts[k][1] for k in sorted(attempts)]
    return Batch(
        events=[
            [e.job_id for e in ats],
            [e.attempt for e in ats],
            [e.status for e in ats],
            [e.worker_id for e in ats],
            [e.at for e in ats],
            [e.started_at for e in ats],
            [e.clean_error for e in ats],
            [_capped(e.duration_ms) for e in ats],
            [e.clean_traceback for e in ats],
        ],
        failures=[[e.job_id for e in fs], [e.clean_error for e in fs], [e.at for e in fs]],
    )


def from_redis_record(  # noqa: PLR0917 - the record's fields, in its order
    job_id: str,
    status: str,
    attempt: int,
    worker: str | None,
    finished_at: float | None,
    started_at: float | None,
    error: str | None,
    duration_s: float | None,
) -> JobEvent | None:
    """The finishing event a lost write-back would have sent, rebuilt from Redis's record.

    Only terminal statuses: anything else is still moving and a worker will report it.
    """
    mapped = TERMINAL_REDIS.get(status)
    if mapped is None or finished_at is None:
        return None
    return JobEvent(
        job_id=job_id,
        attempt=attempt,
        status=mapped,
        worker_id=worker or "",
        at=finished_at,
        started_at=started_at,
        error=error,
        duration_ms=int(duration_s * 1000) if duration_s is not None else None,
    )
