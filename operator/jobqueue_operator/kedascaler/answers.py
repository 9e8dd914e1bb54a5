"""One Redis poll turned into KEDA's answers: the metric value and "active" (pure).

The backlog metric counts the jobs in flight beside the waiting ones: with
waiting jobs only (KEDA's own list-length scalers), a pool that is busy with
long jobs and has an empty queue looks idle and is scaled down mid-job.

In replicas mode the value is what our policy decides. The policy needs the
current count and the last scale times, which KEDA does not send; the scaler
keeps them per ScaledObject (:class:`PolicyState`), taking its own last answer
as the current count, because the HPA applies that answer (target 1). Before
the first answer the workers' heartbeats count the running pods. KEDA asks for
the metric and for activity on every poll, and the HPA asks again through the
metrics adapter: a decision younger than ``REUSE_S`` is reused, so one poll
interval never takes two policy steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from jobqueue_operator.decision import Action, Decision
from jobqueue_operator.kedascaler.metadata import Mode, Trigger
from jobqueue_operator.observation import CounterWindow, Observation
from jobqueue_operator.policy import decide

#: A decision this fresh (seconds) is reused: GetMetrics and IsActive of one KEDA poll.
REUSE_S = 1.0


def backlog(obs: Observation) -> int:
    """Jobs waiting (due delayed ones included) plus jobs running."""
    return obs.depth + obs.in_flight


@dataclass
class PolicyState:
    """What the policy remembers between calls for one ScaledObject's trigger."""

    replicas: int | None = None
    last_up: float | None = None
    last_down: float | None = None
    last_busy: float | None = None
    counters: CounterWindow = field(default_factory=CounterWindow)
    decided_at: float | None = None
    decision: Decision | None = None


def decide_replicas(trigger: Trigger, obs: Observation, state: PolicyState, now: float) -> Decision:
    """The policy's replica count for this poll; updates ``state``."""
    assert trigger.policy is not None, "replicas mode carries a policy"
    if (
        state.decision is not None
        and state.decided_at is not None
        and 0 <= now - state.decided_at < REUSE_S
    ):
        return state.decision
    rates = state.counters.rates(now, obs.counters)
    if obs.depth or obs.in_flight or obs.busy_workers or state.last_busy is None:
        state.last_busy = now
    seen = replace(
        obs,
        arrival_rate=rates.arrival_rate,
        mean_service_s=rates.mean_service_s,
        last_busy_at=state.last_busy,
    )
    current = state.replicas if state.replicas is not None else obs.workers
    decision = decide(trigger.policy, seen, current, state.last_up, state.last_down, now)
    if decision.action is Action.SCALE_UP:
        state.last_up = now
    elif decision.action is Action.SCALE_DOWN:
        state.last_down = now
    state.replicas = decision.desired
    state.decided_at, state.decision = now, decision
    return decision


def metric_value(trigger: Trigger, obs: Observation, state: PolicyState, now: float) -> float:
    """The value KEDA hands to the HPA."""
    if trigger.mode is Mode.BACKLOG:
        return float(backlog(obs))
    return float(decide_replicas(trigger, obs, state, now).desired)


def is_active(trigger: Trigger, obs: Observation, state: PolicyState, now: float) -> bool:
    """Whether KEDA should keep the target above zero (it scales 0 <-> 1 on this)."""
    if trigger.mode is Mode.BACKLOG:
        return backlog(obs) > trigger.activation
    return decide_replicas(trigger, obs, state, now).desired > 0
