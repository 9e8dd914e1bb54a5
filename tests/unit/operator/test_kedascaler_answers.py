"""KEDA's answers from one poll: the backlog counts running jobs; replicas follow the policy."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobqueue_operator.kedascaler.answers import (
    REUSE_S,
    PolicyState,
    backlog,
    is_active,
    metric_value,
)
from jobqueue_operator.kedascaler.metadata import parse
from jobqueue_operator.observation import Observation

BACKLOG = parse({"queue": "q"})
REPLICAS = parse(
    {
        "queue": "q",
        "mode": "replicas",
        "maxReplicas": "10",
        "scaleUpQueueDepth": "10",
        "scaleDownQueueDepth": "2",
        "scaleUpCooldownSeconds": "0",
        "scaleDownCooldownSeconds": "0",
        "scaleToZeroAfterSeconds": "0",
    }
)


def test_running_jobs_keep_the_backlog_up_with_an_empty_queue() -> None:
    busy = Observation(depth=0, oldest_age_s=0.0, in_flight=3, busy_workers=3, workers=3)
    assert backlog(busy) == 3
    assert metric_value(BACKLOG, busy, PolicyState(), 0.0) == 3.0
    assert is_active(BACKLOG, busy, PolicyState(), 0.0)


def test_activation_threshold() -> None:
    trigger = parse({"queue": "q", "activationBacklog": "5"})
    assert not is_active(trigger, Observation(depth=5, oldest_age_s=0.0), PolicyState(), 0.0)
    assert is_active(trigger, Observation(depth=6, oldest_age_s=0.0), PolicyState(), 0.0)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_backlog_is_waiting_plus_in_flight(depth: int, in_flight: int) -> None:
    obs = Observation(depth=depth, oldest_age_s=0.0, in_flight=in_flight)
    assert metric_value(BACKLOG, obs, PolicyState(), 0.0) == depth + in_flight
    assert is_active(BACKLOG, obs, PolicyState(), 0.0) == (depth + in_flight > 0)


def test_replicas_wake_from_zero_then_return_to_zero_when_idle() -> None:
    state = PolicyState()
    surge = Observation(depth=40, oldest_age_s=5.0)
    woken = metric_value(REPLICAS, surge, state, 100.0)
    assert woken >= 1
    assert is_active(REPLICAS, surge, state, 100.0)
    idle = Observation(depth=0, oldest_age_s=0.0, workers=int(woken))
    values = [metric_value(REPLICAS, idle, state, 100.0 + 60 * i) for i in range(1, 40)]
    assert values[-1] == 0
    assert values == sorted(values, reverse=True), "an idle queue never scales back up"
    assert not is_active(REPLICAS, idle, state, 100.0 + 60 * 40)


def test_one_keda_poll_never_takes_two_policy_steps() -> None:
    """GetMetrics and IsActive of one poll arrive together: the second reuses the first."""
    state = PolicyState(replicas=2)
    press = Observation(depth=200, oldest_age_s=60.0, workers=2)
    first = metric_value(REPLICAS, press, state, 10.0)
    again = metric_value(REPLICAS, press, state, 10.0 + REUSE_S / 2)
    assert again == first > 2
    later = metric_value(REPLICAS, press, state, 10.0 + 5.0)
    assert later > first


def test_first_answer_starts_from_the_heartbeating_workers() -> None:
    """Without a previous answer, the running pods are the workers that heartbeat."""
    calm = Observation(depth=5, oldest_age_s=1.0, workers=4, busy_workers=4, in_flight=4)
    assert metric_value(REPLICAS, calm, PolicyState(), 0.0) == 4
