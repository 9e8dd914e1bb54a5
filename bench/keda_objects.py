"""The ScaledObjects compare-keda runs: for real KEDA, and for the simulator's model.

Two variants. **tuned**: ``specs/bench/keda-tuned.yaml`` (waiting + in flight at
80 % of a pod, 15 s poll), whose two metrics-api triggers become one external
trigger on our scaler's backlog. **default**: what a user gets from KEDA's Redis
example with every default: KEDA's own ``redis`` trigger on the queue's ready set
(it reads a sorted set's ZCARD, so it sees the waiting jobs only), ``listLength``
5, a 30 s poll, 300 s cooldown, no HPA behaviour; the simulator's "KEDA default".

Pure: documents in, documents or configs out; ``model_timeline`` runs the
simulator on a trace (no I/O, time is the simulation's).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from bench.keda_traces import (
    CONCURRENCY,
    SAMPLE_EVERY_S,
    SERVICE,
    SIM_ACTUATION_S,
    SIM_STALENESS_S,
    SIM_STARTUP_S,
    TAIL_S,
    Trace,
)
from bench.scaling import GRACE_S, KEDA_TUNED
from jobqueue_protocol import keys
from jobqueue_simulator import traces as sim_traces
from jobqueue_simulator.engine import ClusterView, SimConfig, Timer, simulate
from jobqueue_simulator.keda_model import KedaModel
from jobqueue_simulator.policies import KedaHpaModel
from jobqueue_simulator.scaledobject import KedaConfig, parse_scaled_object
from jobqueue_worker.envelope import Priority

VARIANTS = ("tuned", "default")
# The producer's jobs carry no priority, so they wait in the NORMAL ready set only.
DEFAULT_PRIORITY = int(Priority.NORMAL)


def real_scaled_object(
    shipped: dict[str, Any],
    *,
    namespace: str,
    deployment: str,
    scaler_address: str,
    queue: str,
    max_replicas: int,
) -> dict[str, Any]:
    """The shipped keda-tuned ScaledObject with its metrics-api triggers and
    ``waiting + inflight`` formula as one external trigger on our scaler's backlog."""
    doc = copy.deepcopy(shipped)
    spec = doc["spec"]
    advanced = spec.get("advanced") or {}
    modifiers = advanced.pop("scalingModifiers", None) or {}
    formula = "".join(str(modifiers.get("formula", "")).split())
    if formula not in {"waiting+inflight", "inflight+waiting"}:
        raise ValueError(f"keda-tuned's formula {modifiers.get('formula')!r} is not the backlog")
    if not advanced:
        spec.pop("advanced", None)
    spec["scaleTargetRef"] = {"name": deployment}
    spec["maxReplicaCount"] = max_replicas
    spec["triggers"] = [
        {
            "type": "external",
            "name": "backlog",
            "metricType": modifiers.get("metricType", "AverageValue"),
            "metadata": {
                "scalerAddress": scaler_address,
                "queue": queue,
                "targetBacklogPerReplica": str(modifiers["target"]),
                "activationBacklog": str(modifiers.get("activationTarget", "0")),
            },
        }
    ]
    doc["metadata"] = {"name": deployment, "namespace": namespace}
    return doc


def model_config(shipped: dict[str, Any], max_replicas: int, hpa_sync_s: float) -> KedaConfig:
    """The simulator's reading of the same ScaledObject, with the same bounds."""
    doc = copy.deepcopy(shipped)
    doc["spec"]["maxReplicaCount"] = max_replicas
    return replace(parse_scaled_object(doc), hpa_sync_s=hpa_sync_s)


def our_jobqueue_fields(spec_doc: dict[str, Any], max_replicas: int) -> dict[str, Any]:
    """specs/bench/jobqueue.yaml's spec without its target, Redis and queue names."""
    fields = {
        k: v
        for k, v in copy.deepcopy(spec_doc["spec"]).items()
        if k not in {"scaleTargetRef", "redis", "queues"}
    }
    fields["maxReplicas"] = max_replicas
    return fields


def default_scaled_object(
    *, namespace: str, deployment: str, redis_address: str, queue: str, max_replicas: int
) -> dict[str, Any]:
    """KEDA's Redis example with every default, on the queue's ready set.

    ``maxReplicaCount`` is the one field set besides the trigger (100 by default):
    the machine runs at most this many worker processes a side.
    """
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": deployment, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": deployment},
            "maxReplicaCount": max_replicas,
            "triggers": [
                {
                    "type": "redis",
                    "metadata": {
                        "address": redis_address,
                        "listName": keys.ready_key(queue, DEFAULT_PRIORITY),
                    },
                }
            ],
        },
    }


def variant_scaled_object(
    variant: str,
    *,
    namespace: str,
    deployment: str,
    scaler_address: str,
    redis_address: str,
    queue: str,
    max_replicas: int,
) -> dict[str, Any]:
    """The ScaledObject real KEDA runs for ``variant``."""
    if variant == "default":
        return default_scaled_object(
            namespace=namespace,
            deployment=deployment,
            redis_address=redis_address,
            queue=queue,
            max_replicas=max_replicas,
        )
    return real_scaled_object(
        yaml.safe_load(KEDA_TUNED.read_text()),
        namespace=namespace,
        deployment=deployment,
        scaler_address=scaler_address,
        queue=queue,
        max_replicas=max_replicas,
    )


def variant_model(
    variant: str, max_replicas: int, hpa_sync_s: float, started_before_s: float = 0.0
) -> KedaModel:
    """A fresh simulator model of ``variant``'s ScaledObject, with the same bounds,
    created ``started_before_s`` before the trace began (as measured)."""
    if variant == "default":
        default = KedaHpaModel(0, max_replicas)
        config = replace(default.config, hpa_sync_s=hpa_sync_s)
        label = default.label
    else:
        config = model_config(yaml.safe_load(KEDA_TUNED.read_text()), max_replicas, hpa_sync_s)
        label = None
    return KedaModel(replace(config, started_before_s=started_before_s), label)


@dataclass
class Decision:
    """One tick of the model: what it read and what it wrote."""

    t: float
    timer: str
    replicas: int
    waiting: int
    in_flight: int
    wrote: int | None


@dataclass
class Recorder:
    """The model under test, every tick written down (the engine sees the model's timers)."""

    model: KedaModel
    decisions: list[Decision] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.model.label

    def timers(self) -> Sequence[Timer]:
        return self.model.timers()

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        wrote = self.model.on_tick(timer, view)
        self.decisions.append(
            Decision(view.now, timer, view.replicas, view.depth, view.in_flight, wrote)
        )
        return wrote


@dataclass
class ModelRun:
    """The model on one trace: its /scale writes, its pods each second, its ticks."""

    writes: list[tuple[float, int]]
    replicas: list[tuple[float, int]]
    ready: list[tuple[float, int]]
    waiting: list[tuple[float, int]]
    decisions: list[Decision]


def model_run(trace: Trace, model: KedaModel) -> ModelRun:
    """The simulator's KEDA model on the same per-second arrivals."""
    rows = trace.rows()
    parsed = sim_traces.parse_trace(
        sim_traces.format_trace(rows, {sim_traces.SEED_KEY: str(trace.seed)}, trace.description),
        trace.name,
    )
    sim = SimConfig(
        service=SERVICE,
        concurrency=CONCURRENCY,
        startup_delay_s=SIM_STARTUP_S,
        initial_replicas=0,
        horizon_s=trace.duration_s + TAIL_S,
        sample_every_s=SAMPLE_EVERY_S,
        grace_s=GRACE_S,
        actuation_s=SIM_ACTUATION_S,
        staleness_s=SIM_STALENESS_S,
    )
    recorder = Recorder(model)
    result = simulate(parsed.arrivals, recorder, sim, random.Random(trace.seed))
    return ModelRun(
        writes=[(0.0, 0)] + [(e.t, e.to_replicas) for e in result.scale_events],
        replicas=[(s.t, s.replicas) for s in result.samples],
        ready=[(s.t, s.ready) for s in result.samples],
        waiting=[(s.t, s.depth) for s in result.samples],
        decisions=recorder.decisions,
    )


def model_timeline(trace: Trace, config: KedaConfig) -> list[tuple[float, int]]:
    """The simulator's KEDA model of ``config`` on the trace: its /scale writes."""
    return model_run(trace, KedaModel(config)).writes
