"""Default resolution (JobQueue, then priority class, then operator settings) and settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobqueue_operator.effective import InvalidSpecError, OperatorDefaults, resolve
from jobqueue_operator.models import PRIORITY_BOUNDS, JobQueueSpec, PriorityClass
from jobqueue_operator.settings import OperatorSettings

BASE = {"scaleTargetRef": {"name": "w"}, "redis": {"host": "r"}, "queues": ["q"]}


def spec(**extra: object) -> JobQueueSpec:
    return JobQueueSpec.model_validate({**BASE, **extra})


def test_seed_defaults() -> None:
    eff = resolve(spec(), OperatorDefaults(), paused=False)
    assert (eff.min_replicas, eff.max_replicas) == (1, 10)
    assert (eff.up_depth, eff.up_latency_s, eff.down_depth, eff.down_latency_s) == (
        100,
        30.0,
        10,
        5.0,
    )
    assert (eff.up_cooldown_s, eff.down_cooldown_s, eff.max_step, eff.down_step) == (60, 300, 3, 1)


@pytest.mark.parametrize("pc", list(PriorityClass))
@pytest.mark.parametrize("field", ["priorityTier", "priorityClass"])
def test_priority_tier_bounds_and_the_deprecated_name(pc: PriorityClass, field: str) -> None:
    eff = resolve(spec(**{field: pc.value}), OperatorDefaults(), paused=False)
    assert (eff.min_replicas, eff.max_replicas) == PRIORITY_BOUNDS[pc]


def test_priority_tier_and_class_must_agree() -> None:
    resolve(spec(priorityTier="low", priorityClass="low"), OperatorDefaults(), paused=False)
    with pytest.raises(ValidationError, match="disagree"):
        spec(priorityTier="high", priorityClass="low")


def test_paused_replicas_pause_and_pin_the_count() -> None:
    eff = resolve(spec(pausedReplicas=4), OperatorDefaults(), paused=False)
    assert eff.paused
    assert eff.paused_replicas == 4
    assert not resolve(spec(), OperatorDefaults(), paused=False).paused


def test_seed_priority_ends() -> None:
    assert PRIORITY_BOUNDS[PriorityClass.CRITICAL] == (2, 20)
    assert PRIORITY_BOUNDS[PriorityClass.BACKGROUND] == (1, 5)


def test_own_fields_beat_class_beat_operator() -> None:
    defaults = OperatorDefaults(
        min_workers=3, max_workers=30, scale_up_queue_depth=7, scale_down_queue_depth=2
    )
    eff = resolve(spec(priorityClass="background", maxReplicas=4), defaults, paused=False)
    assert (eff.min_replicas, eff.max_replicas) == (1, 4)  # class min, own max
    eff = resolve(spec(), defaults, paused=False)
    assert (eff.min_replicas, eff.max_replicas, eff.up_depth, eff.down_depth) == (3, 30, 7, 2)
    eff = resolve(spec(scaleUp={"queueDepth": 500}), defaults, paused=False)
    assert eff.up_depth == 500


def test_resolved_contradiction_is_an_invalid_spec() -> None:
    with pytest.raises(InvalidSpecError, match="minReplicas 8 is above maxReplicas 5"):
        resolve(spec(priorityClass="background", minReplicas=8), OperatorDefaults(), paused=False)
    with pytest.raises(InvalidSpecError, match="scale-down depth"):
        resolve(spec(scaleUp={"queueDepth": 5}), OperatorDefaults(), paused=False)


def test_settings_read_the_unprefixed_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SCALE_UP_QUEUE_DEPTH": "250",
        "SCALE_UP_QUEUE_LATENCY": "12.5",
        "SCALE_DOWN_QUEUE_DEPTH": "20",
        "SCALE_DOWN_QUEUE_LATENCY": "2",
        "MIN_WORKERS": "2",
        "MAX_WORKERS": "40",
        "SCALE_UP_COOLDOWN": "15",
        "SCALE_DOWN_COOLDOWN": "120",
    }.items():
        monkeypatch.setenv(name, value)
    d = OperatorSettings().scaling_defaults()
    assert d == OperatorDefaults(
        scale_up_queue_depth=250,
        scale_up_queue_latency_s=12.5,
        scale_down_queue_depth=20,
        scale_down_queue_latency_s=2.0,
        min_workers=2,
        max_workers=40,
        scale_up_cooldown_s=15,
        scale_down_cooldown_s=120,
    )


def test_bad_setting_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_WORKERS", "-3")
    with pytest.raises(ValueError, match="MIN_WORKERS"):
        OperatorSettings()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        ("1.5", 1.5),
        ("512Mi", 512 * 2**20),
        ("1Gi", 2**30),
        ("1G", 1e9),
        ("128k", 128e3),
        ("1e3", 1000.0),
        (3, 3.0),
        ("", None),
        ("lots", None),
        (None, None),
    ],
)
def test_parse_quantity(text: object, value: float | None) -> None:
    from jobqueue_operator.quantity import parse_quantity

    assert parse_quantity(text) == value


def test_resource_thresholds_from_the_operator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobqueue_operator.settings import OperatorSettings

    monkeypatch.setenv("SCALE_UP_MEMORY_THRESHOLD", "80")
    monkeypatch.setenv("JQO_SCALE_DOWN_MEMORY_THRESHOLD", "40")
    defaults = OperatorSettings().scaling_defaults()
    base = {"scaleTargetRef": {"name": "w"}, "redis": {"host": "r"}, "queues": ["q"]}
    eff = resolve(JobQueueSpec.model_validate(base), defaults, paused=False)
    assert (eff.up_memory_pct, eff.down_memory_pct, eff.up_cpu_pct) == (80.0, 40.0, None)
    own = {**base, "scaleUp": {"memoryPercent": 90}}
    assert resolve(JobQueueSpec.model_validate(own), defaults, paused=False).up_memory_pct == 90
    clash = {**base, "scaleUp": {"memoryPercent": 30}}
    with pytest.raises(InvalidSpecError, match="scale-down memory 40% must be below"):
        resolve(JobQueueSpec.model_validate(clash), defaults, paused=False)
