"""The scaling policy: one table row per branch, then hypothesis properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.policy import (
    DIRECTION_DWELL_S,
    Action,
    Counters,
    Decision,
    Limit,
    MetricsMissing,
    Observation,
    Rates,
    Reason,
    WorkerLoad,
    decide,
    rates_between,
    resource_use,
    severity_level,
    slo_need,
    step_for,
)
from jobqueue_operator.sizing import capacity_need, in_flight_floor

NOW = 1_000_000.0

SPEC = EffectiveSpec(
    min_replicas=1,
    max_replicas=10,
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


def spec(**changes: object) -> EffectiveSpec:
    return dataclasses.replace(SPEC, **changes)  # type: ignore[arg-type]


def obs(depth: int = 0, age: float = 0.0, busy: int = 0, in_flight: int = 0) -> Observation:
    return Observation(depth=depth, oldest_age_s=age, busy_workers=busy, in_flight=in_flight)


A = Action
R = Reason
L = Limit
ROWS: list[
    tuple[
        str,
        EffectiveSpec,
        Observation | MetricsMissing,
        int,
        float | None,
        float | None,
        int,
        Action,
        Reason,
        set[Limit],
    ]
] = [
    # id, spec, observation, current, last_up(ago), last_down(ago), desired, action, reason, limits
    ("band holds", SPEC, obs(50, 10), 3, None, None, 3, A.HOLD, R.WITHIN_BAND, set()),
    (
        "depth at threshold: +1",
        SPEC,
        obs(100, 0),
        3,
        None,
        None,
        4,
        A.SCALE_UP,
        R.QUEUE_DEPTH,
        set(),
    ),
    ("depth 2x: +2", SPEC, obs(200, 0), 3, None, None, 5, A.SCALE_UP, R.QUEUE_DEPTH, set()),
    (
        "depth 4x: +3, step-limited",
        SPEC,
        obs(400, 0),
        3,
        None,
        None,
        6,
        A.SCALE_UP,
        R.QUEUE_DEPTH,
        {L.STEP},
    ),
    (
        "latency alone scales up",
        SPEC,
        obs(5, 31),
        3,
        None,
        None,
        4,
        A.SCALE_UP,
        R.QUEUE_LATENCY,
        set(),
    ),
    (
        "latency worse than depth picks latency",
        SPEC,
        obs(150, 130),
        3,
        None,
        None,
        6,
        A.SCALE_UP,
        R.QUEUE_LATENCY,
        {L.STEP},
    ),
    (
        "bigger maxStep scales the steps",
        spec(max_step=9),
        obs(200, 0),
        3,
        None,
        None,
        9,
        A.SCALE_UP,
        R.QUEUE_DEPTH,
        set(),
    ),
    (
        "up inside cooldown holds",
        SPEC,
        obs(400, 0),
        3,
        30.0,
        None,
        3,
        A.HOLD,
        R.QUEUE_DEPTH,
        {L.COOLDOWN},
    ),
    ("up after cooldown", SPEC, obs(400, 0), 3, 61.0, None, 6, A.SCALE_UP, R.QUEUE_DEPTH, {L.STEP}),
    (
        "up not blocked by a scale-down cooldown",
        SPEC,
        obs(100, 0),
        3,
        None,
        61.0,
        4,
        A.SCALE_UP,
        R.QUEUE_DEPTH,
        set(),
    ),
    (
        "no reversal within the dwell of a scale-down",
        SPEC,
        obs(100, 0),
        3,
        None,
        1.0,
        3,
        A.HOLD,
        R.QUEUE_DEPTH,
        {L.DWELL},
    ),
    (
        "a severe surge skips the dwell",
        SPEC,
        obs(400, 0),
        3,
        None,
        1.0,
        6,
        A.SCALE_UP,
        R.QUEUE_DEPTH,
        {L.STEP},
    ),
    (
        "up capped at max",
        SPEC,
        obs(400, 0),
        9,
        None,
        None,
        10,
        A.SCALE_UP,
        R.QUEUE_DEPTH,
        {L.STEP, L.MAX},
    ),
    ("at max holds", SPEC, obs(400, 0), 10, None, None, 10, A.HOLD, R.QUEUE_DEPTH, {L.STEP, L.MAX}),
    ("drained: -1", SPEC, obs(0, 0), 3, None, None, 2, A.SCALE_DOWN, R.QUEUE_DRAINED, set()),
    (
        "bigger down step",
        spec(down_step=2),
        obs(0, 0),
        5,
        None,
        None,
        3,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        set(),
    ),
    (
        "depth low but latency not: band",
        SPEC,
        obs(2, 6),
        3,
        None,
        None,
        3,
        A.HOLD,
        R.WITHIN_BAND,
        set(),
    ),
    (
        "depth at down threshold: band",
        SPEC,
        obs(10, 0),
        3,
        None,
        None,
        3,
        A.HOLD,
        R.WITHIN_BAND,
        set(),
    ),
    (
        "down inside down cooldown",
        SPEC,
        obs(0, 0),
        3,
        None,
        100.0,
        3,
        A.HOLD,
        R.QUEUE_DRAINED,
        {L.COOLDOWN},
    ),
    (
        "down inside cooldown after a scale-up",
        SPEC,
        obs(0, 0),
        3,
        100.0,
        None,
        3,
        A.HOLD,
        R.QUEUE_DRAINED,
        {L.COOLDOWN},
    ),
    (
        "down after cooldown",
        SPEC,
        obs(0, 0),
        3,
        400.0,
        301.0,
        2,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        set(),
    ),
    ("down never below min", SPEC, obs(0, 0), 1, None, None, 1, A.HOLD, R.QUEUE_DRAINED, {L.MIN}),
    (
        "down step clamped at min",
        spec(down_step=5),
        obs(0, 0),
        3,
        None,
        None,
        1,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        {L.MIN},
    ),
    (
        "down keeps busy workers",
        SPEC,
        obs(0, 0, busy=3),
        3,
        None,
        None,
        3,
        A.HOLD,
        R.QUEUE_DRAINED,
        {L.BUSY_WORKERS},
    ),
    (
        "down to busy count",
        spec(down_step=3),
        obs(0, 0, busy=2),
        4,
        None,
        None,
        2,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        {L.BUSY_WORKERS},
    ),
    (
        "below min rises to min even in band",
        spec(min_replicas=2),
        obs(50, 0),
        1,
        None,
        None,
        2,
        A.SCALE_UP,
        R.BELOW_MIN,
        {L.MIN},
    ),
    (
        "below min rises in a cooldown",
        spec(min_replicas=2),
        obs(0, 0),
        0,
        1.0,
        1.0,
        2,
        A.SCALE_UP,
        R.BELOW_MIN,
        {L.COOLDOWN, L.MIN},
    ),
    (
        "above max falls to max",
        SPEC,
        obs(50, 0),
        14,
        None,
        None,
        10,
        A.SCALE_DOWN,
        R.ABOVE_MAX,
        {L.MAX},
    ),
    (
        "scale from zero",
        spec(min_replicas=0),
        obs(100, 0),
        0,
        None,
        None,
        1,
        A.SCALE_UP,
        R.SCALE_FROM_ZERO,
        set(),
    ),
    (
        "never to zero with a job in flight",
        spec(min_replicas=0),
        obs(0, 0, in_flight=1),
        1,
        None,
        None,
        1,
        A.HOLD,
        R.QUEUE_DRAINED,
        {L.BUSY_WORKERS},
    ),
    (
        "in-flight jobs do not stop a scale-down to one",
        spec(min_replicas=0),
        obs(0, 0, in_flight=3),
        3,
        None,
        None,
        2,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        set(),
    ),
    (
        "allowDisruption removes a busy worker",
        spec(allow_disruption=True),
        obs(0, 0, busy=3, in_flight=3),
        3,
        None,
        None,
        2,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        set(),
    ),
    (
        "allowDisruption still never goes to zero mid-job",
        spec(min_replicas=0, allow_disruption=True),
        obs(0, 0, busy=1, in_flight=1),
        1,
        None,
        None,
        1,
        A.HOLD,
        R.QUEUE_DRAINED,
        {L.BUSY_WORKERS},
    ),
    (
        "down to zero",
        spec(min_replicas=0),
        obs(0, 0),
        1,
        None,
        None,
        0,
        A.SCALE_DOWN,
        R.QUEUE_DRAINED,
        set(),
    ),
    (
        "missing data holds",
        SPEC,
        MetricsMissing(1, "down"),
        5,
        None,
        None,
        5,
        A.HOLD,
        R.METRICS_UNAVAILABLE,
        {L.MISSING_DATA},
    ),
    (
        "missing data never scales down",
        spec(fallback_replicas=2),
        MetricsMissing(9, "down"),
        5,
        None,
        None,
        5,
        A.HOLD,
        R.FALLBACK,
        set(),
    ),
    (
        "fallback below threshold holds",
        spec(fallback_replicas=8),
        MetricsMissing(2, "down"),
        5,
        None,
        None,
        5,
        A.HOLD,
        R.METRICS_UNAVAILABLE,
        {L.MISSING_DATA},
    ),
    (
        "fallback raises",
        spec(fallback_replicas=8),
        MetricsMissing(3, "down"),
        5,
        None,
        None,
        8,
        A.SCALE_UP,
        R.FALLBACK,
        set(),
    ),
    (
        "fallback respects the up cooldown",
        spec(fallback_replicas=8),
        MetricsMissing(3, "down"),
        5,
        10.0,
        None,
        5,
        A.HOLD,
        R.FALLBACK,
        {L.COOLDOWN},
    ),
    (
        "missing data still lifts to min",
        spec(min_replicas=3),
        MetricsMissing(1, "down"),
        1,
        None,
        None,
        3,
        A.SCALE_UP,
        R.BELOW_MIN,
        {L.MISSING_DATA, L.MIN},
    ),
    (
        "paused holds anything",
        spec(paused=True),
        obs(10_000, 999),
        0,
        None,
        None,
        0,
        A.HOLD,
        R.PAUSED,
        set(),
    ),
    (
        "paused at 7 scales up to 7 at once, with no cooldown or step",
        spec(paused=True, paused_replicas=7),
        obs(0, 0),
        2,
        NOW - 1,
        NOW - 1,
        7,
        A.SCALE_UP,
        R.PAUSED,
        set(),
    ),
    (
        "paused at 0 scales down to 0 even with work waiting",
        spec(paused=True, paused_replicas=0),
        obs(10_000, 999),
        5,
        None,
        None,
        0,
        A.SCALE_DOWN,
        R.PAUSED,
        set(),
    ),
    (
        "paused at the current count holds",
        spec(paused=True, paused_replicas=3),
        obs(10_000, 999),
        3,
        None,
        None,
        3,
        A.HOLD,
        R.PAUSED,
        set(),
    ),
]


@pytest.mark.parametrize(
    (
        "spec_",
        "observation",
        "current",
        "up_ago",
        "down_ago",
        "desired",
        "action",
        "reason",
        "limits",
    ),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_decide_table(  # noqa: PLR0917
    spec_: EffectiveSpec,
    observation: Observation | MetricsMissing,
    current: int,
    up_ago: float | None,
    down_ago: float | None,
    desired: int,
    action: Action,
    reason: Reason,
    limits: set[Limit],
) -> None:
    last_up = None if up_ago is None else NOW - up_ago
    last_down = None if down_ago is None else NOW - down_ago
    decision = decide(spec_, observation, current, last_up, last_down, NOW)
    assert (decision.desired, decision.action, decision.reason) == (desired, action, reason)
    assert decision.limited_by == frozenset(limits)
    assert decision.message


@pytest.mark.parametrize(
    ("ratio", "level"),
    [(0.0, 0), (0.99, 0), (1.0, 1), (1.99, 1), (2.0, 2), (3.99, 2), (4.0, 3), (100.0, 3)],
)
def test_severity_levels(ratio: float, level: int) -> None:
    assert severity_level(ratio) == level


@pytest.mark.parametrize(
    ("level", "max_step", "step"),
    [(1, 3, 1), (2, 3, 2), (3, 3, 3), (1, 1, 1), (3, 1, 1), (1, 10, 4), (3, 10, 10)],
)
def test_step_for(level: int, max_step: int, step: int) -> None:
    assert step_for(level, max_step) == step


# ---------------------------------------------------------------- properties


@st.composite
def specs(draw: st.DrawFn) -> EffectiveSpec:
    lo = draw(st.integers(0, 20))
    hi = draw(st.integers(max(lo, 1), 40))
    up_depth = draw(st.integers(2, 1000))
    up_lat = draw(st.floats(1.0, 600.0))
    return EffectiveSpec(
        min_replicas=lo,
        max_replicas=hi,
        up_depth=up_depth,
        up_latency_s=up_lat,
        up_cooldown_s=draw(st.integers(0, 600)),
        max_step=draw(st.integers(1, 10)),
        down_depth=draw(st.integers(1, up_depth - 1)),
        down_latency_s=draw(st.floats(0.1, up_lat * 0.99)),
        down_cooldown_s=draw(st.integers(0, 900)),
        down_step=draw(st.integers(1, 5)),
        fallback_replicas=draw(st.none() | st.integers(0, hi)),
        fallback_threshold=draw(st.integers(1, 5)),
        paused=False,
        allow_disruption=draw(st.booleans()),
        scale_to_zero_after_s=draw(st.integers(0, 600)),
        slo_max_wait_s=draw(st.none() | st.floats(1.0, 3600.0)),
        concurrency_per_pod=draw(st.integers(1, 64)),
    )


observations = st.builds(
    Observation,
    depth=st.integers(0, 100_000),
    oldest_age_s=st.floats(0, 10_000),
    in_flight=st.integers(0, 100),
    busy_workers=st.integers(0, 50),
    arrival_rate=st.none() | st.floats(0, 10_000),
    mean_service_s=st.none() | st.floats(0.001, 3600),
    last_busy_at=st.none() | st.floats(NOW - 5000, NOW),
    reserved_floor=st.integers(0, 3),
) | st.builds(MetricsMissing, consecutive_failures=st.integers(1, 10), error=st.just("x"))
ago = st.none() | st.floats(0, 2000)


def run(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> Decision:
    return decide(
        s, o, cur, None if up is None else NOW - up, None if down is None else NOW - down, NOW
    )


@settings(max_examples=500)
@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_never_outside_bounds(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    d = run(s, o, cur, up, down)
    assert s.min_replicas <= d.desired <= s.max_replicas


@settings(max_examples=500)
@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_never_scales_inside_a_cooldown(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    """Inside the bounds, a cooldown blocks its direction (leaving the bounds is not scaling).

    The wake from zero is the exception: nothing runs, so it waits for no cooldown;
    so is a queue's reserved floor, which is a bound like minReplicas.
    """
    cur = min(max(cur, s.min_replicas), s.max_replicas)
    d = run(s, o, cur, up, down)
    if up is not None and up < s.up_cooldown_s and cur > 0 and d.reason is not Reason.RESERVED:
        assert d.desired <= cur
    last_any = min((a for a in (up, down) if a is not None), default=None)
    if last_any is not None and last_any < s.down_cooldown_s:
        assert d.desired >= cur


@settings(max_examples=500)
@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_never_scales_down_above_an_up_threshold_or_without_data(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    cur = min(max(cur, s.min_replicas), s.max_replicas)
    d = run(s, o, cur, up, down)
    if isinstance(o, MetricsMissing) or o.depth >= s.up_depth or o.oldest_age_s >= s.up_latency_s:
        assert d.desired >= cur


@settings(max_examples=300)
@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_step_never_exceeds_max_step(
    s: EffectiveSpec, o: Observation, cur: int, up: float | None, down: float | None
) -> None:
    """maxStep bounds the threshold rule; the wake from zero and the SLO count are sizes."""
    cur = min(max(cur, s.min_replicas), s.max_replicas)
    d = run(s, o, cur, up, down)
    sizes = {
        Reason.FALLBACK,
        Reason.SCALE_FROM_ZERO,
        Reason.SLO_DEMAND,
        Reason.RESERVED,
        Reason.CAPACITY,
    }
    if d.reason not in sizes:
        assert d.desired - cur <= s.max_step
    capacity = isinstance(o, Observation) and capacity_need(s, o, cur) is not None
    if d.reason is not Reason.FALLBACK and not capacity:
        assert cur - d.desired <= s.down_step
    if capacity and d.desired < cur:
        # with a known capacity the step is the surplus: never below what keeps headroom
        known = capacity_need(s, o, cur)
        assert known is not None
        assert d.desired >= min(known.keep, cur) or d.desired == s.min_replicas


@given(specs(), observations, st.integers(0, 60))
def test_paused_never_changes(s: EffectiveSpec, o: Observation | MetricsMissing, cur: int) -> None:
    d = run(dataclasses.replace(s, paused=True), o, cur, None, None)
    assert (d.desired, d.action) == (cur, Action.HOLD)


@given(specs(), observations, st.integers(0, 60), st.integers(0, 60))
def test_paused_at_n_always_asks_for_n(
    s: EffectiveSpec, o: Observation | MetricsMissing, cur: int, pinned: int
) -> None:
    d = run(dataclasses.replace(s, paused=True, paused_replicas=pinned), o, cur, None, None)
    assert d.desired == pinned
    assert d.reason is Reason.PAUSED


@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_action_matches_desired(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    d = run(s, o, cur, up, down)
    expected = (
        Action.SCALE_UP
        if d.desired > cur
        else Action.SCALE_DOWN
        if d.desired < cur
        else Action.HOLD
    )
    assert d.action is expected


@settings(max_examples=300)
@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_never_to_zero_with_work_in_flight(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    d = run(s, o, cur, up, down)
    if isinstance(o, Observation) and o.in_flight and cur > 0 and not s.allow_disruption:
        assert d.desired >= 1


# ----------------------------------------------------------------- SLO, rates, zero
SLO = spec(
    min_replicas=0,
    slo_max_wait_s=10.0,
    concurrency_per_pod=2,
    scale_to_zero_after_s=30.0,
    pod_startup_s=0.0,
)


def sobs(**kw: object) -> Observation:
    base: dict[str, object] = {"depth": 0, "oldest_age_s": 0.0}
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


SLO_ROWS = [
    # id, spec, obs, current, desired, reason, limits
    (
        # λ=4/s, S=2s, c=2: 4 pods steady; 40 waiting drain in 10s: 40*2/(2*10) = 4 more
        "Little's law plus backlog",
        SLO,
        sobs(depth=40, oldest_age_s=3.0, arrival_rate=4.0, mean_service_s=2.0),
        2,
        8,
        R.SLO_DEMAND,
        set(),
    ),
    (
        "from zero straight to the SLO count",
        SLO,
        sobs(depth=40, oldest_age_s=3.0, arrival_rate=4.0, mean_service_s=2.0),
        0,
        8,
        R.SCALE_FROM_ZERO,
        set(),
    ),
    (
        "from zero by depth without rates: one per scaleUp.queueDepth",
        spec(min_replicas=0),
        sobs(depth=350),
        0,
        4,
        R.SCALE_FROM_ZERO,
        set(),
    ),
    (
        "from zero on a single waiting job",
        spec(min_replicas=0),
        sobs(depth=1),
        0,
        1,
        R.SCALE_FROM_ZERO,
        set(),
    ),
    (
        "from zero for orphaned in-flight jobs (a worker must reap them)",
        spec(min_replicas=0),
        sobs(in_flight=2),
        0,
        1,
        R.SCALE_FROM_ZERO,
        set(),
    ),
    (
        "SLO breached but the estimate says enough: one more",
        SLO,
        sobs(depth=1, oldest_age_s=12.0, arrival_rate=0.1, mean_service_s=1.0),
        3,
        4,
        R.SLO_DEMAND,
        set(),
    ),
    (
        "SLO count at current holds in the down band",
        SLO,
        sobs(depth=0, arrival_rate=4.0, mean_service_s=2.0),
        4,
        4,
        R.WITHIN_BAND,
        set(),
    ),
    (
        "the SLO count with headroom is the scale-down floor: ceil(2 × 1.25)",
        spec(slo_max_wait_s=10.0, down_step=5),
        sobs(depth=0, arrival_rate=2.0, mean_service_s=1.0),
        6,
        3,
        R.QUEUE_DRAINED,
        set(),
    ),
    (
        "no scale-down past half the SLO",
        spec(slo_max_wait_s=8.0),
        sobs(depth=1, oldest_age_s=4.5, arrival_rate=0.0, mean_service_s=1.0),
        3,
        3,
        R.WITHIN_BAND,
        {L.SLO},
    ),
    (
        "scale to zero waits for the idle delay",
        SLO,
        sobs(last_busy_at=NOW - 10),
        1,
        1,
        R.QUEUE_DRAINED,
        {L.SCALE_TO_ZERO_DELAY},
    ),
    (
        "scale to zero after the idle delay",
        SLO,
        sobs(last_busy_at=NOW - 31),
        1,
        0,
        R.QUEUE_DRAINED,
        set(),
    ),
    (
        "never to zero with jobs waiting below the down threshold",
        spec(min_replicas=0),
        sobs(depth=3),
        1,
        1,
        R.QUEUE_DRAINED,
        {L.BUSY_WORKERS},
    ),
]


def test_slo_need_message_shows_the_sum() -> None:
    need = slo_need(SLO, sobs(depth=40, arrival_rate=4.0, mean_service_s=2.0))
    assert need is not None
    assert need.count == 8
    assert "4.00/s" in need.message
    assert slo_need(SPEC, sobs(depth=40, arrival_rate=4.0, mean_service_s=2.0)) is None
    assert slo_need(SLO, sobs(depth=40)) is None, "no service time yet: thresholds only"


def test_rates_between() -> None:
    c1 = Counters(enqueued=100, finished=50, busy_ms=100_000)
    c2 = Counters(enqueued=120, finished=60, busy_ms=130_000)
    first = rates_between(None, NOW, c1)
    assert first.arrival_rate is None, "a restart waits one tick for the arrival rate"
    assert first.mean_service_s == 2.0, "the lifetime mean at once"
    r = rates_between((NOW - 5, c1), NOW, c2)
    assert r.arrival_rate == 4.0
    assert r.mean_service_s == 3.0, "the last interval's mean when it has finishes"
    reset = rates_between((NOW - 5, c2), NOW, c1)
    assert reset.arrival_rate is None, "a counter reset gives no rate, not a negative one"
    assert rates_between((NOW - 5, c1), NOW, None) == Rates(None, None)


@settings(max_examples=500)
@given(specs(), observations, st.integers(0, 60), ago, ago)
def test_never_below_busy_workers_without_allow_disruption(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    cur = min(max(cur, s.min_replicas), s.max_replicas)
    d = run(s, o, cur, up, down)
    if isinstance(o, Observation) and not s.allow_disruption and d.desired < cur:
        assert d.desired >= min(in_flight_floor(s, o), s.max_replicas)


@settings(max_examples=500)
@given(specs(), observations, st.integers(1, 60), ago, ago)
def test_never_to_zero_with_anything_waiting_running_or_lately_busy(
    s: EffectiveSpec,
    o: Observation | MetricsMissing,
    cur: int,
    up: float | None,
    down: float | None,
) -> None:
    """Strict, allowDisruption or not: zero only after scaleToZeroAfterSeconds of nothing."""
    d = run(s, o, cur, up, down)
    if not isinstance(o, Observation) or d.desired > 0:
        return
    assert o.depth == 0
    assert o.in_flight == 0
    assert o.busy_workers == 0
    assert o.last_busy_at is None or NOW - o.last_busy_at >= s.scale_to_zero_after_s


@settings(max_examples=500)
@given(specs(), observations, ago, ago)
def test_from_zero_straight_to_the_needed_count(
    s: EffectiveSpec, o: Observation | MetricsMissing, up: float | None, down: float | None
) -> None:
    if not isinstance(o, Observation) or not (o.depth or o.in_flight) or s.min_replicas > 0:
        return
    d = run(s, o, 0, up, down)
    need = slo_need(s, o)
    capacity = capacity_need(s, o, 0)
    wanted = max(
        1,
        -(-o.depth // s.up_depth),
        need.count if need else 0,
        capacity.up if capacity else 0,
        o.reserved_floor,
    )
    assert d.desired == min(wanted, s.max_replicas)


@settings(max_examples=500)
@given(specs(), observations, st.integers(1, 60), ago)
def test_slo_reacts_to_age(
    s: EffectiveSpec, o: Observation | MetricsMissing, cur: int, down: float | None
) -> None:
    """An oldest job past maxWaitSeconds always adds workers (outside a scale-up cooldown)."""
    if not isinstance(o, Observation) or s.slo_max_wait_s is None:
        return
    cur = min(max(cur, s.min_replicas, 1), s.max_replicas)
    if cur >= s.max_replicas or (down is not None and down < DIRECTION_DWELL_S):
        return  # at the top, or right after a scale-down (the dwell holds a reversal)
    aged = dataclasses.replace(o, oldest_age_s=s.slo_max_wait_s + 0.1)
    assert run(s, aged, cur, None, down).desired > cur


# ----------------------------------------------------------------- CPU and memory
MIB = 2**20


def loads(*rss_mib: float, cpu: float | None = None) -> tuple[WorkerLoad, ...]:
    return tuple(
        WorkerLoad(f"p{i}", "idle", 0, rss_bytes=int(r * MIB), cpu_cores=cpu)
        for i, r in enumerate(rss_mib)
    )


def robs(*rss_mib: float, cpu: float | None = None, depth: int = 0) -> Observation:
    return Observation(
        depth=depth,
        oldest_age_s=0.0,
        worker_loads=loads(*rss_mib, cpu=cpu),
        cpu_request_cores=0.5,
        memory_request_bytes=100 * MIB,
    )


MEM = spec(up_memory_pct=80.0, down_memory_pct=50.0, max_step=5)
CPU = spec(up_cpu_pct=70.0, down_cpu_pct=30.0, max_step=5)

RESOURCE_ROWS = [
    # id, spec, obs, current, desired, reason, limits
    # 3 pods at 120% of an 80% target: ceil(3 × 120 / 80) = 5
    ("memory past its target", MEM, robs(120, 120, 120), 3, 5, R.MEMORY_HIGH, set()),
    ("memory, at most maxStep", spec(up_memory_pct=10.0), robs(99, 99), 2, 5, R.MEMORY_HIGH, set()),
    ("memory between the thresholds holds", MEM, robs(60, 70), 2, 2, R.WITHIN_BAND, {L.RESOURCES}),
    ("memory low lets the queue scale down", MEM, robs(20, 30), 2, 1, R.QUEUE_DRAINED, set()),
    # 0.42 cores of a 0.5 request is 84% ≥ 70%: ceil(2 × 84 / 70) = 3
    ("CPU past its target", CPU, robs(10, 10, cpu=0.42), 2, 3, R.CPU_HIGH, set()),
    ("no CPU in heartbeats: off", CPU, robs(10, 10), 2, 1, R.QUEUE_DRAINED, set()),
    ("CPU blocks a scale-down", CPU, robs(10, 10, cpu=0.2), 2, 2, R.WITHIN_BAND, {L.RESOURCES}),
    ("depth beats memory", MEM, robs(90, 90, depth=400), 2, 7, R.QUEUE_DEPTH, {L.STEP}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("s", "o", "cur", "desired", "reason", "limits"),
    [row[1:] for row in (*SLO_ROWS, *RESOURCE_ROWS)],
    ids=[row[0] for row in (*SLO_ROWS, *RESOURCE_ROWS)],
)
def test_slo_zero_and_resource_tables(  # noqa: PLR0917
    s: EffectiveSpec,
    o: Observation,
    cur: int,
    desired: int,
    reason: Reason,
    limits: set[Limit],
) -> None:
    d = decide(s, o, cur, None, None, NOW)
    assert (d.desired, d.reason, set(d.limited_by)) == (desired, reason, limits), d.message


def test_resource_use_averages_only_workers_that_report() -> None:
    o = dataclasses.replace(
        robs(50, 150),
        worker_loads=(*loads(50, 150), WorkerLoad("p9", "idle", 0)),  # rss 0: not reported
    )
    assert resource_use(o) == (None, 100.0)
    no_request = dataclasses.replace(o, memory_request_bytes=None)
    assert resource_use(no_request) == (None, None)
    assert "no memory data" in decide(MEM, no_request, 2, None, None, NOW).message


resource_observations = st.builds(
    Observation,
    depth=st.integers(0, 1000),
    oldest_age_s=st.floats(0, 100),
    in_flight=st.integers(0, 20),
    busy_workers=st.integers(0, 20),
    worker_loads=st.lists(
        st.builds(
            WorkerLoad,
            pod_name=st.text("abc", min_size=1, max_size=3),
            state=st.just("idle"),
            active_jobs=st.integers(0, 3),
            rss_bytes=st.integers(0, 10**10),
            cpu_cores=st.none() | st.floats(0, 64),
        ),
        max_size=8,
    ).map(tuple),
    cpu_request_cores=st.none() | st.floats(0.01, 8),
    memory_request_bytes=st.none() | st.floats(MIB, 2**34),
)


@settings(max_examples=500)
@given(
    specs(),
    resource_observations,
    st.integers(0, 60),
    st.none() | st.integers(1, 100),
    st.none() | st.integers(101, 400),
)
def test_resource_triggers_keep_every_invariant(
    s: EffectiveSpec, o: Observation, cur: int, down: int | None, up: int | None
) -> None:
    """Bounds, the slots the running jobs fill, no zero with work left, no down when hot."""
    s = dataclasses.replace(
        s, up_memory_pct=up, down_memory_pct=down, up_cpu_pct=up, down_cpu_pct=down
    )
    d = decide(s, o, cur, None, None, NOW)
    assert s.min_replicas <= d.desired <= s.max_replicas or d.desired == cur
    if d.desired < cur and not s.allow_disruption:
        assert d.desired >= min(in_flight_floor(s, o), s.max_replicas)
    if d.desired == 0 and cur > 0:
        assert o.depth == 0
        assert o.in_flight == 0
        assert o.busy_workers == 0
    cpu, mem = resource_use(o)
    hot = down is not None and any(u is not None and u >= down for u in (cpu, mem))
    if hot and s.min_replicas <= cur <= s.max_replicas:
        assert d.desired >= cur


def test_a_queue_with_work_claims_its_reserved_floor_without_a_cooldown() -> None:
    o = Observation(depth=1, oldest_age_s=0.0, reserved_floor=4)
    d = decide(SPEC, o, 2, NOW - 1, None, NOW)  # inside the scale-up cooldown
    assert (d.desired, d.reason) == (4, Reason.RESERVED)
    capped = decide(spec(max_replicas=3), o, 2, None, None, NOW)
    assert capped.desired == 3
    assert decide(SPEC, Observation(depth=1, oldest_age_s=0.0), 2, None, None, NOW).desired == 1
