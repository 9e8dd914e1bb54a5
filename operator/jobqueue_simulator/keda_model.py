"""KEDA's two timers and the HPA's algorithm, run on a ScaledObject.

* **KEDA's poll**, every ``pollingInterval``: activation only. Active when any
  trigger's value exceeds its activation value (with ``scalingModifiers``: when
  the formula's value exceeds ``activationTarget``). Active at 0 replicas →
  ``max(1, minReplicaCount)``. Not active, ``minReplicaCount`` 0 and
  ``lastActiveTime + cooldownPeriod`` passed → 0.
* **The HPA**, every 15 s while replicas ≥ 1, on one external metric per trigger
  (or the one composite metric of the formula):
  ``AverageValue``: ``ceil(value / target)`` unless ``|value / (target ×
  replicas) − 1| ≤ tolerance``; ``Value``: ``ceil(replicas × value / target)``
  under the same tolerance. Several metrics: the largest count.
  Stabilisation as Kubernetes does it: the count moves up only to the lowest
  recommendation of the scale-up window and down only to the highest of the
  scale-down window. Rate limits per policy from the replicas at the start of
  each policy's period (``current − added + removed`` in that period), ``Pods``
  adds or removes ``value``, ``Percent`` multiplies (up rounded up, down
  truncated, as the controller does); ``selectPolicy`` Max takes the policy
  allowing the larger change, Min the smaller, Disabled none. Clamped to
  ``[max(1, min), max]``.
* **An HPA without behaviour** (a ScaledObject with no
  ``horizontalPodAutoscalerConfig.behavior``, which KEDA's examples and defaults
  give): the controller's older fixed rules, which the behaviour defaults do not
  reach. The count moves to the highest recommendation of the down window
  (raw included; never lower than that, even when it is above the current
  count), capped at max(2 × current, 4) per sync and not limited down.

The HPA sync runs before KEDA's poll at the same instant, so an activation is
seen by the HPA one sync later. Both timers start when the ScaledObject is
created, ``started_before_s`` before t = 0, and first fire at the first multiple
of their period after t = 0 counted from then (one period after t = 0 when 0).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from jobqueue_simulator.engine import ClusterView, Timer
from jobqueue_simulator.scaledobject import KedaConfig, Rules

_EPS = 1e-9
# The HPA controller's fixed scale-up cap for an HPA without behaviour: per sync,
# at most this factor of the current count, and never less than this many pods.
LEGACY_UP_FACTOR = 2
LEGACY_UP_MINIMUM = 4


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


def first_tick(period_s: float, started_before_s: float) -> float:
    """The first tick after t = 0 of a timer started ``started_before_s`` before it.

    A tick that would fall exactly on t = 0 is left for one period later: at t = 0
    nothing has arrived, and the engine's timers start after it.
    """
    into = started_before_s % period_s
    return period_s - into if into > _EPS else period_s


class KedaModel:
    """The model of one ScaledObject; stateful, build one per run."""

    def __init__(self, config: KedaConfig, label: str | None = None) -> None:
        self.config = config
        self.label = label or f"KEDA ({config.name})"
        self.last_active: float | None = None
        self.recommendations: deque[tuple[float, int]] = deque()
        self.seeded = False
        self.changes: deque[tuple[float, int]] = deque()  # (time, signed change) by the HPA

    def timers(self) -> Sequence[Timer]:
        c = self.config
        return (
            Timer("hpa", c.hpa_sync_s, first_tick(c.hpa_sync_s, c.started_before_s), order=0),
            Timer(
                "keda",
                c.polling_interval_s,
                first_tick(c.polling_interval_s, c.started_before_s),
                order=1,
            ),
        )

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        if timer == "keda":
            return self._keda_poll(view)
        return self._hpa_sync(view)

    # ------------------------------------------------------------ metrics
    def values(self, view: ClusterView) -> dict[str, float]:
        """Each trigger's value, by trigger name."""
        quantity = {
            "waiting": float(view.depth),
            "in_flight": float(view.in_flight),
            "oldest_age_s": view.oldest_age_s,
        }
        return {t.name: quantity[t.quantity] for t in self.config.triggers}

    def active(self, view: ClusterView) -> bool:
        values = self.values(view)
        c = self.config
        if c.formula is not None:
            return c.formula(values) > c.formula_activation
        return any(values[t.name] > t.activation for t in c.triggers)

    def raw_desired(self, view: ClusterView, current: int) -> int:
        """The HPA's count before stabilisation: the largest over the metrics."""
        c = self.config
        values = self.values(view)
        if c.formula is not None:
            metrics = [(c.formula(values), c.formula_target, c.formula_metric_type)]
        else:
            metrics = [(values[t.name], t.target, t.metric_type) for t in c.triggers]
        counts = []
        for value, target, kind in metrics:
            counts.append(self._one_metric(value, target, kind, current))
        return max(counts)

    def _one_metric(self, value: float, target: float, kind: str, current: int) -> int:
        if target <= 0 or not math.isfinite(value):
            return self.config.max_replicas if value > 0 else current
        if kind == "Value":
            ratio = value / target
            proposal = _ceil(current * ratio)
        else:
            ratio = value / (target * current)
            proposal = _ceil(value / target)
        up_tol, down_tol = self.config.up.tolerance, self.config.down.tolerance
        # Written as 1 − t ≤ ratio ≤ 1 + t so a ratio of exactly 1.1 stays inside.
        if 1.0 - down_tol <= ratio <= 1.0 + up_tol:
            return current
        return proposal

    # ------------------------------------------------------------ timers
    def _keda_poll(self, view: ClusterView) -> int | None:
        c = self.config
        if self.active(view):
            self.last_active = view.now
            if view.replicas == 0:
                return min(max(1, c.min_replicas), c.max_replicas)
            return None
        idle_long_enough = (
            self.last_active is None or view.now >= self.last_active + c.cooldown_period_s
        )
        if c.min_replicas == 0 and view.replicas > 0 and idle_long_enough:
            return 0
        return None

    def _hpa_sync(self, view: ClusterView) -> int | None:
        current = view.replicas
        if current == 0:
            return None  # the HPA is inactive at 0; only KEDA's poll leaves 0
        c = self.config
        raw = self.raw_desired(view, current)
        if c.hpa_behavior:
            recommendation = self._stabilize(view.now, current, raw)
            desired = self._rate_limit(view.now, current, recommendation)
        else:
            desired = self._without_behavior(view.now, current, raw)
        desired = min(max(desired, 1, c.min_replicas), c.max_replicas)
        if desired == current:
            return None
        self.changes.append((view.now, desired - current))
        return desired

    def _stabilize(self, now: float, current: int, raw: int) -> int:
        """The lowest recommendation of the up window, the highest of the down window."""
        c = self.config
        self._seed(now, current)
        keep = max(c.up.stabilization_s, c.down.stabilization_s)
        while self.recommendations and self.recommendations[0][0] <= now - keep:
            self.recommendations.popleft()
        up_rec = down_rec = raw
        for t, r in self.recommendations:
            if t > now - c.up.stabilization_s:
                up_rec = min(up_rec, r)
            if t > now - c.down.stabilization_s:
                down_rec = max(down_rec, r)
        self.recommendations.append((now, raw))
        recommendation = current
        recommendation = max(recommendation, up_rec)
        return min(recommendation, down_rec)

    def _without_behavior(self, now: float, current: int, raw: int) -> int:
        """The highest recommendation of the down window, capped at max(2 × current, 4).

        Unlike the behaviour path, the window's highest recommendation is taken
        even above the current count (a capped scale-up goes on to what was asked),
        and a scale-down is not rate-limited.
        """
        window = self.config.down.stabilization_s
        self._seed(now, current)
        while self.recommendations and self.recommendations[0][0] <= now - window:
            self.recommendations.popleft()
        highest = max([raw, *(r for t, r in self.recommendations if t > now - window)])
        self.recommendations.append((now, raw))
        return min(highest, max(LEGACY_UP_FACTOR * current, LEGACY_UP_MINIMUM))

    def _seed(self, now: float, current: int) -> None:
        """On its first sync the HPA behaves as if its previous sync, one period
        ago, had recommended the running count (the cluster was already running)."""
        if not self.seeded:
            self.seeded = True
            self.recommendations.append((now - self.config.hpa_sync_s, current))

    def _rate_limit(self, now: float, current: int, recommendation: int) -> int:
        c = self.config
        if recommendation > current:
            return min(recommendation, self._limit(now, current, c.up, up=True))
        if recommendation < current:
            return max(recommendation, self._limit(now, current, c.down, up=False))
        return current

    def _limit(self, now: float, current: int, rules: Rules, *, up: bool) -> int:
        if rules.select == "Disabled" or not rules.policies:
            return current
        limits = []
        for policy in rules.policies:
            recent = [d for t, d in self.changes if t > now - policy.period_s]
            added = sum(d for d in recent if d > 0)
            removed = -sum(d for d in recent if d < 0)
            start = current - added + removed
            if policy.kind == "Pods":
                limits.append(start + policy.value if up else start - policy.value)
            elif up:
                limits.append(_ceil(start * (1 + policy.value / 100)))
            else:
                limits.append(int(start * (1 - policy.value / 100) + _EPS))
        # Max allows the larger change: the highest limit up, the lowest down.
        wants_max = rules.select == "Max"
        if up:
            return max(limits) if wants_max else min(limits)
        return min(limits) if wants_max else max(limits)
