"""The real-KEDA comparison's pure parts: traces, integration, percentiles, flips, agreement."""

from __future__ import annotations

import pytest
import yaml

from bench import compare_keda as ck
from bench.scaling import KEDA_TUNED
from jobqueue_protocol import keys
from jobqueue_worker.envelope import Priority


def test_traces_are_reproducible_and_shaped_as_described() -> None:
    for trace in ck.TRACES:
        rows = trace.rows()
        assert rows == trace.rows(), "the same seed gives the same counts"
        assert [t for t, _ in rows] == list(range(trace.duration_s))
        jobs = sum(n for _, n in rows)
        services = trace.services(jobs)
        assert services == trace.services(jobs)
        assert all(s > 0 for s in services)
    step = next(t for t in ck.TRACES if t.name == "step")
    before = [n for t, n in step.rows() if t < step.surge_at_s]
    after = [n for t, n in step.rows() if t >= step.surge_at_s]
    assert sum(after) / len(after) > 5 * sum(before) / len(before)
    back = next(t for t in ck.TRACES if t.idle is not None)
    assert back.idle is not None
    lo, hi = back.idle
    assert all(n == 0 for t, n in back.rows() if lo <= t < hi)
    assert step.needed_replicas == 4  # 20 jobs/s × 2 s over 10 slots


def test_integrate_a_step_function_up_to_the_end() -> None:
    series = [(0.0, 0), (10.0, 2), (15.0, 4), (20.0, 1)]
    assert ck.integrate(series, 30.0) == 0 * 10 + 2 * 5 + 4 * 5 + 1 * 10
    assert ck.integrate(series, 12.0) == 2 * 2
    assert ck.integrate([], 10.0) == 0.0
    assert ck.value_at(series, 14.9) == 2
    assert ck.value_at(series, 15.0) == 4
    assert ck.value_at(series, -1.0) == 0


def test_percentiles_and_redeliveries_come_from_the_records() -> None:
    records: list[tuple[float | None, float | None, int]] = [
        (100.0, 100.0 + w, 1) for w in range(1, 101)
    ]
    records += [(100.0, None, 0), (100.0, 250.0, 2)]
    waits = ck.wait_figures(records)
    assert waits.started == 101
    assert waits.unstarted == 1
    assert waits.redelivered == 1
    assert waits.p50_s == 51.0  # nearest rank over 101 waits (1..100 and 150)
    assert waits.p95_s == 96.0
    assert waits.max_s == 150.0
    assert ck.wait_figures([]).p95_s == 0.0


def test_direction_changes_count_turns_not_steps() -> None:
    assert ck.direction_changes([0, 1, 3, 3, 5]) == 0
    assert ck.direction_changes([0, 4, 2, 2, 1, 0]) == 1
    assert ck.direction_changes([0, 4, 2, 5, 1]) == 3
    assert ck.direction_changes([]) == 0
    assert ck.changes([(0.0, 0), (1.0, 0), (2.0, 3), (3.0, 1)]) == [(2.0, 0, 3), (3.0, 3, 1)]


def test_first_time_is_measured_from_the_surge() -> None:
    series = [(0.0, 0), (25.0, 1), (40.0, 3), (55.0, 5)]
    assert ck.first_time(series, 30.0, lambda v: v > 1) == 10.0
    assert ck.first_time(series, 30.0, lambda v: v >= 5) == 25.0
    assert ck.first_time(series, 30.0, lambda v: v > 9) is None


def test_startup_lags_follow_each_rise_until_the_pods_are_ready() -> None:
    wanted = [(0.0, 0), (10.0, 2), (20.0, 5), (30.0, 1), (40.0, 6)]
    ready = [(0.0, 0), (13.0, 2), (24.0, 5), (31.0, 1)]
    # 0→2 at 10 s ready at 13 s; 2→5 at 20 s ready at 24 s; 1→6 at 40 s never ready
    assert ck.startup_lags(wanted, ready) == [3.0, 4.0]
    withdrawn = [(0.0, 0), (10.0, 3), (12.0, 0)]
    assert ck.startup_lags(withdrawn, [(0.0, 0), (15.0, 3)]) == []


def test_agreement_allows_one_replica_and_one_period() -> None:
    measured = [(0.0, 0), (20.0, 3), (50.0, 5)]
    late = [(0.0, 0), (32.0, 3), (62.0, 4)]  # 12 s later, one replica short
    a = ck.agreement(measured, late, 100.0, window_s=15, tolerance=1)
    assert a.agrees
    assert a.max_gap <= 1
    far = [(0.0, 0), (60.0, 8)]
    b = ck.agreement(measured, far, 100.0, window_s=15, tolerance=1)
    assert not b.agrees
    assert b.max_gap == 3  # 3 measured at 35 s against 0 all around; 8 against 5 later
    assert 0 < b.share_within < 1


def test_the_real_scaled_object_is_the_shipped_one_on_our_scaler() -> None:
    shipped = yaml.safe_load(KEDA_TUNED.read_text())
    so = ck.real_scaled_object(
        shipped,
        namespace="ns",
        deployment="bench-worker",
        scaler_address="127.0.0.1:9",
        queue="q",
        max_replicas=10,
    )
    spec = so["spec"]
    assert spec["pollingInterval"] == shipped["spec"]["pollingInterval"]
    assert spec["cooldownPeriod"] == shipped["spec"]["cooldownPeriod"]
    assert spec["maxReplicaCount"] == 10
    assert "advanced" not in spec, "no scalingModifiers and no HPA behaviour: the defaults"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "external"
    assert trigger["metadata"]["targetBacklogPerReplica"] == "8"
    assert shipped["spec"]["advanced"]["scalingModifiers"], "the shipped file is untouched"
    broken = yaml.safe_load(KEDA_TUNED.read_text())
    broken["spec"]["advanced"]["scalingModifiers"]["formula"] = "waiting"
    with pytest.raises(ValueError, match="not the backlog"):
        ck.real_scaled_object(
            broken,
            namespace="ns",
            deployment="d",
            scaler_address="a",
            queue="q",
            max_replicas=1,
        )


def test_the_model_runs_each_trace_and_the_section_says_what_did_not_run() -> None:
    shipped = yaml.safe_load(KEDA_TUNED.read_text())
    config = ck.model_config(shipped, ck.MAX_REPLICAS, ck.HPA_SYNC_S)
    assert config.max_replicas == ck.MAX_REPLICAS
    results = [ck.TraceResult(t, model=ck.model_timeline(t, config)) for t in ck.TRACES]
    assert all(r.model[0] == (0.0, 0) for r in results)
    outcome = ck.Outcome(results, "v2.21.0", setup_error="real KEDA v2.21.0 is not built here")
    text = ck.render(outcome)
    assert "**Not measured: real KEDA v2.21.0 is not built here.**" in text
    assert "| step | not measured |" in text
    measured = ck.Run("KEDA", end_s=60.0)
    measured.samples = [ck.Sample(float(t), min(t // 10, 4), 0, 0, 0, 0) for t in range(61)]
    results[0].keda, results[0].ours = measured, measured
    assert "| step | **ours** |" in ck.render(ck.Outcome(results, "v2.21.0"))


def test_the_default_scaledobject_is_kedas_redis_trigger_on_the_normal_ready_set() -> None:
    so = ck.variant_scaled_object(
        "default",
        namespace="ns",
        deployment="bench-worker",
        scaler_address="unused:1",
        redis_address="127.0.0.1:6379",
        queue="q",
        max_replicas=10,
    )
    spec = so["spec"]
    assert spec["maxReplicaCount"] == 10
    assert "pollingInterval" not in spec  # every default
    assert "advanced" not in spec
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == keys.ready_key("q", int(Priority.NORMAL))
    model = ck.variant_model("default", 10, 15.0, started_before_s=2.0)
    assert model.config.polling_interval_s == 30.0
    assert not model.config.hpa_behavior
    assert {t.name: t.first_at_s for t in model.timers()} == {"hpa": 13.0, "keda": 28.0}


def test_the_tuned_scaledobject_sets_no_hpa_behavior_either() -> None:
    model = ck.variant_model("tuned", 10, 15.0)
    assert model.config.polling_interval_s == 15.0
    assert not model.config.hpa_behavior
