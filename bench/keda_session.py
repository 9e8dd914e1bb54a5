"""The whole compare-keda run: one plane with real KEDA, then every selected trace.

The simulator's model of the same ScaledObject runs on each trace first (pure,
seconds); then the control plane, KEDA's two processes, ``redis-server`` and our
external scaler start once and every trace runs on them in turn.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.keda_measure import TraceResult, run_trace
from bench.keda_objects import model_run, variant_model
from bench.keda_traces import HPA_SYNC_S, MAX_REPLICAS, Trace
from bench.operator import _paths  # noqa: F401  (puts the devkit and sources on sys.path)
from bench.scaling import REPO
from jobqueue_devkit import binaries, keda_binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.keda_stack import KedaStack, start_keda_scaler
from jobqueue_devkit.redis_server import RedisServer


@dataclass
class Outcome:
    results: list[TraceResult]
    keda_version: str
    setup_error: str = ""
    seconds: float = 0.0
    commit: str = ""
    #: Which ScaledObject real KEDA and the model ran: "tuned" or "default".
    variant: str = "tuned"


def run_model(result: TraceResult, variant: str) -> None:
    """The simulator's model of ``variant`` on the trace, its timers started when the
    real ScaledObject was (when measured; else at t = 0)."""
    started = result.keda.started_before_s if result.keda is not None else None
    model = variant_model(variant, MAX_REPLICAS, HPA_SYNC_S, started or 0.0)
    result.model_run = model_run(result.trace, model)
    result.model = result.model_run.writes


def model_results(selected: Sequence[Trace], variant: str) -> list[TraceResult]:
    """Each trace with the simulator's model of ``variant`` already run on it."""
    results = [TraceResult(trace) for trace in selected]
    for result in results:
        run_model(result, variant)
    return results


async def run_all(selected: Sequence[Trace], workdir: Path, variant: str = "tuned") -> Outcome:
    results = model_results(selected, variant)
    outcome = Outcome(results, keda_binaries.KEDA_VERSION, variant=variant)
    bins = keda_binaries.cached_keda()
    if bins is None:
        outcome.setup_error = (
            f"real KEDA {keda_binaries.KEDA_VERSION} is not built here (`make keda` builds it)"
        )
        return outcome
    plane = ControlPlane(
        binaries.ensure_binaries(),
        workdir=workdir / "plane",
        aggregation=True,
        hpa_sync_period_s=HPA_SYNC_S,
    )
    redis_server = RedisServer(workdir=workdir / "redis")
    scaler = None
    try:
        plane.start(REPO / "crds")
        KedaStack(plane, bins).start()
        redis_server.start()
        scaler = start_keda_scaler(redis_server.url, workdir / "keda-scaler.log")
        print(f"plane {plane.server}, redis {redis_server.url}, logs {workdir}", flush=True)
        for result in results:
            print(f"{result.trace.name}: running ({result.trace.description})", flush=True)
            load_before = os.getloadavg()[0]
            try:
                result.ours, result.keda = await run_trace(
                    plane,
                    redis_server,
                    scaler.address,
                    result.trace,
                    workdir / result.trace.name,
                    variant=variant,
                )
            except Exception as exc:
                traceback.print_exc()
                result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            result.load = (load_before, os.getloadavg()[0])
            run_model(result, variant)  # again, from when the real ScaledObject was created
            print(_progress(result), flush=True)
    except Exception as exc:
        traceback.print_exc()
        outcome.setup_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    finally:
        if scaler is not None:
            scaler.stop()
        redis_server.cleanup()
        plane.stop()
    return outcome


def _progress(r: TraceResult) -> str:
    if r.error or r.ours is None or r.keda is None:
        return f"{r.trace.name}: not measured: {r.error}"
    return (
        f"{r.trace.name}: ours {r.ours.replica_seconds:.0f} replica·s p95 {r.ours.waits.p95_s:.1f}"
        f" s; KEDA {r.keda.replica_seconds:.0f} replica·s p95 {r.keda.waits.p95_s:.1f} s"
    )
