"""Cost per poll over a quiet window: Redis round trips and commands, API requests.

"Quiet": the JobQueues hold (their queues sit in the hysteresis band), no worker
runs and the benchmark sends nothing but its own counter reads, which are
excluded. Polls are counted by the operator itself
(``jobqueue_loop_duration_seconds_count``), so the ratio does not depend on
guessing how many ticks fit in the window; the counters are read at slightly
different moments, so over W seconds at interval I the ratio is good to about
±1 poll in W/I per JobQueue.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar

from kubernetes_asyncio import client

from bench.operator import probes
from bench.operator.env import BenchEnv

T = TypeVar("T")


async def measure(env: BenchEnv, window_s: float, jobqueues: int) -> dict[str, Any]:
    """Counter deltas over ``window_s`` and their per-poll ratios."""
    env.check_operator()
    await env.rclient.ping()  # the connection (and its CLIENT SETINFO) before the first snapshot
    op0, at0 = await _timed(probes.operator_counters(env.metrics_port))
    r0 = await probes.redis_counters(env.rclient)
    a0 = await probes.api_counters(env.plane)
    started = time.monotonic()
    await asyncio.sleep(window_s)
    a1 = await probes.api_counters(env.plane)
    r1 = await probes.redis_counters(env.rclient)
    op1, at1 = await _timed(probes.operator_counters(env.metrics_port))
    elapsed = time.monotonic() - started
    # Between the two scrapes of the operator's counters: the time its poll count
    # covers. The window also holds the other probes, seconds each at thousands of
    # JobQueues (the API server's metrics are large).
    span = at1 - at0
    env.check_operator()
    polls = op1.polls - op0.polls
    reads, commands, by_command = probes.redis_delta(r0, r1)
    sa_requests, per_resource = probes.api_delta(a0, a1)
    own_trips = (
        None
        if op0.round_trips is None or op1.round_trips is None
        else op1.round_trips - op0.round_trips
    )
    per_poll = (lambda x: x / polls) if polls else (lambda _: float("nan"))
    return {
        "window_s": round(elapsed, 2),
        "counter_span_s": span,
        "jobqueues": jobqueues,
        "polls": polls,
        "polls_per_jobqueue_per_s": polls / jobqueues / span,
        "operator_loop_seconds_per_poll": per_poll(op1.loop_seconds - op0.loop_seconds),
        "operator_round_trips_metric": own_trips,
        "redis_round_trips": reads,
        "redis_round_trips_per_poll": per_poll(reads),
        "redis_commands": commands,
        "redis_commands_per_poll": per_poll(commands),
        "redis_commands_by_name": by_command,
        "api_requests_operator_identity": sa_requests,
        "api_requests_per_poll": per_poll(sa_requests),
        "api_requests_by_verb_resource": per_resource,
        "api_requests_by_verb_resource_per_poll": {k: per_poll(v) for k, v in per_resource.items()},
        "apiserver_mean_seconds_by_verb_resource": probes.api_latency(a0, a1),
        "api_rejected_operator_identity": a1.rejected_sa - a0.rejected_sa,
        "operator_api_errors": {
            k: v - op0.api_errors.get(k, 0.0)
            for k, v in op1.api_errors.items()
            if v - op0.api_errors.get(k, 0.0)
        },
        "operator_redis_errors": op1.redis_errors - op0.redis_errors,
        "status_writes": status_writes_delta(op0.status_writes, op1.status_writes),
        "poll_lateness": lateness_delta(op0.lateness, op1.lateness),
        "events": await event_reasons(env),
    }


async def _timed(scrape: Awaitable[T]) -> tuple[T, float]:
    """``scrape``'s result and when it was taken: the middle of the request."""
    before = time.monotonic()
    result = await scrape
    return result, (before + time.monotonic()) / 2


def status_writes_delta(
    before: probes.StatusWrites | None, after: probes.StatusWrites | None
) -> dict[str, float | None] | None:
    """Statuses written in the window, their mean delay, how many were replaced, the
    backlog at its end; ``None`` for an operator that writes each status in its poll."""
    if before is None or after is None:
        return None
    written = after.written - before.written
    return {
        "written": written,
        "mean_delay_s": (after.delay_seconds - before.delay_seconds) / written if written else None,
        "superseded": after.superseded - before.superseded,
        "pending_at_end": after.pending,
    }


#: A poll this much after its due time counts as late in the report.
LATE_S = 1.0


def lateness_delta(
    before: probes.PollLateness | None, after: probes.PollLateness | None
) -> dict[str, float | None] | None:
    """The window's polls: their mean lateness, the share more than :data:`LATE_S`
    late, and the smallest bucket bound that holds 99 % of them (an upper bound of
    the 99th percentile). ``None`` for an operator without the histogram."""
    if before is None or after is None:
        return None
    polls = after.count - before.count
    if polls <= 0:
        return {"polls": polls, "mean_s": None, "share_late": None, "p99_at_most_s": None}
    within = {le: n - before.buckets.get(le, 0.0) for le, n in after.buckets.items()}
    on_time = within.get(LATE_S)
    p99 = min((le for le, n in within.items() if n >= 0.99 * polls), default=None)
    return {
        "polls": polls,
        "mean_s": (after.seconds - before.seconds) / polls,
        "share_late": None if on_time is None else 1.0 - on_time / polls,
        "p99_at_most_s": p99,
    }


async def event_reasons(env: BenchEnv) -> dict[str, Any]:
    """Events of the namespace by reason, and the commonest Warning messages.

    The operator posts one Event per scale and one per change of trouble, so a
    reason other than a scale explains a poll that did not reach Redis, and its
    message says why.
    """
    events = await client.CoreV1Api(env.api).list_namespaced_event(env.namespace)
    warnings = Counter(
        f"{e.reason}: {e.message}"[:200] for e in events.items if e.type == "Warning"
    )
    return {
        "by_reason": dict(Counter(str(e.reason) for e in events.items)),
        "warnings": dict(warnings.most_common(5)),
    }
