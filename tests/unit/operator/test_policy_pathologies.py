"""The policy's known failure modes, one table and one property each.

Each of these failed on the earlier ``decide``: a status stamp ahead of the
clock froze scaling, the busy-pod floor held a mostly idle pool, a zero
scale-down cooldown flipped the count every poll, a retry due in seconds did not
stop a scale to zero, and NaN or infinity raised or masked a backlog.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.policy import (
    DIRECTION_DWELL_S,
    Action,
    Limit,
    Observation,
    Reason,
    WorkerLoad,
    decide,
)

NOW = 1_000_000.0
SPEC = EffectiveSpec(
    min_replicas=1,
    max_replicas=20,
    up_depth=100,
    up_latency_s=30.0,
    up_cooldown_s=60.0,
    max_step=3,
    down_depth=10,
    down_latency_s=5.0,
    down_cooldown_s=300.0,
    down_step=1,
    fallback_replicas=None,
    fallback_threshold=3,
    paused=False,
)


# ------------------------------------------------------------ stamps from the future
@pytest.mark.parametrize("skew_s", [1.0, 60.0, 3600.0, 86_400.0, math.inf, math.nan])
def test_a_stamp_ahead_of_the_clock_counts_as_now(skew_s: float) -> None:
    """A node an hour ahead wrote lastScaleUpTime: the cooldown runs once, not an hour."""
    surge = Observation(depth=400, oldest_age_s=0.0)
    held = decide(SPEC, surge, 3, NOW + skew_s, None, NOW)
    assert held.desired == 3
    assert Limit.COOLDOWN in held.limited_by
    assert held.message.endswith(f"scale-up cooldown for {SPEC.up_cooldown_s:.0f}s")


@given(
    skew=st.floats(0.0, 1e9),
    depth=st.integers(0, 10_000),
    cur=st.integers(1, 20),
    which=st.sampled_from(["up", "down"]),
)
def test_a_future_stamp_decides_like_a_stamp_at_now(
    skew: float, depth: int, cur: int, which: str
) -> None:
    observation = Observation(depth=depth, oldest_age_s=0.0)
    stamps = {"up": (NOW + skew, None), "down": (None, NOW + skew)}[which]
    at_now = {"up": (NOW, None), "down": (None, NOW)}[which]
    assert (
        decide(SPEC, observation, cur, *stamps, NOW).desired
        == decide(SPEC, observation, cur, *at_now, NOW).desired
    )


# ------------------------------------------------------------ in-flight floor
def spread(in_flight: int, pods: int, concurrency: int = 10) -> Observation:
    """Redis spreads the running jobs over every pod: each pod has one or two."""
    return Observation(
        depth=0,
        oldest_age_s=0.0,
        in_flight=in_flight,
        busy_workers=min(in_flight, pods),
        pod_concurrency=concurrency,
        arrival_rate=6.0,
        mean_service_s=2.0,
    )


@pytest.mark.parametrize(
    ("in_flight", "pods", "concurrency", "floor"),
    [(12, 10, 10, 2), (10, 10, 10, 1), (45, 10, 10, 5), (12, 10, 4, 3), (0, 10, 10, 2)],
)
def test_the_floor_is_the_slots_the_jobs_fill_not_the_busy_pods(
    in_flight: int, pods: int, concurrency: int, floor: int
) -> None:
    """12 jobs spread over 10 pods of 10 slots need 2 pods (6/s × 2 s also needs 2)."""
    spec = dataclasses.replace(SPEC, down_cooldown_s=0.0)
    decision = decide(spec, spread(in_flight, pods, concurrency), pods, None, None, NOW)
    assert decision.action is Action.SCALE_DOWN
    assert decision.desired == max(floor, math.ceil(6.0 * 2.0 / concurrency * 1.25))


@given(
    in_flight=st.integers(0, 500),
    busy=st.integers(0, 50),
    concurrency=st.integers(1, 64),
    cur=st.integers(1, 20),
)
def test_never_below_the_slots_the_running_jobs_fill(
    in_flight: int, busy: int, concurrency: int, cur: int
) -> None:
    spec = dataclasses.replace(SPEC, down_cooldown_s=0.0, down_step=20)
    observation = Observation(
        depth=0,
        oldest_age_s=0.0,
        in_flight=in_flight,
        busy_workers=busy,
        pod_concurrency=concurrency,
        mean_service_s=1.0,
        arrival_rate=0.0,
    )
    decision = decide(spec, observation, cur, None, None, NOW)
    if decision.desired < cur:
        assert decision.desired >= math.ceil(max(in_flight, busy) / concurrency)


# ------------------------------------------------------------ dwell between reversals
def flip_times(spec: EffectiveSpec, depths: list[int], period_s: float = 5.0) -> list[float]:
    """Run ``decide`` like the loop does over a depth sequence; times of direction changes."""
    cur, last_up, last_down, last_dir = 5, None, None, 0
    flips: list[float] = []
    for i, depth in enumerate(depths):
        now = NOW + i * period_s
        d = decide(spec, Observation(depth=depth, oldest_age_s=0.0), cur, last_up, last_down, now)
        if d.desired == cur:
            continue
        direction = 1 if d.desired > cur else -1
        if last_dir and direction != last_dir:
            flips.append(now)
        last_dir = direction
        if direction > 0:
            last_up = now
        else:
            last_down = now
        cur = d.desired
    return flips


def test_alternating_full_and_empty_flips_at_most_once_per_dwell() -> None:
    """Depth 100/0 with both cooldowns 0 flipped the count 119 times an hour."""
    spec = dataclasses.replace(SPEC, up_cooldown_s=0.0, down_cooldown_s=0.0)
    hour = [100 if (i // 6) % 2 == 0 else 0 for i in range(720)]
    flips = flip_times(spec, hour)
    assert len(flips) <= 3600 / DIRECTION_DWELL_S
    assert all(b - a >= DIRECTION_DWELL_S for a, b in itertools.pairwise(flips))


@settings(max_examples=200)
@given(
    depths=st.lists(st.sampled_from([0, 5, 50, 100, 250, 390]), min_size=2, max_size=200),
    up_cd=st.sampled_from([0.0, 5.0, 30.0]),
    down_cd=st.sampled_from([0.0, 5.0, 30.0]),
)
def test_direction_changes_are_a_dwell_apart_whatever_the_cooldowns(
    depths: list[int], up_cd: float, down_cd: float
) -> None:
    spec = dataclasses.replace(SPEC, up_cooldown_s=up_cd, down_cooldown_s=down_cd)
    flips = flip_times(spec, depths)
    assert all(b - a >= DIRECTION_DWELL_S for a, b in itertools.pairwise(flips))


# ------------------------------------------------------------ delayed work and zero
IDLE_LONG_AGO = NOW - 3600


@pytest.mark.parametrize(
    ("due_in_s", "desired", "limit"),
    [
        (5.0, 1, Limit.DELAYED_WORK),
        (-2.0, 1, Limit.DELAYED_WORK),  # overdue: nothing promoted it yet
        (30.0, 1, Limit.DELAYED_WORK),
        (31.0, 0, None),
        (3600.0, 0, None),
        (None, 0, None),
    ],
)
def test_a_retry_due_within_the_start_up_keeps_the_last_worker(
    due_in_s: float | None, desired: int, limit: Limit | None
) -> None:
    spec = dataclasses.replace(SPEC, min_replicas=0, down_cooldown_s=0.0, pod_startup_s=30.0)
    idle = Observation(
        depth=0, oldest_age_s=0.0, delayed=500, next_delayed_in_s=due_in_s,
        last_busy_at=IDLE_LONG_AGO,
    )  # fmt: skip
    decision = decide(spec, idle, 1, None, None, NOW)
    assert decision.desired == desired
    if limit is not None:
        assert limit in decision.limited_by


@given(due_in=st.floats(-100.0, 10_000.0), startup=st.floats(0.0, 600.0))
def test_never_to_zero_with_delayed_work_due_within_the_start_up(
    due_in: float, startup: float
) -> None:
    spec = dataclasses.replace(SPEC, min_replicas=0, down_cooldown_s=0.0, pod_startup_s=startup)
    idle = Observation(
        depth=0, oldest_age_s=0.0, next_delayed_in_s=due_in, last_busy_at=IDLE_LONG_AGO
    )
    decision = decide(spec, idle, 1, None, None, NOW)
    assert (decision.desired == 0) == (due_in > startup)


# ------------------------------------------------------------ non-finite inputs
BAD = [math.nan, math.inf, -math.inf]
FLOAT_FIELDS = ["oldest_age_s", "arrival_rate", "mean_service_s", "last_busy_at"]


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", BAD)
def test_a_non_finite_input_is_a_missing_metric(field: str, value: float) -> None:
    """NaN compares false with every threshold; it must not pass for an empty queue."""
    backlog = Observation(depth=5_000, oldest_age_s=1.0, arrival_rate=1.0, mean_service_s=1.0)
    bad = dataclasses.replace(backlog, **{field: value})  # type: ignore[arg-type]
    decision = decide(SPEC, bad, 4, None, None, NOW)
    assert decision.reason is Reason.METRICS_UNAVAILABLE
    assert decision.desired == 4
    assert Limit.MISSING_DATA in decision.limited_by
    assert field in decision.message


def test_a_non_finite_clock_holds() -> None:
    decision = decide(SPEC, Observation(depth=0, oldest_age_s=0.0), 4, NOW - 900, None, math.nan)
    assert decision.desired == 4
    assert decision.reason is Reason.METRICS_UNAVAILABLE


@given(
    field=st.sampled_from(FLOAT_FIELDS),
    value=st.sampled_from(BAD),
    cur=st.integers(0, 20),
    fallback=st.none() | st.integers(0, 20),
)
def test_non_finite_never_scales_down_and_never_raises(
    field: str, value: float, cur: int, fallback: int | None
) -> None:
    spec = dataclasses.replace(SPEC, min_replicas=0, fallback_replicas=fallback)
    empty = Observation(depth=0, oldest_age_s=0.0)
    bad = dataclasses.replace(empty, **{field: value})  # type: ignore[arg-type]
    decision = decide(spec, bad, cur, None, None, NOW)
    assert decision.desired >= min(cur, spec.max_replicas)


def test_pods_running_an_old_job_are_kept_on_a_scale_down() -> None:
    """3 jobs on 3 pods need 1 pod of 10 slots, but two jobs have run 40 s and 12 s:
    they would likely outlast the grace period of a removed pod, so 2 pods stay."""
    loads = (
        WorkerLoad("a", "busy", 1, busy_s=40.0, longest_s=40.0),
        WorkerLoad("b", "busy", 1, busy_s=12.0, longest_s=12.0),
        WorkerLoad("c", "busy", 1, busy_s=1.0, longest_s=1.0),
    )
    spec = dataclasses.replace(SPEC, down_cooldown_s=0.0)
    observation = Observation(
        depth=0, oldest_age_s=0.0, in_flight=3, busy_workers=3, worker_loads=loads,
        pod_concurrency=10, arrival_rate=0.0, mean_service_s=2.0,
    )  # fmt: skip
    decision = decide(spec, observation, 6, None, None, NOW)
    assert decision.desired == 2
    assert Limit.BUSY_WORKERS in decision.limited_by
