"""The ScaledObjects compare-keda runs: for real KEDA, and for the simulator's model.

Pure: documents in, documents or configs out; ``model_timeline`` runs the
simulator on a trace (no I/O, time is the simulation's).
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from typing import Any

from bench.keda_traces import CONCURRENCY, SAMPLE_EVERY_S, SERVICE, SIM_STARTUP_S, TAIL_S, Trace
from bench.scaling import ACTUATION_S, GRACE_S, STALENESS_S
from jobqueue_simulator import traces as sim_traces
from jobqueue_simulator.engine import SimConfig, simulate
from jobqueue_simulator.keda_model import KedaModel
from jobqueue_simulator.scaledobject import KedaConfig, parse_scaled_object


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


def model_timeline(trace: Trace, config: KedaConfig) -> list[tuple[float, int]]:
    """The simulator's KEDA model on the same per-second arrivals: its /scale writes."""
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
        actuation_s=ACTUATION_S,
        staleness_s=STALENESS_S,
    )
    result = simulate(parsed.arrivals, KedaModel(config), sim, random.Random(trace.seed))
    return [(0.0, 0)] + [(e.t, e.to_replicas) for e in result.scale_events]
