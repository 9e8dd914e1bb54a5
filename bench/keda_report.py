"""compare-keda's section of BENCHMARKS.md, from one :class:`Outcome`: pure."""

from __future__ import annotations

import os

from bench.keda_figures import Series, changes, value_at
from bench.keda_measure import Run, TraceResult
from bench.keda_session import Outcome
from bench.keda_traces import (
    CONCURRENCY,
    HPA_SYNC_S,
    MAX_REPLICAS,
    SAMPLE_EVERY_S,
    SERVICE,
    SIM_ACTUATION_S,
    SIM_STALENESS_S,
    SIM_STARTUP_S,
    TAIL_S,
    Trace,
)
from bench.scaling import GRACE_S


def _s(x: float | None) -> str:
    return "not reached" if x is None else f"{x:.0f} s"


def _first_up(run: Run, trace: Trace) -> str:
    after = run.first_scale_up_s(trace)
    at_surge = value_at(run.series(), trace.surge_at_s)
    if after is None and at_surge >= trace.needed_replicas:
        return f"not needed ({at_surge} up)"
    return _s(after)


def _ratio(ours: float, keda: float) -> str:
    return f"{ours / keda:.0%}" if keda > 0 else "–"


def _timeline(series: Series, limit: int = 12) -> str:
    steps = [f"{to}@{t:.0f}s" for t, _, to in changes(list(series))]
    more = f" … (+{len(steps) - limit})" if len(steps) > limit else ""
    return " → ".join(steps[:limit]) + more or "no change"


def _table(results: list[TraceResult]) -> list[str]:
    lines = [
        "| trace | autoscaler | first scale-up after the surge | enough pods ready after it "
        "| replica·s (vs KEDA) | pod·s | wait p50 / p95 / max (p95 vs KEDA) | not started "
        "| redelivered | direction changes | peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.ours is None or r.keda is None:
            continue
        for label, run in (("**ours**", r.ours), ("KEDA", r.keda)):
            w, k = run.waits, r.keda.waits
            lines.append(
                f"| {r.trace.name} | {label} | {_first_up(run, r.trace)} | "
                f"{_s(run.capacity_s(r.trace))} (≥ {r.trace.needed_replicas}) | "
                f"{run.replica_seconds:,.0f} "
                f"({_ratio(run.replica_seconds, r.keda.replica_seconds)})"
                f" | {run.pod_seconds:,.0f} | {w.p50_s:.1f} / {w.p95_s:.1f} / {w.max_s:.1f} s "
                f"({_ratio(w.p95_s, k.p95_s)}) | {w.unstarted} | {w.redelivered} | {run.flips} | "
                f"{run.peak} |"
            )
    return lines


def _idle_notes(results: list[TraceResult]) -> list[str]:
    out = []
    for r in results:
        if r.trace.idle is None or r.ours is None or r.keda is None:
            continue
        lo, hi = r.trace.idle
        parts = []
        for label, run in (("ours", r.ours), ("KEDA", r.keda)):
            gap = [s for s in run.samples if lo <= s.t < hi]
            zero = next((s.t for s in gap if s.spec_replicas == 0), None)
            low = min((s.spec_replicas for s in gap), default=0)
            parts.append(
                f"{label} " + (f"reached 0 at {zero - lo:.0f} s" if zero is not None else
                               f"did not reach 0 (lowest {low})")
            )  # fmt: skip
        out.append(
            f"- `{r.trace.name}`, {hi - lo} s without arrivals (from t = {lo} s): "
            + "; ".join(parts)
            + "."
        )
    return out


def _model_lines(results: list[TraceResult]) -> list[str]:
    lines = [
        "| trace | real KEDA: spec.replicas (value@t) | simulator's KEDA model: /scale writes "
        "| worst gap (±15 s) | seconds within 1 replica, ±15 s | agree? "
        "| real write → Pods ready, median | timers from |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for r in results:
        a = r.agreement
        if a is None or r.keda is None:
            lines.append(
                f"| {r.trace.name} | not measured | {_timeline(r.model)} | – | – | – | – | – |"
            )
            continue
        lag = r.keda.startup_median_s
        lines.append(
            f"| {r.trace.name} | {_timeline(r.keda.series())} | {_timeline(r.model)} | "
            f"{a.max_gap} | {a.share_within:.0%} | {'yes' if a.agrees else '**no**'} | "
            + ("–" if lag is None else f"{lag:.0f} s")
            + " | "
            + ("–" if r.keda.started_before_s is None else f"{-r.keda.started_before_s:.1f} s")
            + " |"
        )
    return lines


def _args(variant: str) -> str:
    return "" if variant == "tuned" else f" COMPARE_KEDA_ARGS='--scaledobject {variant}'"


def _keda_description(variant: str) -> str:
    if variant == "default":
        return (
            "**KEDA**: KEDA's Redis example with every default: its own `redis` trigger "
            "on the queue's ready sorted set (KEDA reads a sorted set's `ZCARD`, so it "
            "sees the waiting jobs, not those in flight), `listLength` 5, pollingInterval "
            f"30 s, cooldownPeriod 300 s, no HPA behaviour; maxReplicaCount {MAX_REPLICAS} "
            "(100 by default) is the one field set. The simulator calls this **KEDA "
            "default**."
        )
    return (
        "**KEDA**: `specs/bench/keda-tuned.yaml` as shipped (waiting + in-flight, target 8 "
        "= 80 % of a pod, pollingInterval 15 s, cooldownPeriod 300 s, HPA default "
        f"behaviour) with maxReplicaCount {MAX_REPLICAS}, its two metrics-api triggers and "
        "`scalingModifiers` formula replaced by one `external` trigger on `jobqueue-operator "
        "keda-scaler` whose `backlog` metric is the same sum (`targetBacklogPerReplica` 8, "
        "`activationBacklog` 0); the metrics-api triggers would need the stats endpoint "
        "served in-cluster, and the sum is the same."
    )


def render(outcome: Outcome) -> str:
    measured = [r for r in outcome.results if r.ours is not None and r.keda is not None]
    lines = [
        "## Scaling: the operator against real KEDA (measured)"
        + ("" if outcome.variant == "tuned" else ", KEDA with its defaults"),
        "",
        f"Written by `make compare-keda{_args(outcome.variant)}` "
        f"(`python -m bench.compare_keda`) in "
        f"{outcome.seconds:.0f} s" + (f" on {outcome.commit}" if outcome.commit else "") + ". "
        f"Real KEDA {outcome.keda_version} (its operator and metrics adapter as processes) "
        f"on the devkit's control plane (aggregation layer, HPA controller syncing every "
        f"{HPA_SYNC_S} s, Kubernetes' default), one `redis-server`, worker processes run by "
        "the dev pod runner (no container runtime), all on one machine. Per trace, two "
        f"Deployments of identical workers ({CONCURRENCY} slots a pod, graceful shutdown "
        f"{GRACE_S:g} s, 0..{MAX_REPLICAS} pods) run **side by side** on that plane, each "
        "on its own queue, fed the same jobs at the same instants by one producer "
        f"(`sleep` jobs, lognormal mean {SERVICE.mean_s:g} s, CV {SERVICE.cv:g}). "
        "**ours**: the real `jobqueue-operator` process with a JobQueue equal to "
        "`operator/jobqueue_simulator/specs/bench/jobqueue.yaml` except maxReplicas "
        f"{MAX_REPLICAS} (60 there). " + _keda_description(outcome.variant),
        "",
        "Figures from one run. Replica·s integrate the Deployment's `spec.replicas` sampled "
        f"every {SAMPLE_EVERY_S:g} s over the trace plus a {TAIL_S} s tail; pod·s the worker "
        "processes alive (terminating ones included). Waits are `started_at − enqueued_at` "
        "from the jobs' own Redis records (a redelivered job's is to its last start); "
        "*redelivered* counts jobs with `deliveries` > 1 (interrupted by a scale-down); "
        "*not started* were still waiting when the window closed. *Enough pods ready*: the "
        "Deployment's ready replicas reach the surge's arrival rate × mean service time "
        f"over {CONCURRENCY} slots. Percentages are ours against KEDA on the same trace.",
        "",
    ]
    if outcome.setup_error:
        lines += [f"**Not measured: {outcome.setup_error}.**", ""]
    lines += _table(outcome.results) if measured else []
    failed = [r for r in outcome.results if r.error]
    if failed:
        lines += [""] + [f"**`{r.trace.name}` could not run:** {r.error}" for r in failed]
    missed = [
        f"`{r.trace.name}` {run.who}: {len(run.missed)} ({', '.join(run.missed[:5])})"
        for r in measured
        for run in (r.ours, r.keda)
        if run is not None and run.missed
    ]
    if missed:
        lines += [
            "",
            "Samples lost to a failed API read (the step function holds): " + "; ".join(missed),
        ]
    loads = [
        f"`{r.trace.name}` {r.load[0]:.1f} → {r.load[1]:.1f}" for r in outcome.results if r.load
    ]
    if loads:
        lines += [
            "",
            f"Machine load (1-min average, {os.cpu_count()} CPUs) at each trace's start → end, "
            "everything on this machine included: " + "; ".join(loads) + ".",
        ]
    idle = _idle_notes(outcome.results)
    if idle:
        lines += ["", *idle]
    lines += [
        "",
        "### The simulator's KEDA model against real KEDA",
        "",
        "The same per-second arrivals through `jobqueue_simulator`'s `KedaModel` of the same "
        f"ScaledObject (maxReplicaCount {MAX_REPLICAS}, HPA sync {HPA_SYNC_S} s), in the "
        f"world this machine shows: a write acts after {SIM_ACTUATION_S:g} s and a pod is "
        f"ready {SIM_STARTUP_S:g} s later (as on a quiet machine; what this run measured "
        "is in the column *real write → Pods ready*), the HPA reads figures "
        f"{SIM_STALENESS_S:g} s old (it asks through KEDA when it syncs), grace "
        f"{GRACE_S:g} s; KEDA's poll and the HPA's sync start when the ScaledObject is "
        "created, measured before each trace (*timers from*). No HPA behaviour is set, so "
        "the HPA runs the controller's fixed rules (at most max(2 × current, 4) a sync; the "
        "highest recommendation of 300 s). They agree when, at every second, each "
        f"timeline has a value within one replica of the other's inside ±{HPA_SYNC_S} s (one "
        "HPA period); the worst gap says by how much they do not.",
        "",
        *_model_lines(outcome.results),
        "",
        "Traces: "
        + "; ".join(f"`{r.trace.name}`: {r.trace.description}" for r in outcome.results)
        + ". Poisson counts from fixed seeds (`bench/compare_keda.py`); the surge is at "
        + ", ".join(f"{r.trace.surge_at_s} s" for r in outcome.results)
        + ".",
        "",
        "Reproduce: `make keda` once (builds KEDA, 10-20 min cold), then "
        f"`make compare-keda{_args(outcome.variant)}`. The raw per-second timelines (both "
        "sides, KEDA's HPA status, the model's ticks) go to "
        "`bench/results/compare-keda-<variant>-<stamp>.json`.",
    ]
    return "\n".join(lines) + "\n"
