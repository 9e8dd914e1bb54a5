"""The values that cross between the worker and the Redis scripts, and their encoding.

Pure (no Redis client): what a finished job asks the scripts to do (``FinishOp``),
what a fetch hands back (``Fetched``, ``StepResult``), how a worker chooses among
its queues (``FetchPlan``), a producer's new job (``NewJob``) and the broker's
timings (``BrokerSettings``). ``broker.py`` sends them; the runtime, the producer
and the tests build and read them without a connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jobqueue_protocol import keys
from jobqueue_worker.lua import ENQUEUE, RATELIMIT, REAP, RENEW, STEP, Value
from jobqueue_worker.ratelimit import RateLimit

TypeLimits = tuple[tuple[str, tuple[RateLimit, ...]], ...]


def limit_spec(lim: RateLimit) -> list[str | int]:
    return [lim.kind, lim.limit, lim.period_ms, lim.burst]


@dataclass(frozen=True)
class BrokerSettings:
    """The lease, delivery cap, retention and batch sizes, in ms as the scripts use them.

    Not a rate limit (``ratelimit.RateLimit``): how long things live in Redis.
    """

    lease_ms: int = 30_000
    max_deliveries: int = 3
    job_ttl_ms: int = 14 * 86_400_000
    result_ttl_ms: int = 86_400_000
    idem_ttl_ms: int = 86_400_000
    dlq_max_age_ms: int = 7 * 86_400_000
    dlq_max_count: int = 10_000
    promote_batch: int = 100
    reap_batch: int = 100
    #: Durable enqueue: an enqueue returns only once this many replicas hold it
    #: (Redis WAIT), else DurabilityError. 0: acked by the master alone. On a
    #: worker, the same WAIT ends every step (durable acks, see runtime).
    durable_replicas: int = 0
    durable_timeout_ms: int = 1000


@dataclass(frozen=True)
class NewJob:
    id: str
    envelope_json: str
    priority: int
    max_attempts: int
    delay_ms: int = 0
    run_at_ms: int = 0
    idempotency_key: str | None = None
    # The job type, stored next to the envelope for the fetch's caps and limits;
    # "" when the caller only has the envelope (it is read from there, once).
    type: str = ""

    def job_type(self) -> str:
        if self.type:
            return self.type
        try:
            decoded = json.loads(self.envelope_json)
        except ValueError:
            return ""
        found = decoded.get("type") if isinstance(decoded, dict) else None
        return found if isinstance(found, str) else ""


Held = tuple[str, str, str]  # a lease a worker holds: queue, job id, token
FinishKind = Literal["complete", "retry", "dead", "failed", "release", "defer"]


# Not frozen, on purpose: a frozen dataclass's __init__ sets every field through
# object.__setattr__, and the worker builds a Fetched and a FinishOp for every
# job. Treat both as values; nothing mutates them.
@dataclass(slots=True)
class FinishOp:
    queue: str
    id: str
    token: str
    op: FinishKind
    duration_ms: int = 0
    result: str | None = None
    delay_ms: int = 0
    error: str | None = None
    traceback: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class Fetched:
    queue: str
    id: str
    envelope_raw: str
    attempt: int
    deliveries: int
    token: str
    type: str = ""  # known when the fetch checked limits or caps, else ""


@dataclass(frozen=True)
class StepResult:
    acks: list[bool]
    jobs: list[Fetched]
    next_due_ms: int | None
    now_ms: int
    # (queue, job type, jobs deferred) for rate limits in this call
    throttled: list[tuple[str, str, int]] = field(default_factory=list)
    # The operator chose this worker's Pod to go (keys.drain_key): nothing fetched.
    drained: bool = False
    # Durable acks: False when fewer replicas than asked confirmed this call in time.
    confirmed: bool = True


@dataclass(frozen=True)
class FetchPlan:
    """How to choose among the served queues; queue order is strict priority order."""

    queues: tuple[str, ...]
    mode: Literal["strict", "weighted"] = "strict"
    weights: tuple[float, ...] = ()
    aging_ms: int = 0
    # Rate limits per job type, checked by the fetch (global keys, see keys.py).
    rate_limits: TypeLimits = ()
    #: Keep the limiter keys in this queue's slot (Redis Cluster); None: global keys.
    limiter_queue: str | None = None
    all_keys: list[str] = field(default_factory=list)
    step_keys: list[str] = field(default_factory=list)
    limits_json: str = "{}"

    def __post_init__(self) -> None:
        for q in self.queues:
            keys.validate_queue(q)
        object.__setattr__(self, "all_keys", [k for q in self.queues for k in keys.queue_block(q)])
        step_keys = list(self.all_keys)
        spec: dict[str, list[list[str | int]]] = {}
        for job_type, lims in self.rate_limits:
            for lim in lims:
                step_keys.append(keys.limiter_key(job_type, lim.label, self.limiter_queue))
                spec.setdefault(job_type, []).append([*limit_spec(lim), len(step_keys)])
        if spec:
            step_keys.append(keys.limiter_stats_key(self.limiter_queue))
        object.__setattr__(self, "step_keys", step_keys)
        object.__setattr__(self, "limits_json", json.dumps(spec) if spec else "{}")

    def index(self, queue: str) -> int:
        return self.queues.index(queue) + 1


def enqueue_args(limits: BrokerSettings, jobs: Sequence[NewJob]) -> list[Value]:
    tail: list[Value] = []
    for j in jobs:
        tail += [
            j.id,
            j.envelope_json,
            j.priority,
            j.max_attempts,
            j.delay_ms,
            j.run_at_ms,
            j.idempotency_key or "",
            j.job_type(),
        ]
    return ENQUEUE.argv(tail, job_ttl_ms=limits.job_ttl_ms, idem_ttl_ms=limits.idem_ttl_ms)


def enqueue_reply(reply: Sequence[Any]) -> list[tuple[str, bool]]:
    return [(str(reply[i]), int(reply[i + 1]) == 1) for i in range(0, len(reply), 2)]


def renew_args(plan: FetchPlan, lease_ms: int, held: Sequence[tuple[str, str, str]]) -> list[Value]:
    tail: list[Value] = []
    for queue, job_id, token in held:
        tail += [plan.index(queue), job_id, token]
    return RENEW.argv(tail, lease_ms=lease_ms)


def _finish_json(f: FinishOp, queue_index: int) -> dict[str, Value]:
    """One finish op as the script reads it; fields that are None are left out."""
    out: dict[str, Value] = {
        "q": queue_index,
        "id": f.id,
        "token": f.token,
        "op": f.op,
        "duration_ms": f.duration_ms,
        "delay_ms": f.delay_ms,
    }
    if f.result is not None:
        out["result"] = f.result
    if f.error is not None:
        out["error"] = f.error
    if f.traceback is not None:
        out["traceback"] = f.traceback
    if f.reason is not None:
        out["reason"] = f.reason
    return out


def step_args(  # noqa: PLR0917 - Broker.step's parameters in its order, plus the limits
    plan: FetchPlan,
    lim: BrokerSettings,
    worker_id: str,
    finishes: Sequence[FinishOp],
    n_fetch: int,
    rnd: float,
    caps: Mapping[str, int] | None,
    pod_name: str | None,
) -> list[Value]:
    """ARGV of ``step.lua``."""
    ops = [_finish_json(f, plan.index(f.queue)) for f in finishes]
    return STEP.argv(
        worker_id=worker_id,
        lease_ms=lim.lease_ms,
        max_deliveries=lim.max_deliveries,
        n_fetch=n_fetch,
        mode=plan.mode,
        aging_ms=plan.aging_ms,
        rnd=repr(rnd),
        promote_batch=lim.promote_batch,
        job_ttl_ms=lim.job_ttl_ms,
        result_ttl_ms=lim.result_ttl_ms,
        dlq_max_age_ms=lim.dlq_max_age_ms,
        dlq_max_count=lim.dlq_max_count,
        finish_ops=json.dumps(ops) if ops else "[]",
        weights=json.dumps(list(plan.weights)) if plan.weights else "[]",
        rate_limits=plan.limits_json,
        n_queues=len(plan.queues),
        caps=json.dumps(dict(caps)) if caps else "{}",
        pod_name=pod_name or "",
    )


def step_result(plan: FetchPlan, reply: Sequence[Any]) -> StepResult:
    """The reply of ``step.lua``."""
    acks, flat, next_due, now, thr, drained = reply
    jobs = [
        Fetched(
            queue=plan.queues[int(flat[i]) - 1],
            id=flat[i + 1],
            envelope_raw=flat[i + 2],
            attempt=int(flat[i + 3]),
            deliveries=int(flat[i + 4]),
            token=flat[i + 5],
            type=flat[i + 6],
        )
        for i in range(0, len(flat), 7)
    ]
    due = int(next_due)
    return StepResult(
        acks=[int(a) == 1 for a in acks],
        jobs=jobs,
        next_due_ms=due if due >= 0 else None,
        now_ms=int(now),
        throttled=[
            (plan.queues[int(thr[i]) - 1], str(thr[i + 1]), int(thr[i + 2]))
            for i in range(0, len(thr), 3)
        ],
        drained=int(drained) == 1,
    )


def reap_args(lim: BrokerSettings, worker_id: str, gate_ms: int) -> list[Value]:
    return REAP.argv(
        gate_ms=gate_ms,
        reap_batch=lim.reap_batch,
        max_deliveries=lim.max_deliveries,
        dlq_max_age_ms=lim.dlq_max_age_ms,
        dlq_max_count=lim.dlq_max_count,
        job_ttl_ms=lim.job_ttl_ms,
        worker_id=worker_id,
    )


def ratelimit_args(op: str, member: str, limits: Sequence[RateLimit]) -> list[Value]:
    return RATELIMIT.argv(
        op=op, member=member, limits=json.dumps([limit_spec(lim) for lim in limits])
    )


def block_s(res: StepResult | None, idle_block_s: float) -> float:
    """Block until woken, but no longer than until the next delayed job is due."""
    if res is not None and res.next_due_ms is not None:
        return min(idle_block_s, max(0.0, (res.next_due_ms - res.now_ms) / 1000))
    return idle_block_s


class DurabilityError(Exception):
    """The jobs reached the master but too few replicas confirmed them in time.

    They may still run, or be lost if the master fails before replicating.
    Enqueueing the same ids again is safe (the script keeps the job it holds),
    so the caller can retry until it is confirmed.
    """

    def __init__(self, job_ids: Sequence[str], confirmed: int, wanted: int, timeout_ms: int):
        self.job_ids = list(job_ids)
        super().__init__(
            f"durable enqueue: {confirmed} of {wanted} replicas confirmed"
            f" {len(self.job_ids)} job(s) within {timeout_ms} ms"
        )


def durable_reply(
    limits: BrokerSettings, replies: Sequence[Any], durable: bool
) -> list[tuple[str, bool]]:
    """The enqueue replies; with ``durable``, the last reply is WAIT's replica count."""
    scripts = replies[:-1] if durable else replies
    out: list[tuple[str, bool]] = []
    for reply in scripts:
        out += enqueue_reply(reply)
    if durable and int(replies[-1]) < limits.durable_replicas:
        raise DurabilityError(
            [job_id for job_id, _ in out],
            int(replies[-1]),
            limits.durable_replicas,
            limits.durable_timeout_ms,
        )
    return out
