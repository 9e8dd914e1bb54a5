"""The simulator's adapter for the operator's own SLO mode.

The simulator must drive the deployed ``decide``; these runs check that the
adapter feeds it the counters the real loop derives its rates from, so the
SLO sizing (not only the thresholds) is what the simulation measures.
"""

from __future__ import annotations

import dataclasses
import random

from jobqueue_operator import policy as operator_policy
from jobqueue_operator.models import EffectiveSpec
from jobqueue_simulator.engine import Distribution, ServiceModel, SimConfig, simulate
from jobqueue_simulator.policies import OperatorPolicy, OperatorSloPolicy

SPEC = EffectiveSpec(
    min_replicas=0,
    max_replicas=30,
    up_depth=100,
    up_latency_s=30.0,
    up_cooldown_s=10.0,
    max_step=3,
    down_depth=10,
    down_latency_s=5.0,
    down_cooldown_s=15.0,
    down_step=2,
    fallback_replicas=None,
    fallback_threshold=3,
    paused=False,
    scale_to_zero_after_s=30.0,
)


def config(horizon_s: float) -> SimConfig:
    return SimConfig(
        service=ServiceModel(Distribution.CONSTANT, 2.0),
        concurrency=2,
        startup_delay_s=5.0,
        initial_replicas=0,
        horizon_s=horizon_s,
    )


def steady(rate: float, seconds: float) -> list[float]:
    return [i / rate for i in range(int(rate * seconds))]


def test_the_slo_mode_sizes_by_littles_law() -> None:
    """10 jobs/s of 2 s on 2 slots a pod: Little's law says 10 pods; thresholds stay lower."""
    arrivals = steady(10.0, 300.0)
    slo = OperatorSloPolicy(SPEC, 5.0, max_wait_s=10.0, concurrency=2)
    result = simulate(arrivals, slo, config(300.0), random.Random(0))
    reasons = {d.reason for d in slo.decisions}
    assert operator_policy.Reason.SLO_DEMAND in reasons or (
        operator_policy.Reason.SCALE_FROM_ZERO in reasons
    )
    late = [s.replicas for s in result.samples if s.t > 250]
    assert late
    assert min(late) >= 10, late
    # scale-down keeps a quarter of headroom over the arrivals: ceil(10 × 1.25) = 13
    assert max(late) <= 13, late
    threshold = simulate(arrivals, OperatorPolicy(SPEC, 5.0), config(300.0), random.Random(0))
    # the thresholds size by capacity too now, so the SLO mode is no worse, not always better
    assert max(w for w in result.waits) <= max(w for w in threshold.waits)


def test_the_adapter_keeps_a_spec_that_already_has_an_slo() -> None:
    own = dataclasses.replace(SPEC, slo_max_wait_s=7.0, concurrency_per_pod=3)
    assert OperatorSloPolicy(own, 5.0, max_wait_s=99.0, concurrency=1).spec is own


def test_scale_to_zero_waits_for_the_idle_delay_in_the_simulation_too() -> None:
    policy = OperatorPolicy(SPEC, 5.0)
    result = simulate([0.0], policy, config(120.0), random.Random(0))
    zero = [e.t for e in result.scale_events if e.to_replicas == 0]
    assert zero, result.scale_events
    # the job ran 2 s after its pod started (5 s); idle from ~10 s, so zero from ~40 s
    assert zero[0] >= 35.0
