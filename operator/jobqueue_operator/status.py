"""The status patch of a JobQueue, as a pure function of one tick's outcome.

Everything written here is declared in the CRD's status schema (the pydantic
``status_models.JobQueueStatus`` is that schema): a structural schema prunes
undeclared fields silently, so kopf's habit of storing handler results in
status is not used.

The last scale times live in status, not in memory, so a restarted operator
keeps its cooldowns. ``decisions`` keeps the last :data:`MAX_DECISIONS` decisions
that changed something (a scale, or a new reason), not every identical hold, so
it stays useful when the loop polls every few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.policy import Action, Decision, Limit, Observation, Reason
from jobqueue_operator.ports import Expansion
from jobqueue_operator.status_models import (
    Condition,
    DecisionRecord,
    EffectiveRecord,
    EffectiveScaleDown,
    EffectiveScaleUp,
    JobQueueStatus,
    ObservedMetrics,
    PodSelectionRecord,
    QueueDiscoveryRecord,
)
from jobqueue_operator.targets import TargetRef

MAX_DECISIONS = 20
#: The most queue names listed in ``status.queueDiscovery``.
MAX_LISTED_QUEUES = 50
#: The most Pod names listed in ``status.drainingPods``.
MAX_LISTED_DRAINING = 200

READY = "Ready"
ACTIVE = "Active"
SCALING_LIMITED = "ScalingLimited"
METRICS_AVAILABLE = "MetricsAvailable"
FALLBACK = "Fallback"
PAUSED = "Paused"
CONDITION_TYPES = (READY, ACTIVE, SCALING_LIMITED, METRICS_AVAILABLE, FALLBACK, PAUSED)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the JobQueue cannot work right now (``Ready=False``); the loop goes on."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Everything one pass of the loop learnt; the input of :func:`build`."""

    now: float
    generation: int | None
    target: TargetRef | None = None
    current_replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    decision: Decision | None = None
    observation: Observation | None = None
    metrics_error: str | None = None
    consecutive_failures: int = 0
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    problem: Problem | None = None
    paused: bool = False
    #: ``status.podSelection`` when this tick chose Pods or saw a choice settle;
    #: otherwise the previous one stays (the status is merge-patched).
    pod_selection: PodSelectionRecord | None = None
    #: ``status.queueDiscovery`` when the spec has weightedQueues.
    queue_discovery: QueueDiscoveryRecord | None = None
    #: ``status.effective``: the bounds and thresholds in force once the spec parsed.
    effective: EffectiveRecord | None = None
    #: ``status.drainingPods``: Pods drained first, still in ``/scale`` until idle.
    draining: tuple[str, ...] | None = None
    #: ``current_replicas`` less the drained Pods, when some drain: what the decision
    #: was made from, so the history reads "from capacity to desired".
    capacity: int | None = None


def effective_record(eff: EffectiveSpec, source: str) -> EffectiveRecord:
    """``status.effective``: what the policy applies, after the spec, class and defaults."""
    return EffectiveRecord(
        min_replicas=eff.min_replicas,
        max_replicas=eff.max_replicas,
        defaults_source=source,
        scale_up=EffectiveScaleUp(
            max_step=eff.max_step,
            **_thresholds(
                eff.up_depth, eff.up_latency_s, eff.up_cooldown_s, eff.up_cpu_pct, eff.up_memory_pct
            ),
        ),
        scale_down=EffectiveScaleDown(
            step=eff.down_step,
            **_thresholds(
                eff.down_depth,
                eff.down_latency_s,
                eff.down_cooldown_s,
                eff.down_cpu_pct,
                eff.down_memory_pct,
            ),
        ),
        fallback_replicas=eff.fallback_replicas,
    )


def _thresholds(
    depth: int, latency_s: float, cooldown_s: float, cpu_pct: float | None, memory_pct: float | None
) -> dict[str, Any]:
    """The fields a scale-up and a scale-down record share."""
    return {
        "queue_depth": depth,
        "queue_latency_seconds": latency_s,
        "cooldown_seconds": cooldown_s,
        "cpu_percent": cpu_pct,
        "memory_percent": memory_pct,
    }


def discovery_record(found: Expansion) -> QueueDiscoveryRecord:
    """``status.queueDiscovery``: what the patterns matched and what the cap left out."""
    return QueueDiscoveryRecord(
        watched_queues=len(found.queues),
        matched_queues=found.matched,
        truncated=found.truncated,
        scan_complete=found.complete,
        queues=[q.name for q in found.queues[:MAX_LISTED_QUEUES]],
    )


def to_rfc3339(ts: float) -> str:
    """Epoch seconds to RFC 3339 in UTC with milliseconds (cooldowns need sub-second)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_rfc3339(value: object) -> float | None:
    """The inverse of :func:`to_rfc3339`; anything unreadable is ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def model(previous: Mapping[str, Any], tick: Tick) -> JobQueueStatus:
    """The status of this tick, given the previous status (for history and transitions)."""
    last: tuple[str | None, str | None, str | None] = (None, None, None)
    if tick.decision is not None:
        decision = tick.decision
        last = (decision.action.value, decision.reason.value, decision.message)
    elif tick.problem is not None:
        last = (Action.HOLD.value, tick.problem.reason, tick.problem.message)
    return JobQueueStatus(
        observed_generation=tick.generation,
        target=None if tick.target is None else str(tick.target),
        current_replicas=tick.current_replicas,
        desired_replicas=tick.decision.desired if tick.decision is not None else None,
        observed=None if tick.observation is None else _observed(tick.observation, tick.now),
        last_scale_up_time=_time_or_none(tick.last_scale_up),
        last_scale_down_time=_time_or_none(tick.last_scale_down),
        last_action=last[0],
        last_reason=last[1],
        last_message=last[2],
        consecutive_failures=tick.consecutive_failures,
        pod_selection=tick.pod_selection,
        draining_pods=None if tick.draining is None else list(tick.draining[:MAX_LISTED_DRAINING]),
        queue_discovery=tick.queue_discovery,
        effective=tick.effective,
        decisions=decisions(previous.get("decisions") or [], tick),
        conditions=conditions(previous.get("conditions") or [], tick),
    )


def build(previous: Mapping[str, Any], tick: Tick) -> dict[str, Any]:
    """The full ``status`` to merge-patch, given the previous status and this tick.

    Unset fields are left out, so the previous value stays (the status is
    merge-patched), except an unsettled pod selection's ``removedPods``: its
    ``null`` removes the list a previous, settled selection left.
    """
    status = model(previous, tick).model_dump(by_alias=True, exclude_none=True)
    if tick.pod_selection is not None and tick.pod_selection.removed_pods is None:
        status["podSelection"]["removedPods"] = None
    return status


def same_decision(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether two statuses differ at most in the live sample of the queue.

    The sample (``observed``) and the texts that quote it (``lastMessage``, the
    conditions' messages) change on nearly every poll of a queue that holds work,
    if only because the oldest job ages. Writing them every poll costs an API
    request, an etcd write and a watch event per JobQueue per poll; everything a
    user acts on (replicas, action, reason, conditions' status and reason, the
    decisions, failures, pod selection) still compares here, so it is written at
    once. The per-poll values are in the Prometheus metrics.
    """
    return _decisive(new) == _decisive(old)


def _decisive(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in ("observed", "lastMessage", "conditions")}
    out["conditions"] = [
        (c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []
    ]
    return out


def _time_or_none(ts: float | None) -> str | None:
    return None if ts is None else to_rfc3339(ts)


def _observed(obs: Observation, now: float) -> ObservedMetrics:
    return ObservedMetrics(
        depth=obs.depth,
        delayed=obs.delayed,
        in_flight=obs.in_flight,
        dead=obs.dead,
        oldest_age_seconds=round(obs.oldest_age_s, 3),
        workers=obs.workers,
        busy_workers=obs.busy_workers,
        observed_at=to_rfc3339(now),
        arrival_per_second=None if obs.arrival_rate is None else round(obs.arrival_rate, 3),
        mean_service_seconds=None if obs.mean_service_s is None else round(obs.mean_service_s, 3),
    )


def _readable(item: Mapping[str, Any]) -> DecisionRecord | None:
    try:
        return DecisionRecord.model_validate(item)
    except ValidationError:  # hand-edited status: drop the entry rather than the history
        return None


def decisions(previous: Sequence[Mapping[str, Any]], tick: Tick) -> list[DecisionRecord]:
    """Append this tick's decision when it scaled or its reason changed; keep the last 20."""
    read = (_readable(item) for item in list(previous)[-MAX_DECISIONS:])
    history = [item for item in read if item is not None]
    decision = tick.decision
    if decision is None or tick.current_replicas is None:
        return history
    last_reason = history[-1].reason if history else None
    if decision.action is Action.HOLD and decision.reason.value == last_reason:
        return history
    history.append(
        DecisionRecord(
            time=to_rfc3339(tick.now),
            action=decision.action.value,
            from_replicas=tick.current_replicas if tick.capacity is None else tick.capacity,
            to_replicas=decision.desired,
            reason=decision.reason.value,
            message=decision.message,
            limited_by=sorted(limit.value for limit in decision.limited_by),
        )
    )
    return history[-MAX_DECISIONS:]


def conditions(previous: Sequence[Mapping[str, Any]], tick: Tick) -> list[Condition]:
    """The six conditions; ``lastTransitionTime`` moves only when a status flips."""
    before = {str(c.get("type")): c for c in previous}
    fresh = [
        _ready(tick),
        _metrics_available(tick),
        _active(tick),
        _scaling_limited(tick),
        _fallback(tick),
        _paused(tick),
    ]
    out = []
    for ctype, status, reason, message in fresh:
        old = before.get(ctype)
        changed = old is None or old.get("status") != status
        out.append(
            Condition(
                type=ctype,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=(
                    to_rfc3339(tick.now) if changed or old is None else old["lastTransitionTime"]
                ),
                observed_generation=tick.generation,
            )
        )
    return out


_Cond = tuple[str, Literal["True", "False", "Unknown"], str, str]


def _ready(tick: Tick) -> _Cond:
    if tick.problem is not None:
        return READY, "False", tick.problem.reason, tick.problem.message
    if tick.metrics_error is not None:
        return READY, "False", "MetricsUnavailable", tick.metrics_error
    return READY, "True", "Reconciled", "The queue is observed and the target is scaled."


def _metrics_available(tick: Tick) -> _Cond:
    if tick.observation is not None:
        return METRICS_AVAILABLE, "True", "RedisReachable", "The last poll of Redis succeeded."
    if tick.metrics_error is not None:
        return (
            METRICS_AVAILABLE,
            "False",
            "RedisUnavailable",
            f"{tick.metrics_error} ({tick.consecutive_failures} failures in a row)",
        )
    return METRICS_AVAILABLE, "Unknown", "NotObserved", "Redis was not polled on this tick."


def _active(tick: Tick) -> _Cond:
    obs = tick.observation
    if obs is None:
        return ACTIVE, "Unknown", "NotObserved", "No queue metrics on this tick."
    if obs.depth or obs.in_flight:
        return (
            ACTIVE,
            "True",
            "QueueHasWork",
            f"{obs.depth} waiting, {obs.in_flight} in flight.",
        )
    return ACTIVE, "False", "QueueIdle", "Nothing is waiting or in flight."


def _scaling_limited(tick: Tick) -> _Cond:
    decision = tick.decision
    if decision is None or not decision.limited_by:
        return SCALING_LIMITED, "False", "NotLimited", "No limit held the last decision back."
    limits = sorted(limit.value for limit in decision.limited_by)
    first = limits[0] if Limit.COOLDOWN.value not in limits else Limit.COOLDOWN.value
    return SCALING_LIMITED, "True", first, f"Limited by {', '.join(limits)}: {decision.message}"


def _fallback(tick: Tick) -> _Cond:
    if tick.decision is not None and tick.decision.reason is Reason.FALLBACK:
        return FALLBACK, "True", "FallbackActive", tick.decision.message
    return FALLBACK, "False", "NotInFallback", "Replicas follow the queue metrics."


def _paused(tick: Tick) -> _Cond:
    if tick.paused:
        return (
            PAUSED,
            "True",
            "Paused",
            "Scaling is paused by spec.paused, spec.pausedReplicas or an annotation.",
        )
    return PAUSED, "False", "NotPaused", "Scaling is not paused."
