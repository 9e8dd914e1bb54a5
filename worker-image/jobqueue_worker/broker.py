"""The ONLY module of the worker runtime that talks to Redis.

Every state change is one Lua script (``scripts/*.lua``; each header lists its
KEYS and ARGV); every key comes from ``jobqueue_protocol.keys`` and reaches the
scripts through KEYS. The async ``Broker`` serves the worker and the async
producer; ``SyncBroker`` serves the lease-renewal thread (its own connection, so
renewals keep flowing while a handler hogs the event loop) and the sync producer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any, Literal, TypeVar, cast

import redis
import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobqueue_protocol import keys
from jobqueue_protocol.redis_connect import SlotClients, async_client, sync_client
from jobqueue_protocol.redis_health import startup_warnings_async
from jobqueue_protocol.redis_url import RedisTarget, parse_redis_url
from jobqueue_protocol.stats import QueueStats, queue_stats
from jobqueue_worker import slot_fanout
from jobqueue_worker.ratelimit import Limit

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors after which the right move is "back off and try again"; redis-py
# reconnects on the next command by itself.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and (
        text.startswith("LOADING") or text.startswith("READONLY") or "UNBLOCKED" in text
    )


def describe_redis_error(exc: BaseException) -> tuple[bool, str] | None:
    """``(unreachable, one-line reason)`` for an error raised by redis-py, else None.

    Unreachable covers a refused or timed-out connection and a refused login, so
    a command line can tell "Redis is down" from "Redis said no".
    """
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True, str(exc) or type(exc).__name__
    if isinstance(exc, RedisError):
        return False, str(exc) or type(exc).__name__
    return None


@functools.lru_cache(maxsize=4096)
def queue_keys(queue: str) -> tuple[str, ...]:
    """The 19-key block every script receives per queue (order is the scripts' contract).

    Cached: a producer builds it for every enqueue, and the strings never change.
    """
    return (
        *keys.ready_keys(queue),
        keys.delayed_key(queue),
        keys.lease_key(queue),
        keys.dead_key(queue),
        keys.counters_key(queue),
        keys.wake_key(queue),
        keys.job_key_prefix(queue),
        keys.idem_key_prefix(queue),
        keys.reaper_key(queue),
        keys.drain_key(queue),
    )


def _load_script(name: str) -> str:
    text = (resources.files("jobqueue_worker") / "scripts" / f"{name}.lua").read_text()
    if name in _WITH_RATELIMIT_LIB:
        lib = (resources.files("jobqueue_worker") / "scripts" / "ratelimit_lib.lua").read_text()
        text = lib + "\n" + text
    return text


SCRIPT_NAMES = ("step", "reap", "renew", "enqueue", "replay", "heartbeat", "ratelimit")
_WITH_RATELIMIT_LIB = frozenset({"step", "ratelimit"})
TypeLimits = tuple[tuple[str, tuple[Limit, ...]], ...]


def _limit_spec(lim: Limit) -> list[str | int]:
    return [lim.kind, lim.limit, lim.period_ms, lim.burst]


@dataclass(frozen=True)
class Limits:
    """Broker-side knobs, in milliseconds as the scripts use them."""

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
    #: (Redis WAIT), else DurabilityError. 0: acked by the master alone.
    durable_replicas: int = 0
    durable_timeout_ms: int = 1000


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


@dataclass(frozen=True)
class NewJob:
    id: str
    envelope_json: str
    priority: int
    max_attempts: int
    delay_ms: int = 0
    run_at_ms: int = 0
    idempotency_key: str | None = None


FinishKind = Literal["complete", "retry", "dead", "failed", "release", "defer"]


# Not frozen, on purpose: a frozen dataclass's __init__ costs about three times as
# much, and the worker builds a Fetched and a FinishOp for every job. Treat both as
# values; nothing mutates them.
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
        object.__setattr__(self, "all_keys", [k for q in self.queues for k in queue_keys(q)])
        step_keys = list(self.all_keys)
        spec: dict[str, list[list[str | int]]] = {}
        for job_type, lims in self.rate_limits:
            for lim in lims:
                step_keys.append(keys.limiter_key(job_type, lim.label, self.limiter_queue))
                spec.setdefault(job_type, []).append([*_limit_spec(lim), len(step_keys)])
        if spec:
            step_keys.append(keys.limiter_stats_key(self.limiter_queue))
        object.__setattr__(self, "step_keys", step_keys)
        object.__setattr__(self, "limits_json", json.dumps(spec) if spec else "{}")

    def index(self, queue: str) -> int:
        return self.queues.index(queue) + 1


def _enqueue_args(limits: Limits, jobs: Sequence[NewJob]) -> list[str | int]:
    args: list[str | int] = [limits.job_ttl_ms, limits.idem_ttl_ms]
    for j in jobs:
        args += [
            j.id,
            j.envelope_json,
            j.priority,
            j.max_attempts,
            j.delay_ms,
            j.run_at_ms,
            j.idempotency_key or "",
        ]
    return args


def _enqueue_reply(reply: Sequence[Any]) -> list[tuple[str, bool]]:
    return [(str(reply[i]), int(reply[i + 1]) == 1) for i in range(0, len(reply), 2)]


def _refuse_durable_on_cluster(target: RedisTarget, limits: Limits) -> None:
    # WAIT counts the replicas of the connection's own node: the async broker sends
    # it to the slot's master with the scripts (SlotClients); the blocking one cannot.
    if target.mode == "cluster" and limits.durable_replicas > 0:
        raise ValueError(
            "durable enqueue (WAIT) on Redis Cluster needs the asyncio Producer;"
            " SyncProducer cannot send it"
        )


async def _call_on(run: Callable[..., Awaitable[T]], client: redis.asyncio.Redis) -> T:
    return await run(on=client)


def _durable_reply(limits: Limits, replies: Sequence[Any], durable: bool) -> list[tuple[str, bool]]:
    """The enqueue replies; with ``durable``, the last reply is WAIT's replica count."""
    scripts = replies[:-1] if durable else replies
    out: list[tuple[str, bool]] = []
    for reply in scripts:
        out += _enqueue_reply(reply)
    if durable and int(replies[-1]) < limits.durable_replicas:
        raise DurabilityError(
            [job_id for job_id, _ in out],
            int(replies[-1]),
            limits.durable_replicas,
            limits.durable_timeout_ms,
        )
    return out


def _renew_args(
    plan: FetchPlan, lease_ms: int, held: Sequence[tuple[str, str, str]]
) -> list[str | int]:
    args: list[str | int] = [lease_ms]
    for queue, job_id, token in held:
        args += [plan.index(queue), job_id, token]
    return args


class Broker:
    """Async access for the worker loop, producers and the CLI."""

    def __init__(
        self,
        url: str,
        limits: Limits | None = None,
        *,
        socket_timeout_s: float = 10.0,
        max_block_s: float = 5.0,
    ) -> None:
        self.url = url
        self.limits = limits or Limits()
        target = parse_redis_url(url)
        #: Redis Cluster: several queues are served by one script call per queue.
        self.cluster = target.mode == "cluster"
        #: queue -> (the plan it came from, that plan narrowed to the queue)
        self._single: dict[str, tuple[FetchPlan, FetchPlan]] = {}
        self.redis: redis.asyncio.Redis = async_client(
            target,
            decode_responses=True,
            # A hostile or buggy producer may store bytes that are not UTF-8 (a
            # pickle): they must become a malformed job, not a crashed worker.
            encoding_errors="replace",
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        # Blocking wake-ups get their own client: a BLPOP must not starve the pool
        # and needs a socket timeout longer than its block time.
        self._blocking: redis.asyncio.Redis = async_client(
            target,
            decode_responses=True,
            encoding_errors="replace",
            socket_timeout=max_block_s + 5.0,
            socket_connect_timeout=5.0,
        )
        self._scripts = {n: self.redis.register_script(_load_script(n)) for n in SCRIPT_NAMES}
        self._slots = (
            SlotClients(
                cast(redis.asyncio.RedisCluster, self.redis),
                target,
                decode_responses=True,
                encoding_errors="replace",
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=5.0,
            )
            if self.cluster
            else None
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self._blocking.aclose()
        if self._slots is not None:
            await self._slots.close()

    async def _on_slot_master(self, key: str, run: Callable[[Any], Awaitable[T]]) -> T:
        """``run(client)`` on the master of ``key``'s slot; a failure re-reads the slot map."""
        assert self._slots is not None
        client = await self._slots.for_key(key)
        try:
            return await run(client)
        except (RedisError, OSError):
            await self._slots.refresh()
            raise

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # -- producer side ---------------------------------------------------------
    async def enqueue(self, by_queue: Mapping[str, Sequence[NewJob]]) -> list[tuple[str, bool]]:
        """All queues' jobs in one round trip (one script call per queue).

        A retry after NOSCRIPT cannot duplicate: ids are chosen here, and the script
        returns the existing job for an id it already holds.
        """
        script = self._scripts["enqueue"]
        calls = [
            (queue_keys(q), _enqueue_args(self.limits, jobs))
            for q, jobs in by_queue.items()
            if jobs
        ]
        durable = self.limits.durable_replicas > 0 and bool(calls)
        if durable and self._slots is not None:
            # One slot per queue, each on its own master: each gets its own WAIT.
            out: list[tuple[str, bool]] = []
            for call in calls:
                run = partial(self._evalsha_pipelined, script, [call], wait=True)
                replies = await self._on_slot_master(call[0][0], partial(_call_on, run))
                out += _durable_reply(self.limits, replies, durable)
            return out
        if len(calls) == 1 and not durable:  # the common case: EVALSHA alone, not a pipeline
            replies = [await script(keys=calls[0][0], args=calls[0][1])]
        else:
            replies = await self._evalsha_pipelined(script, calls, wait=durable)
        return _durable_reply(self.limits, replies, durable)

    async def _evalsha_pipelined(
        self,
        script: AsyncScript,
        calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
        *,
        wait: bool = False,
        on: redis.asyncio.Redis | None = None,
    ) -> list[Any]:
        """One script over several key sets in one pipeline.

        redis-py's pipelined ``Script`` sends SCRIPT EXISTS before every pipeline, a
        second round trip each time; here the script is loaded only after a NOSCRIPT.
        ``wait`` ends the pipeline with WAIT: it counts the replicas that hold this
        connection's writes, so it must travel on the same connection as the scripts.
        ``on``: another client than the broker's (a cluster slot's master).
        """
        client = self.redis if on is None else on
        for attempt in (1, 2):
            pipe = client.pipeline(transaction=False)
            for k, a in calls:
                pipe.evalsha(script.sha, len(k), *k, *a)
            if wait:
                pipe.execute_command(
                    "WAIT", self.limits.durable_replicas, self.limits.durable_timeout_ms
                )
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
                await client.script_load(script.script)
        raise AssertionError("unreachable")

    async def job(self, queue: str, job_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(keys.job_key(queue, job_id))
        return cast(dict[str, str], raw) or None

    async def find_job(self, queues: Sequence[str], job_id: str) -> tuple[str, dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hgetall(keys.job_key(q, job_id))
        for q, raw in zip(queues, await pipe.execute(), strict=True):
            if raw:
                return q, cast(dict[str, str], raw)
        raise KeyError(job_id)

    # -- worker side -----------------------------------------------------------
    async def step(
        self,
        plan: FetchPlan,
        worker_id: str,
        finishes: Sequence[FinishOp],
        n_fetch: int,
        rnd: float,
        *,
        caps: Mapping[str, int] | None = None,
        pod_name: str | None = None,
    ) -> StepResult:
        """Apply finished jobs and lease up to ``n_fetch`` new ones: one round trip.

        With ``pod_name``, a Pod the operator listed in a served queue's drain hash
        fetches nothing (``StepResult.drained``); acks still go through.
        """
        if self.cluster and len(plan.queues) > 1:
            return await self._step_each_queue(
                plan, worker_id, finishes, n_fetch, rnd, caps=caps, pod_name=pod_name
            )
        lim = self.limits
        ops = [
            {
                "q": plan.index(f.queue),
                "id": f.id,
                "token": f.token,
                "op": f.op,
                "duration_ms": f.duration_ms,
                "result": f.result,
                "delay_ms": f.delay_ms,
                "error": f.error,
                "traceback": f.traceback,
                "reason": f.reason,
            }
            for f in finishes
        ]
        reply = await self._scripts["step"](
            keys=plan.step_keys,
            args=[
                worker_id,
                lim.lease_ms,
                lim.max_deliveries,
                n_fetch,
                plan.mode,
                plan.aging_ms,
                repr(rnd),
                lim.promote_batch,
                lim.job_ttl_ms,
                lim.result_ttl_ms,
                lim.dlq_max_age_ms,
                lim.dlq_max_count,
                json.dumps([{k: v for k, v in o.items() if v is not None} for o in ops])
                if ops
                else "[]",
                json.dumps(list(plan.weights)) if plan.weights else "[]",
                plan.limits_json,
                len(plan.queues),
                json.dumps(dict(caps)) if caps else "{}",
                pod_name or "",
            ],
        )
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

    async def _step_each_queue(
        self,
        plan: FetchPlan,
        worker_id: str,
        finishes: Sequence[FinishOp],
        n_fetch: int,
        rnd: float,
        *,
        caps: Mapping[str, int] | None,
        pod_name: str | None,
    ) -> StepResult:
        """``step`` on a Redis Cluster: one single-slot call per queue (see slot_fanout)."""
        parts: list[tuple[str, StepResult]] = []
        left, drained, fetched = n_fetch, False, Counter[str]()
        for queue in slot_fanout.queue_order(plan, rnd):
            ops = slot_fanout.ops_for(finishes, queue)
            want = 0 if drained else max(0, left)
            if not ops and want == 0:
                continue
            cached = self._single.get(queue)
            if cached is None or cached[0] is not plan:
                cached = self._single[queue] = (plan, slot_fanout.single_queue_plan(plan, queue))
            single = cached[1]
            res = await self.step(
                single,
                worker_id,
                ops,
                want,
                rnd,
                caps=slot_fanout.caps_left(caps, fetched),
                pod_name=pod_name,
            )
            parts.append((queue, res))
            left -= len(res.jobs)
            fetched.update(j.type for j in res.jobs)
            drained = drained or res.drained
        empty = StepResult(acks=[], jobs=[], next_due_ms=None, now_ms=0)
        return slot_fanout.merge(finishes, parts, empty)

    # -- rate limits -----------------------------------------------------------
    async def acquire_limit(
        self, limiter_keys: Sequence[str], limits: Sequence[Limit], member: str
    ) -> int:
        """One admission for a handler-side limiter: 0 if admitted, else ms to wait."""
        ok, retry = await self._scripts["ratelimit"](
            keys=list(limiter_keys),
            args=["acquire", member, json.dumps([_limit_spec(lim) for lim in limits])],
        )
        return 0 if int(ok) == 1 else max(1, int(retry))

    async def limit_usage(self, rate_limits: TypeLimits) -> dict[tuple[str, str], tuple[int, int]]:
        """(type, limit label) → (used, capacity) now, for every configured limit."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        if not rate_limits:
            return out
        pipe = self.redis.pipeline(transaction=False)
        for job_type, lims in rate_limits:
            await self._scripts["ratelimit"](
                keys=[keys.limiter_key(job_type, lim.label) for lim in lims],
                args=["usage", "", json.dumps([_limit_spec(lim) for lim in lims])],
                client=pipe,
            )
        for (job_type, lims), flat in zip(rate_limits, await pipe.execute(), strict=True):
            for j, lim in enumerate(lims):
                out[(job_type, lim.label)] = (int(flat[2 * j]), int(flat[2 * j + 1]))
        return out

    async def limiter_counts(self) -> dict[str, int]:
        """``<type>:admitted`` / ``<type>:throttled`` totals over all workers."""
        raw = await self.redis.hgetall(keys.limiter_stats_key())
        return {str(k): int(v) for k, v in cast(dict[str, str], raw).items()}

    async def wait_for_wake(self, plan: FetchPlan, timeout_s: float) -> bool:
        """Block until a producer (or a retry, reap, replay) leaves a wake token."""
        wake = [keys.wake_key(q) for q in plan.queues]
        if self.cluster and len(wake) > 1:
            return await self._wait_for_any(wake, timeout_s)
        got = await self._blocking.blpop(wake, timeout=max(0.01, timeout_s))
        return got is not None

    async def _wait_for_any(self, wake: Sequence[str], timeout_s: float) -> bool:
        """One BLPOP per queue (each in its own slot); the first token wins.

        A BLPOP cancelled after it took a token loses that token: harmless, a
        token is only a hint to fetch now instead of after the block time.
        """
        waits = [
            asyncio.ensure_future(self._blocking.blpop([k], timeout=max(0.01, timeout_s)))
            for k in wake
        ]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return any(not w.cancelled() and w.exception() is None and w.result() for w in done)

    async def reap(self, queue: str, worker_id: str, gate_ms: int) -> tuple[int, int]:
        lim = self.limits
        requeued, dead = await self._scripts["reap"](
            keys=queue_keys(queue),
            args=[
                gate_ms,
                lim.reap_batch,
                lim.max_deliveries,
                lim.dlq_max_age_ms,
                lim.dlq_max_count,
                lim.job_ttl_ms,
                worker_id,
            ],
        )
        return int(requeued), int(dead)

    async def heartbeat(
        self, queues: Sequence[str], worker_id: str, body_json: str, stale_s: float
    ) -> None:
        groups = [[q] for q in queues] if self.cluster else [list(queues)]  # one slot each
        for group in groups:
            await self._scripts["heartbeat"](
                keys=[keys.workers_key(q) for q in group], args=[worker_id, body_json, stale_s]
            )

    async def forget_worker(self, queues: Sequence[str], worker_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hdel(keys.workers_key(q), worker_id)
            pipe.hdel(keys.exec_stats_key(q), worker_id)
        await pipe.execute()

    async def publish_exec_stats(
        self, queues: Sequence[str], worker_id: str, body_json: str, ttl_s: float
    ) -> None:
        """This worker's per-type execution statistics (one pipelined write)."""
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hset(keys.exec_stats_key(q), worker_id, body_json)
            pipe.pexpire(keys.exec_stats_key(q), int(ttl_s * 1000))
        await pipe.execute()

    async def exec_stats(
        self, queues: Sequence[str]
    ) -> list[tuple[str, str, str, dict[str, float]]]:
        """(queue, worker, type, stats) rows published by live workers."""
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.hgetall(keys.exec_stats_key(q))
        rows: list[tuple[str, str, str, dict[str, float]]] = []
        for q, raw in zip(queues, await pipe.execute(), strict=True):
            for worker_id, body in sorted(cast(dict[str, str], raw).items()):
                try:
                    by_type = json.loads(body)
                except ValueError:
                    continue
                if isinstance(by_type, dict):
                    rows += [(q, worker_id, t, st) for t, st in sorted(by_type.items())]
        return rows

    async def stats(
        self, queues: Sequence[str], heartbeat_ttl_s: float = 30.0
    ) -> dict[str, QueueStats]:
        return await queue_stats(self.redis, queues, heartbeat_ttl_s=heartbeat_ttl_s)

    async def server_warnings(self) -> list[str]:
        """Settings under which Redis itself may lose or evict jobs (R10).

        The shared check (``jobqueue_protocol.redis_health``) so the worker, the
        operator and ``jobqueue health`` agree; it never raises.
        """
        return await startup_warnings_async(self.redis)

    # -- dead letters ----------------------------------------------------------
    async def dead_ids(self, queue: str, offset: int, limit: int) -> list[tuple[str, float]]:
        """Newest first, a bounded page (never the whole set)."""
        rows = cast(
            list[tuple[str, float]],
            await self.redis.zrevrange(
                keys.dead_key(queue), offset, offset + limit - 1, withscores=True
            ),
        )
        return [(str(i), float(s) / 1000.0) for i, s in rows]

    async def jobs(self, queue: str, ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(keys.job_key(queue, i))
        return [cast(dict[str, str], r) for r in await pipe.execute()]

    async def replay(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(
            await self._scripts["replay"](
                keys=queue_keys(queue), args=[self.limits.job_ttl_ms, *ids]
            )
        )

    async def dead_among(self, queue: str, ids: Sequence[str]) -> list[bool]:
        """For each id, whether it is in the queue's dead-letter set (one round trip)."""
        if not ids:
            return []
        scores = await self.redis.zmscore(keys.dead_key(queue), list(ids))
        return [s is not None for s in scores]

    async def purge(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0

        async def run(client: redis.asyncio.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(keys.dead_key(queue), *ids)
            pipe.delete(*[keys.job_key(queue, i) for i in ids])
            removed, _ = await pipe.execute()
            return int(removed)

        if self._slots is not None:  # a cluster pipeline has no MULTI: the slot's master has
            return await self._on_slot_master(keys.dead_key(queue), run)
        return await run(self.redis)


class SyncBroker:
    """Blocking access for the lease-renewal thread and the sync producer."""

    def __init__(self, url: str, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        target = parse_redis_url(url)
        _refuse_durable_on_cluster(target, self.limits)
        self.cluster = target.mode == "cluster"
        self.redis: redis.Redis = sync_client(
            target,
            decode_responses=True,
            encoding_errors="replace",
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
        )
        self._scripts = {n: self.redis.register_script(_load_script(n)) for n in SCRIPT_NAMES}

    def close(self) -> None:
        self.redis.close()

    def renew(self, plan: FetchPlan, held: Sequence[tuple[str, str, str]]) -> list[bool]:
        if not held:
            return []
        if self.cluster and len(plan.queues) > 1:
            return self._renew_each_queue(plan, held)
        reply = self._scripts["renew"](
            keys=plan.all_keys, args=_renew_args(plan, self.limits.lease_ms, held)
        )
        return [int(x) == 1 for x in reply]

    def _renew_each_queue(
        self, plan: FetchPlan, held: Sequence[tuple[str, str, str]]
    ) -> list[bool]:
        """``renew`` on a Redis Cluster: one single-slot call per queue, answers in order."""
        answers: dict[int, bool] = {}
        for queue in plan.queues:
            mine = [(i, h) for i, h in enumerate(held) if h[0] == queue]
            if not mine:
                continue
            single = slot_fanout.single_queue_plan(plan, queue)
            ok = self.renew(single, [h for _, h in mine])
            answers.update((i, o) for (i, _), o in zip(mine, ok, strict=True))
        return [answers.get(i, False) for i in range(len(held))]

    def enqueue(self, by_queue: Mapping[str, Sequence[NewJob]]) -> list[tuple[str, bool]]:
        """As :meth:`Broker.enqueue`, blocking."""
        script = self._scripts["enqueue"]
        calls = [
            (queue_keys(q), _enqueue_args(self.limits, jobs))
            for q, jobs in by_queue.items()
            if jobs
        ]
        replies: list[Any] = []
        durable = self.limits.durable_replicas > 0 and bool(calls)
        if (len(calls) == 1 and not durable) or (calls and self.cluster):
            # A cluster pipeline would split per node anyway: one call per queue.
            replies = [script(keys=k, args=a) for k, a in calls]
        elif calls:
            for attempt in (1, 2):
                pipe = self.redis.pipeline(transaction=False)
                for k, a in calls:
                    pipe.evalsha(script.sha, len(k), *k, *a)
                if durable:  # same connection as the scripts: see Broker._evalsha_pipelined
                    pipe.execute_command(  # type: ignore[no-untyped-call]
                        "WAIT", self.limits.durable_replicas, self.limits.durable_timeout_ms
                    )
                try:
                    replies = pipe.execute()
                    break
                except NoScriptError:
                    if attempt == 2:
                        raise
                    self.redis.script_load(script.script)
        return _durable_reply(self.limits, replies, durable)

    def job(self, queue: str, job_id: str) -> dict[str, str] | None:
        raw = self.redis.hgetall(keys.job_key(queue, job_id))
        return cast(dict[str, str], raw) or None
