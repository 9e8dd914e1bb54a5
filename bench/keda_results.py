"""compare-keda's raw timelines as JSON under bench/results/, and back.

Everything a second of the run saw is kept: on each side the Deployment's
``spec.replicas``, ready replicas, worker processes and the queue; on the KEDA
side also the HPA's desired and current replicas, the metric its last sync read
and the ScaledObject's Active condition, the HPA object and the namespace's
events; and the simulator model's writes, pods and every tick (what it read,
what it wrote). ``load`` reads a saved run back, so the model can be compared
again with the same real timelines without running KEDA again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.keda_measure import HpaSample, Run, Sample, TraceResult
from bench.keda_session import Outcome
from bench.keda_traces import HPA_SYNC_S, TRACES


def _run(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "who": run.who,
        "end_s": run.end_s,
        "samples": [dataclasses.asdict(s) for s in run.samples],
        "hpa": [dataclasses.asdict(h) for h in run.hpa],
        "hpa_object": run.hpa_object,
        "events": run.events,
        "records": run.records,
        "missed": run.missed,
        "started_before_s": run.started_before_s,
    }


def to_json(outcome: Outcome) -> dict[str, Any]:
    traces = []
    for r in outcome.results:
        a = r.agreement
        traces.append(
            {
                "name": r.trace.name,
                "description": r.trace.description,
                "error": r.error,
                "load": r.load,
                "keda": _run(r.keda),
                "ours": _run(r.ours),
                "model": dataclasses.asdict(r.model_run) if r.model_run else {"writes": r.model},
                "agreement": None if a is None else dataclasses.asdict(a),
            }
        )
    return {
        "variant": outcome.variant,
        "keda_version": outcome.keda_version,
        "commit": outcome.commit,
        "seconds": outcome.seconds,
        "setup_error": outcome.setup_error,
        "hpa_sync_s": HPA_SYNC_S,
        "traces": traces,
    }


def save(outcome: Outcome, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"compare-keda-{outcome.variant}-{stamp}.json"
    path.write_text(json.dumps(to_json(outcome), indent=1))
    return path


def _load_run(raw: dict[str, Any] | None) -> Run | None:
    if raw is None:
        return None
    return Run(
        raw["who"],
        samples=[Sample(**s) for s in raw["samples"]],
        hpa=[HpaSample(**h) for h in raw.get("hpa", [])],
        hpa_object=raw.get("hpa_object") or {},
        events=raw.get("events") or [],
        records=[(e, s, d) for e, s, d in raw["records"]],
        end_s=raw["end_s"],
        missed=raw.get("missed") or [],
        started_before_s=raw.get("started_before_s"),
    )


def load(path: Path) -> Outcome:
    """A saved run's real timelines; the model's are left for the caller to run again."""
    raw = json.loads(path.read_text())
    by_name = {t.name: t for t in TRACES}
    results = []
    for t in raw["traces"]:
        result = TraceResult(by_name[t["name"]], error=t["error"])
        result.ours, result.keda = _load_run(t["ours"]), _load_run(t["keda"])
        result.load = (t["load"][0], t["load"][1]) if t["load"] else None
        results.append(result)
    return Outcome(
        results,
        raw["keda_version"],
        setup_error=raw["setup_error"],
        seconds=raw["seconds"],
        commit=raw["commit"],
        variant=raw["variant"],
    )
