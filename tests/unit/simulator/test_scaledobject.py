"""The ScaledObject reader and the KEDA + HPA model, on KEDA's documented examples.

Every expected replica count below was computed by hand from the HPA's formula:
``ceil(value / target)`` for AverageValue, ``ceil(replicas × value / target)``
for Value, the 0.1 tolerance, the stabilisation windows (the lowest
recommendation of the up window, the highest of the down window) and the
policies counted from the replicas at the start of each period; or, for a
ScaledObject that sets no HPA behaviour, the controller's fixed rules (the
highest recommendation of 300 s, at most max(2 × current, 4) a sync).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobqueue_simulator.engine import ClusterView
from jobqueue_simulator.formula import FormulaError, parse_formula
from jobqueue_simulator.keda_model import KedaModel
from jobqueue_simulator.scaledobject import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    ScaledObjectError,
    load_scaled_object,
    parse_scaled_object,
)

PACKAGE = Path(__file__).parents[3] / "operator" / "jobqueue_simulator"

# The scalingModifiers example of KEDA's ScaledObject reference, pointed at our
# queues: two metrics-api triggers and the average of the two.
DOC_EXAMPLE = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: example}
spec:
  scaleTargetRef: {name: workers}
  minReplicaCount: 0
  maxReplicaCount: 100
  advanced:
    scalingModifiers:
      formula: "(trig_one + trig_two)/2"
      target: "2"
      activationTarget: "2"
      metricType: AverageValue
  triggers:
    - type: metrics-api
      name: trig_one
      metadata: {url: "http://stats/q", valueLocation: waiting, targetValue: "2"}
    - type: metrics-api
      name: trig_two
      metadata: {url: "http://stats/q", valueLocation: inFlight, targetValue: "2"}
"""


def so(text: str) -> dict[str, Any]:
    loaded = yaml.safe_load(textwrap.dedent(text))
    assert isinstance(loaded, dict)
    return loaded


def view(t: float, replicas: int, waiting: int = 0, in_flight: int = 0, age: float = 0.0) -> Any:
    return ClusterView(
        now=t,
        replicas=replicas,
        ready_pods=replicas,
        busy_pods=0,
        depth=waiting,
        oldest_age_s=age,
        in_flight=in_flight,
        arrived_total=0,
        completed_total=0,
        completed_service_s=0.0,
    )


def timeline(
    model: KedaModel, start: int, rows: list[tuple[float, str, dict[str, Any]]]
) -> list[int]:
    """Drive the model's timers by hand; the replica count after each row."""
    replicas, out = start, []
    for t, timer, metrics in rows:
        desired = model.on_tick(timer, view(t, replicas, **metrics))
        if desired is not None:
            replicas = desired
        out.append(replicas)
    return out


def test_the_documented_example_is_read_field_by_field() -> None:
    config = parse_scaled_object(so(DOC_EXAMPLE))
    assert (config.min_replicas, config.max_replicas) == (0, 100)
    assert (config.polling_interval_s, config.cooldown_period_s) == (30.0, 300.0)
    assert [(t.name, t.quantity, t.target) for t in config.triggers] == [
        ("trig_one", "waiting", 2.0),
        ("trig_two", "in_flight", 2.0),
    ]
    assert config.formula is not None
    assert config.formula({"trig_one": 6.0, "trig_two": 2.0}) == 4.0
    assert (config.formula_target, config.formula_activation) == (2.0, 2.0)
    assert (config.up, config.down) == (DEFAULT_UP, DEFAULT_DOWN)
    assert not config.hpa_behavior  # none set: KEDA's HPA gets none either


def test_formula_example_scales_up_by_the_fixed_rules_without_behavior() -> None:
    """(40 + 0)/2 = 20 against target 2 → 10 pods; no behaviour set, so from 1 the cap
    is max(2 × 1, 4) = 4, then max(8, 4) = 8, then 10."""
    model = KedaModel(parse_scaled_object(so(DOC_EXAMPLE)))
    rows = [
        (15.0, "hpa", {"waiting": 40}),
        (30.0, "hpa", {"waiting": 40}),
        (45.0, "hpa", {"waiting": 40}),
        (60.0, "hpa", {"waiting": 10, "in_flight": 30}),  # (10+30)/2 = 20 at 10: ratio 1
    ]
    assert timeline(model, 1, rows) == [4, 8, 10, 10]


def test_activation_uses_the_formula_and_the_poll() -> None:
    """At 0 only KEDA's poll acts: (3+0)/2 = 1.5 is not above 2; (6+0)/2 = 3 is."""
    model = KedaModel(parse_scaled_object(so(DOC_EXAMPLE)))
    rows = [
        (15.0, "hpa", {"waiting": 6}),  # the HPA is inactive at 0
        (30.0, "keda", {"waiting": 3}),
        (60.0, "keda", {"waiting": 6}),
        (75.0, "hpa", {"waiting": 6}),  # 3 / 2 → 2 pods
    ]
    assert timeline(model, 0, rows) == [0, 0, 1, 2]


def test_scale_down_waits_for_the_window_then_drops_by_the_policy() -> None:
    """Default down: the highest recommendation of 300 s wins, then 100 % per 15 s."""
    model = KedaModel(parse_scaled_object(so(DOC_EXAMPLE)))
    rows = [(15.0, "hpa", {"waiting": 40})]  # 40/2 = 20 = 2 × 10: ratio 1, holds
    rows += [(15.0 + 15 * i, "hpa", {}) for i in range(1, 21)]  # empty from t = 30
    counts = timeline(model, 10, rows)
    # recommendations of 10 at t = 0 (seed) and 15 leave the window at 315 s
    assert counts[:19] == [10] * 19  # t = 15 .. 285
    assert counts[19:] == [10, 1]  # t = 300 still holds (15 is in (0, 300]); 315 → 1


DOWN_STEPS = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: steps}
spec:
  minReplicaCount: 1
  maxReplicaCount: 50
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 0
          selectPolicy: Min
          policies:
            - {type: Pods, value: 4, periodSeconds: 60}
            - {type: Percent, value: 10, periodSeconds: 60}
        scaleUp:
          stabilizationWindowSeconds: 30
          selectPolicy: Max
          policies:
            - {type: Pods, value: 2, periodSeconds: 60}
  triggers:
    - type: redis
      metadata: {listLength: "10", address: "redis:6379", listName: q}
"""


def test_behavior_policies_and_windows_as_written() -> None:
    """Down with Min of (−4, −10 %) per 60 s: from 20, the 10 % gives int(20×0.9) = 18.

    Up: +2 per 60 s, and a 30 s window: the lowest recommendation of the last 30 s.
    A period starts from ``current − added + removed`` within it, as the controller
    counts, so the 2 pods removed at 75 s are given back before the +2.
    """
    config = parse_scaled_object(so(DOWN_STEPS))
    assert config.triggers[0].quantity == "waiting"
    model = KedaModel(config)
    rows = [
        (15.0, "hpa", {}),  # want 1: max(16, 18) under Min → 18
        (30.0, "hpa", {}),  # same period: start 20 → still 18
        (75.0, "hpa", {}),  # period moved on: start 18 → int(16.2) = 16 vs 14 → 16
        (90.0, "hpa", {"waiting": 300}),  # want 30; window [60, 90] holds 1 → min is 1
        (105.0, "hpa", {"waiting": 300}),  # window (75, 105]: 30, 30; start 16 + 2 → 20
        (120.0, "hpa", {"waiting": 300}),  # start 20 − 4 + 2 = 18: limit 20, holds
    ]
    assert timeline(model, 20, rows) == [18, 18, 16, 16, 20, 20]


def test_a_value_metric_on_the_oldest_age() -> None:
    """Value: ceil(4 × 25 / 10) = 10, capped at max(2 × 4, 4) = 8 (no behaviour set).
    Then 10.5/10 is in tolerance (8 asked), but the window still holds the 10 asked
    at 15 s, and an HPA without behaviour goes on to the window's highest: 10."""
    config = parse_scaled_object(
        so(
            """
            kind: ScaledObject
            spec:
              maxReplicaCount: 30
              triggers:
                - type: metrics-api
                  name: age
                  metricType: Value
                  metadata: {valueLocation: oldestAgeSeconds, targetValue: "10"}
            """
        )
    )
    model = KedaModel(config)
    rows = [(15.0, "hpa", {"age": 25.0}), (30.0, "hpa", {"age": 10.5})]
    assert timeline(model, 4, rows) == [8, 10]


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [(44, 10), (46, 10), (55, 10), (56, 12), (200, 20)],
)
def test_tolerance_band_on_the_default_redis_trigger(waiting: int, expected: int) -> None:
    """listLength 5 at 10 pods: 45..55 is inside 0.1; 56 → ceil(11.2) = 12; 44 → 9, held."""
    config = parse_scaled_object(
        so(
            "kind: ScaledObject\nspec:\n  triggers:\n"
            "    - type: redis\n      metadata: {listName: q}\n"
        )
    )
    assert config.triggers[0].target == 5.0
    model = KedaModel(config)
    assert timeline(model, 10, [(15.0, "hpa", {"waiting": waiting})]) == [expected]


def test_the_shipped_tuned_objects_sum_waiting_and_in_flight() -> None:
    for name in ("email-processing", "burst-tuned"):
        config = load_scaled_object(PACKAGE / "specs" / name / "keda-tuned.yaml")
        assert config.formula is not None
        assert config.formula({"waiting": 30.0, "inflight": 10.0}) == 40.0
        assert config.formula_target == 8.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: ScaledObject\nspec: {triggers: []}", "spec.triggers is empty"),
        ("kind: Deployment\n", "no 'kind: ScaledObject'"),
        (
            "kind: ScaledObject\nspec: {triggers: [{type: kafka}]}",
            "spec.triggers[0].type 'kafka'",
        ),
        (
            "kind: ScaledObject\nspec: {triggers: [{type: metrics-api, metadata: "
            "{valueLocation: depth, targetValue: '1'}}]}",
            "valueLocation 'depth'",
        ),
        (
            "kind: ScaledObject\nspec: {minReplicaCount: 5, maxReplicaCount: 2, "
            "triggers: [{type: redis}]}",
            "minReplicaCount 5 is above maxReplicaCount 2",
        ),
        (
            "kind: ScaledObject\nspec: {pollingInterval: soon, triggers: [{type: redis}]}",
            "spec.pollingInterval 'soon' is not a number",
        ),
        (
            "kind: ScaledObject\nspec: {advanced: {scalingModifiers: {formula: 'a + b', "
            "target: '1'}}, triggers: [{type: redis, name: a}]}",
            "'b' is not a trigger name",
        ),
        (
            "kind: ScaledObject\nspec: {advanced: {horizontalPodAutoscalerConfig: {behavior: "
            "{scaleUp: {selectPolicy: Fastest}}}}, triggers: [{type: redis}]}",
            "selectPolicy 'Fastest'",
        ),
    ],
)
def test_bad_objects_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "so.yaml"
    path.write_text(text)
    with pytest.raises(ScaledObjectError, match=None) as caught:
        load_scaled_object(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("formula", "values", "expected"),
    [
        ("a + b * 2", {"a": 1, "b": 3}, 7.0),
        ("(a + b) * 2", {"a": 1, "b": 3}, 8.0),
        ("a / b - 1", {"a": 9, "b": 3}, 2.0),
        ("-a + 10", {"a": 4, "b": 0}, 6.0),
        ("a / b", {"a": 0, "b": 0}, 0.0),
        ("2.5 * a", {"a": 2, "b": 0}, 5.0),
    ],
)
def test_formula_arithmetic(formula: str, values: dict[str, float], expected: float) -> None:
    assert parse_formula(formula, {"a", "b"})(values) == expected


@pytest.mark.parametrize(
    "formula", ["", "a +", "a ** 2", "__import__('os')", "a.b", "(a", "a b", "max(a, b)", "c"]
)
def test_formula_refuses_anything_else(formula: str) -> None:
    with pytest.raises(FormulaError):
        parse_formula(formula, {"a", "b"})
