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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobqueue_operator import policy as operator_policy
from jobqueue_operator import victims
from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.observation import CounterWindow
from jobqueue_operator.victims import PodView
from jobqueue_simulator.engine import ClusterView, Timer
from jobqueue_simulator.keda_model import KedaModel
from jobqueue_simulator.scaledobject import KedaConfig, Rules, ScalingPolicy, Trigger

#: Ceil that forgives float noise, so 10.000000000000002 jobs per pod is 10 pods, not 11.
_EPS = 1e-9


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


class OperatorPolicy:
    """The seeds' threshold policy: the operator's ``decide`` with the JobQueue's resolved spec.

    State kept between ticks mirrors the operator's loop: the last scale-up and
    scale-down times, set only when the capacity changes, and the Pods drained.
    With ``scaleDown.drainChosenPods`` (the default) a scale-down drains first
    and lowers ``/scale`` only by idle drained Pods (``victims.plan_drain``);
    without it, the chosen Pods are removed at once (``victims.choose_victims``)
    and finish their jobs within the grace period.
    """

    label = "threshold (operator)"

    def __init__(self, spec: EffectiveSpec, interval_s: float, *, drain: bool = True) -> None:
        self.spec = spec
        self.drain = drain
        self.interval_s = interval_s
        self.last_up: float | None = None
        self.last_down: float | None = None
        self.decisions: list[operator_policy.Decision] = []
        self._counters = CounterWindow()
        self._last_busy: float | None = None
        self._drained: Mapping[str, float] = {}
        self._listed: frozenset[str] = frozenset()
        self._costs: dict[str, int] = {}
        self._capacity = 0

    def drain_requests(self) -> frozenset[str]:
        return self._listed

    def deletion_costs(self) -> dict[str, int]:
        return self._costs

    def capacity(self) -> int:
        return self._capacity

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
        rates = self._counters.rates(view.now, counters)
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
            pod_concurrency=view.concurrency,
            worker_loads=_loads(view),
        )

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        pods = tuple(PodView(p.name, p.ready) for p in view.pods)
        live = {p.name for p in pods}
        drained = {name: at for name, at in self._drained.items() if name in live}
        capacity = victims.drained_capacity(view.replicas, drained)
        observation = victims.without_drained(self._observe(view), drained)
        # Attribute lookup at call time on purpose: the operator's function, whatever it is now.
        decision = operator_policy.decide(
            self.spec, observation, capacity, self.last_up, self.last_down, view.now
        )
        self.decisions.append(decision)
        if decision.desired > capacity:
            self.last_up = view.now
        elif decision.desired < capacity:
            self.last_down = view.now
        if self.drain:
            plan = victims.plan_drain(
                pods,
                _loads(view),
                drained,
                replicas=view.replicas,
                desired=decision.desired,
                now=view.now,
            )
            self._drained = plan.drained
            self._listed = frozenset(plan.drained) | frozenset(plan.remove)
            self._costs = dict(plan.costs)
            self._capacity = victims.drained_capacity(plan.replicas, plan.drained)
            replicas = plan.replicas
        else:
            replicas = decision.desired
            self._capacity = replicas
            self._costs = {}
            if replicas < view.replicas:
                chosen = victims.choose_victims(pods, _loads(view), view.replicas - replicas)
                self._costs = dict(chosen.costs)
        return None if replicas == view.replicas else replicas


def _loads(view: ClusterView) -> tuple[operator_policy.WorkerLoad, ...]:
    """The workers' heartbeats: every Ready pod's jobs, summed and longest run time."""
    return tuple(
        operator_policy.WorkerLoad(
            p.name, "busy" if p.jobs else "idle", p.jobs, p.busy_s, longest_s=p.longest_s
        )
        for p in view.pods
        if p.ready
    )


class OperatorSloPolicy(OperatorPolicy):
    """The operator's latency-SLO / rate mode: ``decide`` with ``spec.slo`` set.

    The adapter the comparison uses for its SLO policy:
    the same function the operator runs, with ``maxWaitSeconds`` and
    ``concurrencyPerPod`` filled in when the loaded spec has no ``slo``.
    """

    label = "SLO (operator)"

    def __init__(
        self,
        spec: EffectiveSpec,
        interval_s: float,
        *,
        max_wait_s: float,
        concurrency: int,
        drain: bool = True,
    ) -> None:
        if spec.slo_max_wait_s is None:
            spec = dataclasses.replace(
                spec, slo_max_wait_s=max_wait_s, concurrency_per_pod=concurrency
            )
        super().__init__(spec, interval_s, drain=drain)


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
    #: KEDA's defaults set no HPA behaviour, so the ``up_*`` and ``down_percent``
    #: policies apply only when this is True (``down_stabilization_s`` always does).
    hpa_behavior: bool = False


class KedaHpaModel(KedaModel):
    """KEDA's own ``redis`` list scaler (waiting jobs only) with every default.

    The "default-configured KEDA" of the comparisons: what a user gets from the
    KEDA documentation's Redis example, as a :class:`KedaModel` on a ScaledObject
    with one ``redis`` trigger of ``listLength`` 5 and no HPA behaviour (so the
    HPA controller's fixed rules, not the behaviour defaults).
    """

    def __init__(
        self, min_replicas: int, max_replicas: int, settings: KedaSettings | None = None
    ) -> None:
        s = settings or KedaSettings()
        config = KedaConfig(
            name="redis listLength",
            polling_interval_s=s.polling_interval_s,
            cooldown_period_s=s.cooldown_period_s,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            triggers=(Trigger("list", "waiting", s.list_length, s.activation_list_length),),
            up=Rules(
                0.0,
                (
                    ScalingPolicy("Pods", s.up_pods, s.up_period_s),
                    ScalingPolicy("Percent", s.up_percent, s.up_period_s),
                ),
                tolerance=s.tolerance,
            ),
            down=Rules(
                s.down_stabilization_s,
                (ScalingPolicy("Percent", s.down_percent, s.down_period_s),),
                tolerance=s.tolerance,
            ),
            hpa_sync_s=s.hpa_sync_s,
            hpa_behavior=s.hpa_behavior,
        )
        super().__init__(config, label="KEDA default (redis listLength)")
