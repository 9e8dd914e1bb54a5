"""Read a KEDA ScaledObject into what the KEDA + HPA model runs.

A KEDA user points triggers at our queues in one of two ways, and both are read:

* ``type: metrics-api`` on the queue's statistics endpoint, with
  ``valueLocation`` naming the quantity: ``waiting``, ``inFlight`` or
  ``oldestAgeSeconds``, and ``targetValue`` / ``activationTargetValue``.
* ``type: redis`` with ``listLength`` / ``activationListLength``: KEDA's own
  scaler, which reads the length of one key, so it sees waiting jobs only.

``pollingInterval``, ``cooldownPeriod``, ``minReplicaCount``, ``maxReplicaCount``,
``advanced.horizontalPodAutoscalerConfig.behavior`` and
``advanced.scalingModifiers`` (``formula``, ``target``, ``activationTarget``,
``metricType``) are honoured; unset fields take KEDA's and Kubernetes' defaults.
Without ``behavior`` the HPA takes none at all, not the behaviour defaults (see
``KedaConfig.hpa_behavior``).
Anything else the model cannot honour is refused with one line naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jobqueue_simulator.formula import Formula, FormulaError, parse_formula

QUANTITIES = {
    "waiting": "waiting",
    "inflight": "in_flight",
    "in_flight": "in_flight",
    "oldestageseconds": "oldest_age_s",
    "oldest_age_s": "oldest_age_s",
    "oldestage": "oldest_age_s",
}


class ScaledObjectError(ValueError):
    """A ScaledObject the model cannot run; the message names the field."""


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """One ``behavior.scaleUp/scaleDown.policies[]`` entry."""

    kind: str  # "Pods" or "Percent"
    value: int
    period_s: float


@dataclass(frozen=True, slots=True)
class Rules:
    """One direction of the HPA's ``behavior``."""

    stabilization_s: float
    policies: tuple[ScalingPolicy, ...]
    select: str = "Max"  # Max, Min or Disabled
    tolerance: float = 0.1


#: Kubernetes' defaults (pkg/apis/autoscaling/v2/defaults.go).
DEFAULT_UP = Rules(0.0, (ScalingPolicy("Pods", 4, 15.0), ScalingPolicy("Percent", 100, 15.0)))
DEFAULT_DOWN = Rules(300.0, (ScalingPolicy("Percent", 100, 15.0),))


@dataclass(frozen=True, slots=True)
class Trigger:
    """One trigger: the quantity it reads, its target and its activation value."""

    name: str
    quantity: str  # waiting, in_flight or oldest_age_s
    target: float
    activation: float = 0.0
    metric_type: str = "AverageValue"


@dataclass(frozen=True, slots=True)
class KedaConfig:
    """Everything the KEDA + HPA model needs from a ScaledObject."""

    name: str = "keda"
    polling_interval_s: float = 30.0
    cooldown_period_s: float = 300.0
    min_replicas: int = 0
    max_replicas: int = 100
    triggers: tuple[Trigger, ...] = (Trigger("waiting", "waiting", 5.0),)
    formula: Formula | None = None
    formula_target: float = 0.0
    formula_activation: float = 0.0
    formula_metric_type: str = "AverageValue"
    up: Rules = DEFAULT_UP
    down: Rules = DEFAULT_DOWN
    hpa_sync_s: float = 15.0
    #: Whether the ScaledObject sets ``advanced.horizontalPodAutoscalerConfig.behavior``.
    #: KEDA copies a behaviour to its HPA only when one is set, and the API server
    #: fills in the defaults (``up``/``down``) only for an HPA that has one. An HPA
    #: without one runs the controller's older fixed rules: up to max(2 × current, 4)
    #: a sync, down at once to the highest recommendation of the controller's window
    #: (``down.stabilization_s``: 300 s by default), with the same tolerance.
    hpa_behavior: bool = False
    #: How long before t = 0 the ScaledObject was created. KEDA starts its poll and
    #: creates the HPA, which syncs at once, in that moment; both then tick every
    #: period from there, so they are in phase with each other but not with the
    #: trace. 0: both first tick one period after t = 0.
    started_before_s: float = 0.0


def load_scaled_object(path: Path) -> KedaConfig:
    """The first ``kind: ScaledObject`` document of a YAML file."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise ScaledObjectError(f"{path}: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "ScaledObject":
            try:
                return parse_scaled_object(doc)
            except ScaledObjectError as exc:
                raise ScaledObjectError(f"{path}: {exc}") from None
    raise ScaledObjectError(f"{path}: no 'kind: ScaledObject' document")


def parse_scaled_object(doc: Mapping[str, Any]) -> KedaConfig:
    """A ScaledObject as a mapping (already parsed YAML)."""
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise ScaledObjectError("spec is missing")
    name = str((doc.get("metadata") or {}).get("name") or "keda")
    triggers = tuple(_trigger(i, t) for i, t in enumerate(spec.get("triggers") or []))
    if not triggers:
        raise ScaledObjectError("spec.triggers is empty")
    lo = _int(spec, "minReplicaCount", 0, "spec")
    hi = _int(spec, "maxReplicaCount", 100, "spec")
    if lo > hi:
        raise ScaledObjectError(f"spec.minReplicaCount {lo} is above maxReplicaCount {hi}")
    advanced = spec.get("advanced") or {}
    raw_behavior = (advanced.get("horizontalPodAutoscalerConfig") or {}).get("behavior")
    behavior = raw_behavior or {}
    config = KedaConfig(
        name=name,
        polling_interval_s=_num(spec, "pollingInterval", 30.0, "spec"),
        cooldown_period_s=_num(spec, "cooldownPeriod", 300.0, "spec"),
        min_replicas=lo,
        max_replicas=hi,
        triggers=triggers,
        up=_rules(behavior.get("scaleUp"), DEFAULT_UP, "scaleUp"),
        down=_rules(behavior.get("scaleDown"), DEFAULT_DOWN, "scaleDown"),
        # An empty mapping is still a behaviour: the API server defaults both directions.
        hpa_behavior=raw_behavior is not None,
    )
    modifiers = advanced.get("scalingModifiers")
    if modifiers:
        names = {t.name for t in triggers}
        text = str(modifiers.get("formula") or "")
        try:
            formula = parse_formula(text, names)
        except FormulaError as exc:
            raise ScaledObjectError(f"advanced.scalingModifiers.formula: {exc}") from None
        where = "advanced.scalingModifiers"
        config = _replace(
            config,
            formula=formula,
            formula_target=_num(modifiers, "target", None, where),
            formula_activation=_num(modifiers, "activationTarget", 0.0, where),
            formula_metric_type=str(modifiers.get("metricType") or "AverageValue"),
        )
    return config


def _replace(config: KedaConfig, **changes: Any) -> KedaConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def _trigger(index: int, raw: Any) -> Trigger:
    where = f"spec.triggers[{index}]"
    if not isinstance(raw, Mapping):
        raise ScaledObjectError(f"{where} is not a mapping")
    kind = str(raw.get("type") or "")
    meta = raw.get("metadata") or {}
    name = str(raw.get("name") or f"trigger{index}")
    metric_type = str(raw.get("metricType") or "AverageValue")
    if metric_type not in {"AverageValue", "Value"}:
        raise ScaledObjectError(f"{where}.metricType {metric_type!r}: AverageValue or Value")
    if kind == "redis":
        return Trigger(
            name,
            "waiting",
            _num(meta, "listLength", 5.0, f"{where}.metadata"),
            _num(meta, "activationListLength", 0.0, f"{where}.metadata"),
            metric_type,
        )
    if kind == "metrics-api":
        location = str(meta.get("valueLocation") or "")
        quantity = QUANTITIES.get(location.replace("-", "").lower())
        if quantity is None:
            raise ScaledObjectError(
                f"{where}.metadata.valueLocation {location!r}: "
                "waiting, inFlight or oldestAgeSeconds"
            )
        return Trigger(
            name,
            quantity,
            _num(meta, "targetValue", None, f"{where}.metadata"),
            _num(meta, "activationTargetValue", 0.0, f"{where}.metadata"),
            metric_type,
        )
    raise ScaledObjectError(f"{where}.type {kind!r}: the model reads redis and metrics-api")


def _rules(raw: Any, default: Rules, where: str) -> Rules:
    if not raw:
        return default
    where = f"behavior.{where}"
    policies = default.policies
    if raw.get("policies") is not None:
        policies = tuple(
            ScalingPolicy(
                str(p.get("type")),
                _int(p, "value", None, f"{where}.policies"),
                _num(p, "periodSeconds", None, f"{where}.policies"),
            )
            for p in raw["policies"]
        )
        for p in policies:
            if p.kind not in {"Pods", "Percent"} or p.period_s <= 0:
                raise ScaledObjectError(f"{where}.policies: type Pods or Percent, period > 0")
    select = str(raw.get("selectPolicy") or "Max")
    if select not in {"Max", "Min", "Disabled"}:
        raise ScaledObjectError(f"{where}.selectPolicy {select!r}: Max, Min or Disabled")
    return Rules(
        _num(raw, "stabilizationWindowSeconds", default.stabilization_s, where),
        policies,
        select,
        _num(raw, "tolerance", default.tolerance, where),
    )


def _num(raw: Mapping[str, Any], key: str, default: float | None, where: str) -> float:
    value = raw.get(key, default)
    if value is None:
        raise ScaledObjectError(f"{where}.{key} is required")
    try:
        number = float(value)  # KEDA's metadata values are strings
    except (TypeError, ValueError):
        raise ScaledObjectError(f"{where}.{key} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ScaledObjectError(f"{where}.{key} {value!r} must be a finite number >= 0")
    return number


def _int(raw: Mapping[str, Any], key: str, default: int | None, where: str) -> int:
    number = _num(raw, key, default, where)
    if number != int(number):
        raise ScaledObjectError(f"{where}.{key} {number!r} is not a whole number")
    return int(number)
