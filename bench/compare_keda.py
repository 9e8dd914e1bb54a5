"""Real KEDA against the operator: the same short traces through real Redis and real workers.

``python -m bench.compare_keda [--output BENCHMARKS.md] [--no-write] [--traces a,b]``
(``make compare-keda``)

Every claim `make bench-scaling` makes is measured against the simulator's model
of KEDA. This harness measures against KEDA itself (v2.21.0, its operator and
metrics adapter as processes, built by ``make keda``) on the devkit: a control
plane with the aggregation layer and the HPA controller at Kubernetes' default
15 s sync, one ``redis-server``, and worker processes for the Deployments' Pods
run by the dev pod runner. For each trace two Deployments of identical workers
run side by side on that plane, each on its own queue, fed the same jobs at the
same instants by one producer:

* **ours**: the real ``jobqueue-operator`` process and a JobQueue equal to the
  simulator bench's ``specs/bench/jobqueue.yaml`` except ``maxReplicas``;
* **KEDA**: the ScaledObject ``specs/bench/keda-tuned.yaml`` ships (waiting +
  in-flight, target 8 = 80 % of a pod's 10 slots, 15 s poll, 300 s cooldown,
  HPA defaults), with its two metrics-api triggers and ``scalingModifiers``
  replaced by one ``external`` trigger on ``jobqueue-operator keda-scaler``,
  whose ``backlog`` metric is that same sum (KEDA's own redis trigger cannot read
  our sorted-set queues).

Then the same traces go through the simulator's KEDA model of that ScaledObject,
and the two replica timelines are compared (within one replica and one HPA
period, or by how much they differ). The section between the ``compare-keda``
markers of BENCHMARKS.md is rewritten from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import tempfile
import time
from pathlib import Path

from bench.keda_figures import (
    Agreement,
    Series,
    Waits,
    agreement,
    changes,
    direction_changes,
    first_time,
    integrate,
    startup_lags,
    value_at,
    wait_figures,
)
from bench.keda_measure import Run, Sample, TraceResult, run_trace
from bench.keda_objects import (
    VARIANTS,
    model_config,
    model_timeline,
    our_jobqueue_fields,
    real_scaled_object,
    variant_model,
    variant_scaled_object,
)
from bench.keda_report import render
from bench.keda_results import load, save
from bench.keda_session import Outcome, run_all, run_model
from bench.keda_traces import (
    CONCURRENCY,
    HPA_SYNC_S,
    MAX_REPLICAS,
    SERVICE,
    SIM_STARTUP_S,
    TAIL_S,
    TRACES,
    Trace,
)
from bench.scaling import REPO, tree
from bench.sections import write_between

__all__ = [
    "CONCURRENCY",
    "HPA_SYNC_S",
    "MAX_REPLICAS",
    "SERVICE",
    "SIM_STARTUP_S",
    "TAIL_S",
    "TRACES",
    "Agreement",
    "Outcome",
    "Run",
    "Sample",
    "Series",
    "Trace",
    "TraceResult",
    "Waits",
    "agreement",
    "changes",
    "direction_changes",
    "first_time",
    "integrate",
    "main",
    "model_config",
    "model_timeline",
    "our_jobqueue_fields",
    "real_scaled_object",
    "render",
    "run_all",
    "run_trace",
    "startup_lags",
    "value_at",
    "variant_model",
    "variant_scaled_object",
    "wait_figures",
]

BEGIN, END = "<!-- compare-keda:begin -->", "<!-- compare-keda:end -->"
RESULTS = REPO / "bench" / "results"


def _markers(variant: str) -> tuple[str, str]:
    if variant == "tuned":
        return BEGIN, END
    return f"<!-- compare-keda-{variant}:begin -->", f"<!-- compare-keda-{variant}:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--traces", default=",".join(t.name for t in TRACES))
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--scaledobject",
        choices=VARIANTS,
        default="tuned",
        help="tuned: specs/bench/keda-tuned.yaml; default: KEDA's redis trigger, every default",
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="no run: a saved run's real timelines against the model as it is now "
        "(the section is written unless --no-write)",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        outcome = load(Path(args.from_json))
        for r in outcome.results:
            run_model(r, outcome.variant)
        section = render(outcome)
        print(section)
        if not args.no_write:
            write_between(Path(args.output), *_markers(outcome.variant), section)
            print(f"wrote the compare-keda section of {args.output} from {args.from_json}")
        return 0
    by_name = {t.name: t for t in TRACES}
    selected = [by_name[n] for n in args.traces.split(",") if n]
    workdir = Path(tempfile.mkdtemp(prefix="jq-cmpkeda-"))
    started = time.perf_counter()

    async def _main() -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await run_all(selected, workdir, args.scaledobject)

    try:
        outcome = asyncio.run(_main())
    except asyncio.CancelledError:
        print(f"interrupted; everything started was stopped; logs in {workdir}")
        return 130
    outcome.seconds, outcome.commit = time.perf_counter() - started, tree()
    saved = save(outcome, RESULTS, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    print(f"raw timelines in {saved}")
    section = render(outcome)
    print(section)
    if not args.no_write:
        write_between(Path(args.output), *_markers(outcome.variant), section)
        print(f"wrote the compare-keda section of {args.output}")
    if args.keep or outcome.setup_error or any(r.error for r in outcome.results):
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
