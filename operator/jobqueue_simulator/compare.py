"""Run several policies over one trace with one seed: the comparison the CLI prints.

Each policy gets a fresh ``random.Random(seed)``; the engine draws every job's
service time from it before anything else, so all policies serve identical jobs.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from jobqueue_simulator.engine import Policy, ServiceModel, SimConfig, SimResult, simulate
from jobqueue_simulator.keda_model import KedaModel
from jobqueue_simulator.policies import (
    KedaHpaModel,
    KedaSettings,
    OperatorPolicy,
    OperatorSloPolicy,
)
from jobqueue_simulator.scaledobject import KedaConfig
from jobqueue_simulator.spec_file import LoadedSpec
from jobqueue_simulator.traces import Trace


class PolicyName(enum.StrEnum):
    """The policies the CLI can compare."""

    THRESHOLD = "threshold"
    KEDA = "keda"
    KEDA_TUNED = "keda-tuned"
    SLO = "slo"


ALL_POLICIES: tuple[PolicyName, ...] = (PolicyName.THRESHOLD, PolicyName.KEDA, PolicyName.SLO)


@dataclass(frozen=True, slots=True)
class Scenario:
    """The world the policies are compared in (everything but the trace and the spec)."""

    service: ServiceModel
    concurrency: int = 10
    startup_delay_s: float = 15.0
    tail_s: float = 600.0
    seed: int = 0
    keda: KedaSettings = field(default_factory=KedaSettings)
    max_wait_s: float | None = None
    """maxWaitSeconds for the SLO policy when the spec has none; None: the scale-up latency."""
    sample_every_s: float = 5.0
    keda_tuned: KedaConfig | None = None
    grace_s: float = 30.0
    startup_sigma: float = 0.0
    actuation_s: float = 0.0
    staleness_s: float = 0.0


def build_policy(name: PolicyName, spec: LoadedSpec, scenario: Scenario) -> Policy:
    """A fresh policy object for one run."""
    eff = spec.effective
    drain = spec.spec.scale_down.drain_chosen_pods
    if name is PolicyName.THRESHOLD:
        return OperatorPolicy(eff, spec.polling_interval_s, drain=drain)
    if name is PolicyName.KEDA:
        return KedaHpaModel(eff.min_replicas, eff.max_replicas, scenario.keda)
    if name is PolicyName.KEDA_TUNED:
        if scenario.keda_tuned is None:
            raise ValueError("keda-tuned needs a ScaledObject (--keda PATH)")
        return KedaModel(scenario.keda_tuned, label=f"KEDA tuned ({scenario.keda_tuned.name})")
    return OperatorSloPolicy(
        eff,
        spec.polling_interval_s,
        max_wait_s=scenario.max_wait_s if scenario.max_wait_s is not None else eff.up_latency_s,
        concurrency=scenario.concurrency,
        drain=drain,
    )


def config_for(spec: LoadedSpec, trace: Trace, scenario: Scenario) -> SimConfig:
    """The engine's config: start at minReplicas, run until the last arrival plus the tail."""
    return SimConfig(
        service=scenario.service,
        concurrency=scenario.concurrency,
        startup_delay_s=scenario.startup_delay_s,
        initial_replicas=spec.effective.min_replicas,
        horizon_s=trace.duration_s + scenario.tail_s,
        sample_every_s=scenario.sample_every_s,
        grace_s=scenario.grace_s,
        startup_sigma=scenario.startup_sigma,
        actuation_s=scenario.actuation_s,
        staleness_s=scenario.staleness_s,
    )


def run_one(name: PolicyName, spec: LoadedSpec, trace: Trace, scenario: Scenario) -> SimResult:
    """One policy over the trace with the scenario's seed."""
    return simulate(
        trace.arrivals,
        build_policy(name, spec, scenario),
        config_for(spec, trace, scenario),
        random.Random(scenario.seed),
    )


def compare(
    spec: LoadedSpec,
    trace: Trace,
    scenario: Scenario,
    policies: Sequence[PolicyName] = ALL_POLICIES,
) -> list[SimResult]:
    """Every requested policy over the same trace and seed, in the order given."""
    return [run_one(name, spec, trace, scenario) for name in policies]
