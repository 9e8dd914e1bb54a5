"""THE Redis key layout shared by the worker runtime and the operator.

Every key of a queue lives under ``jq:v1:{<queue>}:`` so that one queue maps to
one Redis Cluster slot (every Lua script touches a single slot) and an
incompatible layout change becomes a new prefix (``jq:v2:``) instead of a silent
reinterpretation of old data. Nothing outside this module spells a key; the Lua
scripts receive every key through KEYS (the job and idempotency keys, whose ids
are only known inside a script, arrive as a *prefix* built here).

=============================  ======  =====================  ======================
key                            type    writer                 reader
=============================  ======  =====================  ======================
``jq:v1:{q}:ready:<p>``        ZSET    enqueue, step, reap,   step (fetch), stats
                                       replay                 (depth, oldest age)
``jq:v1:{q}:delayed``          ZSET    enqueue, step (retry)  step (promotes due),
                                                              stats
``jq:v1:{q}:leases``           ZSET    step, renew, reap      reap, renew, stats
``jq:v1:{q}:dead``             ZSET    step, reap, replay,    dlq CLI, stats
                                       purge
``jq:v1:{q}:job:<id>``         HASH    every worker script,   worker, producer
                                       enqueue                (status/result), CLI
``jq:v1:{q}:idem:<key>``       STRING  enqueue                enqueue
``jq:v1:{q}:workers``          HASH    heartbeat              stats (operator)
``jq:v1:{q}:counters``         HASH    enqueue, step, reap    stats (operator)
``jq:v1:{q}:wake``             LIST    enqueue, step, reap,   idle workers (BLPOP)
                                       replay
``jq:v1:{q}:reaper``           STRING  reap (SET NX PX gate)  reap
``jq:v1:{q}:exec``             HASH    worker (heartbeat)     stats CLI
                                       worker id → JSON of
                                       per-type durations
``jq:v1:{q}:drain``            HASH    operator (pods chosen  step (a listed pod
                                       to go on a scale-      fetches nothing)
                                       down), pod → ms
``jq:v1:{limits}:rl:<type>:     ZSET /  step (fetch admission)  step, stats CLI,
<limit>`` (or ``{q}``)         STRING                         /metrics
``jq:v1:{rl:<name>}:<limit>``  ZSET /  RateLimiter (handler)   RateLimiter
                               STRING
``jq:v1:{limits}:rl-stats``    HASH    step                   stats CLI, /metrics
(or ``{q}``)
=============================  ======  =====================  ======================

Rate-limit keys are GLOBAL by default, not per queue: an external API's quota does
not care which queue a job came from, so every worker of every queue shares one
limiter per job type and limit, under their own ``{limits}`` hash tag. On Redis
Cluster a fetch may touch one slot only, so there the fetch's limiter keys live
under the queue's own tag (``jq:v1:{q}:rl:...``): the limit applies per queue.
Handler-side limiters have one tag per limiter name (``{rl:<name>}``).
``<limit>`` is ``RateLimit.label`` (e.g. ``300/60000ms:sliding``), so changing a
limit's number, period or algorithm starts a fresh key instead of reinterpreting
old state. ``rl-stats`` fields: ``<type>:admitted`` and ``<type>:throttled`` (jobs
deferred by the fetch). A step call for several queues touches several slots, so
on a Redis Cluster the worker makes one call per queue (jobqueue_worker.slot_fanout).

Scores: ``ready:<p>`` = ms since epoch when the job became ready (FIFO within a
priority; the lowest score is the oldest waiting job); ``delayed`` = due ms;
``leases`` = lease deadline ms; ``dead`` = dead-lettered-at ms. All times are
Redis server time (``TIME``), never a client clock.

Priorities are integers 1 (most urgent) to 10 (least); the named levels are
CRITICAL 1, HIGH 3, NORMAL 5, LOW 7, BACKGROUND 10.
"""

from __future__ import annotations

import functools
from typing import Final

VERSION: Final = "v1"
PREFIX: Final = f"jq:{VERSION}:"

PRIORITY_MIN: Final = 1
PRIORITY_MAX: Final = 10
PRIORITIES: Final[tuple[int, ...]] = tuple(range(PRIORITY_MIN, PRIORITY_MAX + 1))

CRITICAL: Final = 1
HIGH: Final = 3
NORMAL: Final = 5
LOW: Final = 7
BACKGROUND: Final = 10

MAX_QUEUE_NAME: Final = 200
_FORBIDDEN = frozenset("{}\n\r\t ")
#: ``validate_queue``'s character rule as a regular expression, for checks that run
#: outside Python (pydantic-core's own validators). The characters stand in the class
#: as themselves: none of them is special there.
QUEUE_NAME_PATTERN = "^[^" + "".join(sorted(_FORBIDDEN)) + "]+$"


class InvalidKeyPartError(ValueError):
    """A queue name, priority or id that would break the layout (hash tag, slots)."""


def validate_queue(queue: str) -> str:
    """Reject names that would escape the hash tag or produce unreadable keys."""
    if not queue or len(queue) > MAX_QUEUE_NAME:
        raise InvalidKeyPartError(f"queue name must be 1..{MAX_QUEUE_NAME} characters: {queue!r}")
    if any(ch in _FORBIDDEN for ch in queue):
        raise InvalidKeyPartError(f"queue name must not contain braces or whitespace: {queue!r}")
    return queue


def validate_priority(priority: int) -> int:
    """Out-of-range priorities are an error, never clamped (Celery #8967)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidKeyPartError(f"priority must be an int: {priority!r}")
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidKeyPartError(
            f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}: {priority}"
        )
    return priority


def _id_part(value: str, what: str) -> str:
    if not value or any(ch in "\n\r" for ch in value) or len(value) > 512:
        raise InvalidKeyPartError(f"{what} must be 1..512 characters without newlines: {value!r}")
    return value


def validate_name(name: str, what: str = "job type") -> str:
    """Job types and limiter names inside limiter keys: no braces, no whitespace."""
    if not name or len(name) > MAX_QUEUE_NAME or any(ch in _FORBIDDEN for ch in name):
        raise InvalidKeyPartError(
            f"{what} must be 1..{MAX_QUEUE_NAME} characters without braces or whitespace: {name!r}"
        )
    return name


@functools.lru_cache(maxsize=8192)
def queue_prefix(queue: str) -> str:
    """``jq:v1:{q}:`` - the common start of every key of one queue.

    Cached (a rejected name is not, it raises): every poll of the operator and
    every enqueue builds the keys again, and validating the name each time was a
    measurable share of the operator's CPU at 1,000 JobQueues.
    """
    return f"{PREFIX}{{{validate_queue(queue)}}}:"


def ready_key(queue: str, priority: int) -> str:
    return f"{queue_prefix(queue)}ready:{validate_priority(priority)}"


@functools.lru_cache(maxsize=8192)
def ready_keys(queue: str) -> tuple[str, ...]:
    """The ready ZSETs of every priority, most urgent first."""
    return tuple(ready_key(queue, p) for p in PRIORITIES)


def delayed_key(queue: str) -> str:
    return f"{queue_prefix(queue)}delayed"


def lease_key(queue: str) -> str:
    return f"{queue_prefix(queue)}leases"


def dead_key(queue: str) -> str:
    return f"{queue_prefix(queue)}dead"


def job_key_prefix(queue: str) -> str:
    """Passed to Lua as a KEY so scripts can address job hashes by id."""
    return f"{queue_prefix(queue)}job:"


def job_key(queue: str, job_id: str) -> str:
    return f"{job_key_prefix(queue)}{_id_part(job_id, 'job id')}"


def idem_key_prefix(queue: str) -> str:
    """Passed to Lua as a KEY so the enqueue script can address idempotency keys."""
    return f"{queue_prefix(queue)}idem:"


def idem_key(queue: str, key: str) -> str:
    return f"{idem_key_prefix(queue)}{_id_part(key, 'idempotency key')}"


def workers_key(queue: str) -> str:
    return f"{queue_prefix(queue)}workers"


def counters_key(queue: str) -> str:
    return f"{queue_prefix(queue)}counters"


def wake_key(queue: str) -> str:
    return f"{queue_prefix(queue)}wake"


def reaper_key(queue: str) -> str:
    return f"{queue_prefix(queue)}reaper"


def exec_stats_key(queue: str) -> str:
    """Per-worker execution statistics by job type (min/mean/p50/p95/p99/max, timeout)."""
    return f"{queue_prefix(queue)}exec"


def drain_key(queue: str) -> str:
    """Pods the operator chose to remove: field = Pod name, value = when (ms).

    A worker whose Pod is listed fetches nothing more, so the scale-down that
    follows cannot interrupt a job it would have started in the meantime.
    """
    return f"{queue_prefix(queue)}drain"


#: The names of one queue's keys, in the order the worker's Lua scripts receive
#: them in KEYS (``queue_block``). The script loader turns these names into Lua
#: locals, so no script addresses a key by a bare position.
QUEUE_BLOCK: Final[tuple[str, ...]] = (
    *(f"READY_{p}" for p in PRIORITIES),
    "DELAYED",
    "LEASES",
    "DEAD",
    "COUNTERS",
    "WAKE",
    "JOB_PREFIX",
    "IDEM_PREFIX",
    "REAPER",
    "DRAIN",
)


@functools.lru_cache(maxsize=4096)
def queue_block(queue: str) -> tuple[str, ...]:
    """One queue's keys in ``QUEUE_BLOCK`` order.

    Cached: a producer builds it for every enqueue, and the strings never change.
    """
    block = (
        *ready_keys(queue),
        delayed_key(queue),
        lease_key(queue),
        dead_key(queue),
        counters_key(queue),
        wake_key(queue),
        job_key_prefix(queue),
        idem_key_prefix(queue),
        reaper_key(queue),
        drain_key(queue),
    )
    assert len(block) == len(QUEUE_BLOCK)
    return block


LIMITS_PREFIX: Final = f"{PREFIX}{{limits}}:"


def _limits_prefix(queue: str | None) -> str:
    return LIMITS_PREFIX if queue is None else queue_prefix(queue)


def limiter_key(job_type: str, limit_label: str, queue: str | None = None) -> str:
    """The fetch's limiter state for one job type and one of its limits.

    Global (``{limits}``) by default. With ``queue``, under that queue's own hash
    tag: per-queue limits, in the queue's slot, which a Redis Cluster needs so the
    fetch script stays single-slot.
    """
    return f"{_limits_prefix(queue)}rl:{validate_name(job_type)}:{_id_part(limit_label, 'limit')}"


def named_limiter_key(name: str, limit_label: str) -> str:
    """A handler-side limiter's state (``RateLimiter(name, ...)``), global.

    Each name has its own hash tag: its limits share one slot (one script call),
    and different names spread over a cluster's shards.
    """
    return f"{PREFIX}{{rl:{validate_name(name, 'limiter name')}}}:{_id_part(limit_label, 'limit')}"


def limiter_stats_key(queue: str | None = None) -> str:
    return f"{_limits_prefix(queue)}rl-stats"


# Field names of the counters HASH that readers use by name (the operator derives
# rates from them). The scripts also write: retried, dead, throttled, reaped,
# deferred, missing (rates for people, via ``jobqueue stats``) and the cursors
# last_ready_us and last_dead_us (FIFO and dead-letter order within a millisecond).
COUNTER_ENQUEUED: Final = "enqueued"
COUNTER_COMPLETED: Final = "completed"
COUNTER_FAILED: Final = "failed"  # failed attempts (retried or not)
COUNTER_BUSY_MS: Final = "busy_ms"  # handler wall time of finished attempts
# A worker with durable acks bumps this to give WAIT a write of its own to confirm
# when it has no step to send (how often it waited for its replicas, for people).
COUNTER_DURABLE_WAITS: Final = "durable_waits"
