"""The adapters: the operator's own decide, the KEDA+HPA model (its documented defaults),
the SLO reference."""

from __future__ import annotations

import ast
import dataclasses
import random
from pathlib import Path

import pytest

import jobqueue_operator.policy as operator_policy
from jobqueue_operator.models import EffectiveSpec
from jobqueue_simulator import policies
from jobqueue_simulator.engine import (
    ClusterView,
    Distribution,
    ServiceModel,
    SimConfig,
    simulate,
)
from jobqueue_simulator.policies import (
    KedaHpaModel,
    OperatorPolicy,
)


def config(
    *, initial_replicas: int, startup_delay_s: float = 0.0, horizon_s: float, service_s: float = 1.0
) -> SimConfig:
    return SimConfig(
        service=ServiceModel(Distribution.CONSTANT, service_s),
        concurrency=1,
        startup_delay_s=startup_delay_s,
        initial_replicas=initial_replicas,
        horizon_s=horizon_s,
    )


SIMULATOR = Path(policies.__file__).resolve().parent

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


def view(**changes: float) -> ClusterView:
    base = ClusterView(
        now=0.0,
        replicas=1,
        ready_pods=1,
        busy_pods=0,
        depth=0,
        oldest_age_s=0.0,
        in_flight=0,
        arrived_total=0,
        completed_total=0,
        completed_service_s=0.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the operator's policy


def test_the_simulator_calls_the_operators_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch the operator module: the simulator must route every tick through it."""
    calls: list[tuple[EffectiveSpec, operator_policy.Observation, int]] = []
    real = operator_policy.decide

    def spy(  # noqa: PLR0917 - decide's own signature
        spec: EffectiveSpec,
        observation: operator_policy.Observation | operator_policy.MetricsMissing,
        current: int,
        last_up: float | None,
        last_down: float | None,
        now: float,
    ) -> operator_policy.Decision:
        assert isinstance(observation, operator_policy.Observation)
        calls.append((spec, observation, current))
        return real(spec, observation, current, last_up, last_down, now)

    monkeypatch.setattr(operator_policy, "decide", spy)
    policy = OperatorPolicy(SPEC, interval_s=5.0)
    simulate([0.0] * 300, policy, config(initial_replicas=1, horizon_s=60), random.Random(0))
    assert len(calls) == 12  # t = 5, 10, ..., 60
    assert all(spec is SPEC for spec, _, _ in calls)
    assert calls[0][1].depth == 294  # 1 s jobs on one pod: 5 done by t=5, 1 runs
    assert calls[0][1].busy_workers == 1


def test_a_patched_decide_drives_the_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    def always_seven(*_: object) -> operator_policy.Decision:
        return operator_policy.Decision(
            7, operator_policy.Action.SCALE_UP, operator_policy.Reason.QUEUE_DEPTH, frozenset(), ""
        )

    monkeypatch.setattr(operator_policy, "decide", always_seven)
    cfg = config(initial_replicas=1, horizon_s=20)
    result = simulate([], OperatorPolicy(SPEC, 5.0), cfg, random.Random(0))
    assert [(e.t, e.to_replicas) for e in result.scale_events] == [(5.0, 7)]


def test_the_adapter_holds_the_operator_module_not_a_copy() -> None:
    assert policies.__dict__["operator_policy"] is operator_policy
    for path in SIMULATOR.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert "decide" not in names, f"{path.name} defines its own decide"
        assert not names & {"severity_level", "step_for", "_scale_up", "_scale_down"}, path.name


def test_the_adapter_keeps_cooldown_state_like_the_reconcile_loop() -> None:
    policy = OperatorPolicy(SPEC, 5.0)
    # depth 400 = 4x the threshold: severity 3, +3 workers; then the 60 s cooldown holds.
    assert policy.on_tick("operator", view(now=5.0, depth=400)) == 4
    assert policy.last_up == 5.0
    assert policy.on_tick("operator", view(now=10.0, depth=400, replicas=4)) is None
    assert policy.on_tick("operator", view(now=65.0, depth=400, replicas=4)) == 7
    # Drained: scale-down waits 300 s after the last scale in either direction.
    assert policy.on_tick("operator", view(now=300.0, replicas=7)) is None
    assert policy.on_tick("operator", view(now=365.0, replicas=7)) == 6
    assert policy.last_down == 365.0


# ---------------------------------------------------------------- KEDA + HPA model


def keda_events(
    arrivals: list[float], *, min_r: int, max_r: int, initial: int, horizon: float
) -> list[tuple[float, int]]:
    # New pods never become ready and the initial ones hold one endless job each, so
    # the backlog stays as it landed, less one job per initial pod.
    cfg = config(
        initial_replicas=initial,
        startup_delay_s=10_000,
        horizon_s=horizon,
        service_s=1e6,
    )
    result = simulate(arrivals, KedaHpaModel(min_r, max_r), cfg, random.Random(0))
    return [(e.t, e.to_replicas) for e in result.scale_events]


def test_keda_case_a_500_jobs_from_zero() -> None:
    """1 replica at the first poll (30 s), then the HPA without behaviour: at most
    max(2 × current, 4) a sync, so 4, 8, 16, … up to 100 at 120 s (with the behaviour
    defaults it would be max(+4, ×2): 5, 10, 20, …; KEDA's defaults set none)."""
    events = keda_events([0.0] * 500, min_r=0, max_r=100, initial=0, horizon=300)
    assert events == [
        (30.0, 1),
        (45.0, 4),
        (60.0, 8),
        (75.0, 16),
        (90.0, 32),
        (105.0, 64),
        (120.0, 100),
    ]


def test_keda_case_b_growth_from_ten_is_capped_at_double_per_sync() -> None:
    """10 → 100 takes 20, 40, 80, 100 at one sync each (×2 a sync from 10 up)."""
    events = keda_events([0.0] * 510, min_r=1, max_r=100, initial=10, horizon=100)
    assert events == [(15.0, 20), (30.0, 40), (45.0, 80), (60.0, 100)]


def test_keda_case_b_tolerance_hides_a_small_backlog() -> None:
    """The HPA's 10 % tolerance: at 10 replicas × 5, a length of 46–55 changes nothing."""
    for waiting in (45, 46, 50, 55):
        events = keda_events([0.0] * (10 + waiting), min_r=1, max_r=100, initial=10, horizon=400)
        assert events == [], waiting
    assert keda_events([0.0] * (10 + 56), min_r=1, max_r=100, initial=10, horizon=15) == [
        (15.0, 12)
    ]
    # Below the band: a scale-down, so it waits out the 300 s stabilization first.
    events = keda_events([0.0] * (10 + 44), min_r=1, max_r=100, initial=10, horizon=400)
    assert events == [(300.0, 9)]


def test_keda_case_c_drained_backlog_shrinks_after_the_stabilization_window() -> None:
    """The 300 s scale-down stabilization: with 50 replicas and nothing waiting, the first
    reduction is at 300–315 s."""
    events = keda_events([], min_r=1, max_r=100, initial=50, horizon=400)
    assert events == [(300.0, 1)]


def test_keda_case_d_scale_to_zero_after_the_cooldown_period() -> None:
    """KEDA's 300 s cooldown: min 0, the list empties: KEDA writes 0 ≈ 270–330 s later."""
    model = KedaHpaModel(0, 10)
    assert model.on_tick("keda", view(now=30.0, depth=3, replicas=2)) is None
    assert model.on_tick("keda", view(now=60.0, depth=0, replicas=2)) is None
    assert model.on_tick("keda", view(now=300.0, depth=0, replicas=2)) is None
    assert model.on_tick("keda", view(now=330.0, depth=0, replicas=2)) == 0


def test_keda_ignores_in_flight_work() -> None:
    """Its list scaler sees only waiting jobs: busy pods alone do not hold the count up."""
    model = KedaHpaModel(1, 10)
    assert (
        model.on_tick("hpa", view(now=15.0, depth=0, in_flight=20, busy_pods=4, replicas=4)) is None
    )
    assert (
        model.on_tick("hpa", view(now=315.0, depth=0, in_flight=20, busy_pods=4, replicas=4)) == 1
    )
