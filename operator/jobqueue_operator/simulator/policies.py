"""The policies the simulator compares, as adapters to :class:`engine.Policy`.

* :class:`OperatorPolicy` runs **the operator's own** ``jobqueue_operator.policy.decide``
  (looked up on the module at every tick, never copied, so what is simulated is
  what is deployed; ``tests/unit/simulator`` checks it by patching the module).
* :class:`OperatorSloPolicy` runs the same ``decide`` with the operator's
  latency-SLO / rate mode switched on (``spec.slo``), fed the same counters the
  real loop derives its rates from.
* :class:`KedaHpaModel` is a *model* of KEDA + the HPA with their defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from jobqueue_operator import policy as operator_policy
from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.simulator.engine import ClusterView, Timer

#: Ceil that forgives float noise, so 10.000000000000002 jobs per pod is 10 pods, not 11.
_EPS = 1e-9


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


class OperatorPolicy:
    """The seeds' threshold policy: the operator's ``decide`` with the JobQueue's resolved spec.

    State kept between ticks mirrors ``reconcile.Loop``: the last scale-up and
    scale-down times, set only when the replica count actually changes.
    """

    label = "threshold (operator)"

    def __init__(self, spec: EffectiveSpec, interval_s: float) -> None:
        self.spec = spec
        self.interval_s = interval_s
        self.last_up: float | None = None
        self.last_down: float | None = None
        self.decisions: list[operator_policy.Decision] = []
        self._counters: tuple[float, operator_policy.Counters] | None = None
        self._last_busy: float | None = None

    def timers(self) -> Sequence[Timer]:
        return (Timer("operator", self.interval_s, self.interval_s),)

    def _observe(self, view: ClusterView) -> operator_policy.Observation:
        """What ``reconcile.Loop`` would hand ``decide``: the poll plus rates and last busy.

        The simulated workers' totals stand in for the Redis counters
        (``enqueued``, ``completed``, ``busy_ms``); the rates come from the
        operator's own ``rates_between``, so the simulated SLO mode does the
        same arithmetic as the deployed one.
        """
        counters = operator_policy.Counters(
            enqueued=view.arrived_total,
            finished=view.completed_total,
            busy_ms=round(view.completed_service_s * 1000),
        )
        rates = operator_policy.rates_between(self._counters, view.now, counters)
        self._counters = (view.now, counters)
        if view.depth or view.in_flight or view.busy_pods or self._last_busy is None:
            self._last_busy = view.now
        return operator_policy.Observation(
            depth=view.depth,
            oldest_age_s=view.oldest_age_s,
            in_flight=view.in_flight,
            busy_workers=view.busy_pods,
            workers=view.ready_pods,
            arrival_rate=rates.arrival_rate,
            mean_service_s=rates.mean_service_s,
            last_busy_at=self._last_busy,
            counters=counters,
        )

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        observation = self._observe(view)
        # Attribute lookup at call time on purpose: the operator's function, whatever it is now.
        decision = operator_policy.decide(
            self.spec, observation, view.replicas, self.last_up, self.last_down, view.now
        )
        self.decisions.append(decision)
        if decision.desired == view.replicas:
            return None
        if decision.desired > view.replicas:
            self.last_up = view.now
        else:
            self.last_down = view.now
        return decision.desired


class OperatorSloPolicy(OperatorPolicy):
    """The operator's latency-SLO / rate mode: ``decide`` with ``spec.slo`` set.

    The adapter the comparison uses for its SLO policy:
    the same function the operator runs, with ``maxWaitSeconds`` and
    ``concurrencyPerPod`` filled in when the loaded spec has no ``slo``.
    """

    label = "SLO (operator)"

    def __init__(
        self, spec: EffectiveSpec, interval_s: float, *, max_wait_s: float, concurrency: int
    ) -> None:
        if spec.slo_max_wait_s is None:
            spec = dataclasses.replace(
                spec, slo_max_wait_s=max_wait_s, concurrency_per_pod=concurrency
            )
        super().__init__(spec, interval_s)


@dataclass(frozen=True, slots=True)
class KedaSettings:
    """KEDA ScaledObject + HPA parameters; the defaults are KEDA's and Kubernetes'."""

    list_length: int = 5
    activation_list_length: int = 0
    polling_interval_s: float = 30.0
    cooldown_period_s: float = 300.0
    hpa_sync_s: float = 15.0
    tolerance: float = 0.1
    up_pods: int = 4
    up_percent: int = 100
    up_period_s: float = 15.0
    down_stabilization_s: float = 300.0
    down_percent: int = 100
    down_period_s: float = 15.0


class KedaHpaModel:
    """A model of KEDA's Redis list scaler driving the HPA, with default behaviour.

    Source: ``/work/shared/docs/anchors.md`` §1.1 (KEDA's two loops), §1.2 (the
    HPA's external-metric maths and ``behavior`` defaults) and §2 (defaults and
    the case-A timing this model reproduces). Summarised:

    * **KEDA's poll**, every ``pollingInterval`` (30 s): activation only. If the
      list is longer than ``activationListLength`` and the target is at 0, set
      ``max(1, min)``. If it is not active, ``min`` is 0 and ``lastActiveTime +
      cooldownPeriod`` (300 s) has passed, set 0.
    * **The HPA**, every 15 s while replicas ≥ 1: the metric is the list length
      (waiting jobs only; KEDA's list scaler cannot see in-flight work), target
      ``listLength`` (5) per pod as ``AverageValue``; if ``|1 − length /
      (target × replicas)| > 0.1`` the recommendation is ``ceil(length /
      target)``, else the current count. Scale-up has no stabilisation and may
      grow by the larger of +4 pods and +100 % per 15 s, counted from the
      replicas at the start of the period. Scale-down takes the *highest*
      recommendation of the last 300 s, then may drop 100 % per 15 s. The HPA's
      minimum is ``max(1, min)``; the result is clamped to [that, max].

    Equal-time order: the HPA sync runs before KEDA's poll, so a sync in the
    same instant as an activation still sees 0 replicas and waits for its next
    sync, which is the sequence anchors §2 case A describes. Both timers fire
    first one full period after the trace starts (they last fired just before
    the first job arrived): the worst case the anchors quote.
    """

    def __init__(
        self, min_replicas: int, max_replicas: int, settings: KedaSettings | None = None
    ) -> None:
        self.min = min_replicas
        self.max = max_replicas
        self.s = settings or KedaSettings()
        self.label = "KEDA+HPA model"
        self.last_active: float | None = None
        self.recommendations: deque[tuple[float, int]] = deque()
        self.seeded = False
        self.changes: deque[tuple[float, int]] = deque()  # (time, signed change) by the HPA

    def timers(self) -> Sequence[Timer]:
        return (
            Timer("hpa", self.s.hpa_sync_s, self.s.hpa_sync_s, order=0),
            Timer("keda", self.s.polling_interval_s, self.s.polling_interval_s, order=1),
        )

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        if timer == "keda":
            return self._keda_poll(view)
        return self._hpa_sync(view)

    def _keda_poll(self, view: ClusterView) -> int | None:
        active = view.depth > self.s.activation_list_length
        if active:
            self.last_active = view.now
            if view.replicas == 0:
                return min(max(1, self.min), self.max)
            return None
        idle_long_enough = (
            self.last_active is None or view.now >= self.last_active + self.s.cooldown_period_s
        )
        if self.min == 0 and view.replicas > 0 and idle_long_enough:
            return 0
        return None

    def _hpa_sync(self, view: ClusterView) -> int | None:
        current = view.replicas
        if current == 0:
            return None  # the HPA is inactive at 0; only KEDA's poll leaves 0
        now = view.now
        usage = view.depth
        ratio = usage / (self.s.list_length * current)
        # Inside the tolerance the HPA keeps the count (anchors §1.2). Written as the
        # per-direction check of Kubernetes ≥ 1.33 (KEP-4951), 1 − t ≤ ratio ≤ 1 + t,
        # so a ratio of exactly 1.1 stays inside in floating point too.
        within = 1.0 - self.s.tolerance <= ratio <= 1.0 + self.s.tolerance
        raw = current if within else _ceil(usage / self.s.list_length)
        recommendation = self._stabilize(now, current, raw)
        desired = self._rate_limit(now, current, recommendation)
        desired = min(max(desired, 1, self.min), self.max)
        if desired == current:
            return None
        self.changes.append((now, desired - current))
        return desired

    def _stabilize(self, now: float, current: int, raw: int) -> int:
        """Scale-up window 0 (take ``raw``); scale-down: the highest of the last 300 s.

        The trace starts with the cluster already running, so on its first sync
        the HPA behaves as if its previous sync, one period ago, had recommended
        the current count (anchors §2 case C: a drained backlog at N pods is
        first reduced 300–315 s later, not at once).
        """
        if not self.seeded:
            self.seeded = True
            self.recommendations.append((now - self.s.hpa_sync_s, current))
        while (
            self.recommendations and self.recommendations[0][0] <= now - self.s.down_stabilization_s
        ):
            self.recommendations.popleft()
        self.recommendations.append((now, raw))
        down_floor = max(r for _, r in self.recommendations)
        if raw > current:
            return raw
        return min(current, down_floor)

    def _rate_limit(self, now: float, current: int, recommendation: int) -> int:
        """``behavior`` policies: the replicas at the start of the period bound the change."""
        if recommendation > current:
            ups = sum(d for t, d in self.changes if t > now - self.s.up_period_s and d > 0)
            start = current - ups
            limit = max(
                start + self.s.up_pods,
                _ceil(start * (1 + self.s.up_percent / 100)),
            )
            return min(recommendation, limit)
        if recommendation < current:
            downs = sum(-d for t, d in self.changes if t > now - self.s.down_period_s and d < 0)
            start = current + downs
            limit = _ceil(start * (1 - self.s.down_percent / 100))
            return max(recommendation, limit)
        return current
