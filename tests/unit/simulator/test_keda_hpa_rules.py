"""The HPA that KEDA makes when a ScaledObject sets no behaviour, and when its timers
start, as table tests.

KEDA copies ``advanced.horizontalPodAutoscalerConfig.behavior`` to its HPA only
when it is set, and the API server fills in the behaviour defaults only for an
HPA that has one. Without one the HPA controller keeps its older fixed rules:

* up: at most max(2 × current, 4) pods per sync, not max(current + 4, 2 × current);
* the count goes to the highest recommendation of the down window (300 s), raw
  included, even above the current count, so a capped scale-up carries on to
  what an earlier sync asked for;
* down: straight to that highest recommendation, with no rate limit.

Measured on the devkit's control plane with real KEDA v2.21.0: its HPA has no
``spec.behavior``, and the replicas went 1 → 4 → 8 → 10 and 2 → 4 → 8 → 10
one sync apart (`make compare-keda`, BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from jobqueue_simulator.engine import ClusterView
from jobqueue_simulator.keda_model import KedaModel, first_tick
from jobqueue_simulator.policies import KedaHpaModel, KedaSettings
from jobqueue_simulator.scaledobject import DEFAULT_DOWN, DEFAULT_UP, Rules, parse_scaled_object


def view(t: float, replicas: int, waiting: int = 0, in_flight: int = 0) -> ClusterView:
    return ClusterView(
        now=t,
        replicas=replicas,
        ready_pods=replicas,
        busy_pods=0,
        depth=waiting,
        oldest_age_s=0.0,
        in_flight=in_flight,
        arrived_total=0,
        completed_total=0,
        completed_service_s=0.0,
    )


def backlog_object(behavior: dict[str, Any] | None, max_replicas: int = 100) -> dict[str, Any]:
    """One metrics-api trigger on waiting jobs, target 8 a pod; ``behavior`` as given."""
    spec: dict[str, Any] = {
        "maxReplicaCount": max_replicas,
        "triggers": [
            {
                "type": "metrics-api",
                "name": "waiting",
                "metadata": {"valueLocation": "waiting", "targetValue": "8"},
            }
        ],
    }
    if behavior is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    return {"kind": "ScaledObject", "spec": spec}


def run(model: KedaModel, start: int, rows: list[tuple[float, int]]) -> list[int]:
    """HPA syncs at the given times with the given waiting jobs; replicas after each."""
    replicas, out = start, []
    for t, waiting in rows:
        desired = model.on_tick("hpa", view(t, replicas, waiting))
        replicas = replicas if desired is None else desired
        out.append(replicas)
    return out


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        (None, False),
        ({}, True),  # an empty behaviour is still one: the API server defaults both ways
        ({"scaleUp": {"stabilizationWindowSeconds": 0}}, True),
    ],
)
def test_whether_the_scaledobject_sets_a_behavior(
    behavior: dict[str, Any] | None, expected: bool
) -> None:
    config = parse_scaled_object(backlog_object(behavior))
    assert config.hpa_behavior is expected
    assert config.down == DEFAULT_DOWN
    if behavior is None or not behavior:
        assert config.up == DEFAULT_UP


@pytest.mark.parametrize(
    ("current", "waiting", "without", "with_defaults"),
    [
        # ceil(800 / 8) = 100 asked every time; the cap is what differs
        (1, 800, 4, 5),  # max(2, 4) against max(1 + 4, 2)
        (2, 800, 4, 6),  # max(4, 4) against max(6, 4)
        (3, 800, 6, 7),
        (4, 800, 8, 8),
        (5, 800, 10, 10),
        (8, 800, 16, 16),
        (60, 800, 100, 100),  # the cap is above maxReplicaCount
        # asked for less than the cap: both give what was asked
        (2, 24, 3, 3),
        (1, 32, 4, 4),
        (1, 40, 4, 5),
    ],
)
def test_one_sync_up_from_current(
    current: int, waiting: int, without: int, with_defaults: int
) -> None:
    for behavior, expected in ((None, without), ({}, with_defaults)):
        model = KedaModel(parse_scaled_object(backlog_object(behavior)))
        assert run(model, current, [(15.0, waiting)]) == [expected], behavior


@pytest.mark.parametrize(
    ("start", "rows", "expected"),
    [
        # 1 → 4 → 8 → 10 one sync apart (maxReplicaCount 10), as measured
        (1, [(15.0, 200), (30.0, 200), (45.0, 200)], [4, 8, 10]),
        # 2 → 4 → 8 → 10, as measured on the step trace
        (2, [(15.0, 200), (30.0, 200), (45.0, 200)], [4, 8, 10]),
        # a capped scale-up goes on to the 10 asked at 15 s although 40 now asks 5
        (2, [(15.0, 200), (30.0, 40), (45.0, 40)], [4, 8, 10]),
        # asked 3 while at 2: the window's 3 is above 2, so nothing holds it down
        (2, [(15.0, 24), (30.0, 8)], [3, 3]),
    ],
)
def test_capped_scale_up_carries_on_to_the_windows_highest(
    start: int, rows: list[tuple[float, int]], expected: list[int]
) -> None:
    model = KedaModel(parse_scaled_object(backlog_object(None, max_replicas=10)))
    assert run(model, start, rows) == expected


@pytest.mark.parametrize(
    ("behavior", "expected_from_90"),
    [
        (None, [2, 2]),  # no rate limit: straight to the highest recommendation left
        # behaviour with at most one pod less per 15 s: 9 at 90 s, 8 at 105 s
        (
            {
                "scaleDown": {
                    "stabilizationWindowSeconds": 60,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
                }
            },
            [9, 8],
        ),
    ],
)
def test_scale_down_after_the_window(
    behavior: dict[str, Any] | None, expected_from_90: list[int]
) -> None:
    """10 pods asked until 30 s, then 2: a 60 s window holds the 10 asked at 30 s
    until the window (30, 90] leaves it out; then the fixed rules drop at once, a
    Pods policy one at a time."""
    config = parse_scaled_object(backlog_object(behavior))
    if behavior is None:
        # the controller's window is a flag; the model takes it from ``down``
        config = dataclasses.replace(config, down=Rules(60.0, ()))
    model = KedaModel(config)
    rows = [(15.0, 80), (30.0, 80), (45.0, 16), (60.0, 16), (75.0, 16), (90.0, 16), (105.0, 16)]
    counts = run(model, 10, rows)
    assert counts[:5] == [10] * 5
    assert counts[5:] == expected_from_90


@pytest.mark.parametrize(
    ("window_s", "empty_from", "first_drop_at"),
    [(300.0, 30.0, 315.0), (60.0, 30.0, 75.0), (0.0, 30.0, 30.0)],
)
def test_default_keda_waits_out_the_controllers_window(
    window_s: float, empty_from: float, first_drop_at: float
) -> None:
    """KEDA default (no behaviour): 10 pods, the list empties; the first drop comes
    when the last sync that asked for 10 (at 15 s) leaves the window, and it goes to 1
    at once."""
    model = KedaHpaModel(1, 10, KedaSettings(down_stabilization_s=window_s))
    replicas, drops = 10, []
    t = 15.0
    while t <= 400.0:
        waiting = 50 if t < empty_from else 0
        desired = model.on_tick("hpa", view(t, replicas, waiting))
        if desired is not None:
            drops.append((t, desired))
            replicas = desired
        t += 15.0
    assert drops[0] == (first_drop_at, 1)


def test_default_keda_with_behavior_set_uses_its_policies() -> None:
    """``KedaSettings(hpa_behavior=True)`` brings the +4 / ×2 per 15 s policies back."""
    with_policies = KedaHpaModel(0, 100, KedaSettings(hpa_behavior=True))
    fixed = KedaHpaModel(0, 100)
    assert with_policies.on_tick("hpa", view(15.0, 1, waiting=500)) == 5
    assert fixed.on_tick("hpa", view(15.0, 1, waiting=500)) == 4


@pytest.mark.parametrize(
    ("period_s", "started_before_s", "first_s"),
    [
        (15.0, 0.0, 15.0),
        (15.0, 2.0, 13.0),
        (15.0, 14.5, 0.5),
        (15.0, 15.0, 15.0),  # a whole period before: in phase with t = 0
        (15.0, 32.0, 13.0),
        (30.0, 2.0, 28.0),
    ],
)
def test_first_tick_after_the_scaledobject_was_created(
    period_s: float, started_before_s: float, first_s: float
) -> None:
    assert first_tick(period_s, started_before_s) == pytest.approx(first_s)


@pytest.mark.parametrize(
    ("poll_s", "started_before_s", "expected"),
    [(15.0, 0.0, (15.0, 15.0)), (15.0, 2.0, (13.0, 13.0)), (30.0, 2.0, (13.0, 28.0))],
)
def test_poll_and_sync_start_together_when_the_scaledobject_is_created(
    poll_s: float, started_before_s: float, expected: tuple[float, float]
) -> None:
    """KEDA's poll and the HPA's sync start at the ScaledObject's creation, so both
    are offset from the trace by the same amount (the HPA's period is 15 s)."""
    config = dataclasses.replace(
        parse_scaled_object(backlog_object(None)),
        polling_interval_s=poll_s,
        started_before_s=started_before_s,
    )
    timers = {t.name: t for t in KedaModel(config).timers()}
    assert (timers["hpa"].first_at_s, timers["keda"].first_at_s) == pytest.approx(expected)
    assert timers["hpa"].order < timers["keda"].order  # the sync first at one instant
