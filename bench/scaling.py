"""The scaling benchmark: the operator's policy against KEDA on the simulator.

``python -m bench.scaling [--output BENCHMARKS.md] [--no-write]``

One JobQueue (``specs/bench/jobqueue.yaml``: SLO 60 s, 10 slots a pod, 0..60
workers), its tuned KEDA ScaledObject beside it (waiting + in-flight at 80 % of
a pod) and KEDA with its defaults (the ``redis`` list scaler, ``listLength`` 5),
on the shipped reference traces and five generated shapes. Every run uses the
same world: lognormal start-up (median 20 s, sigma 0.4), a 30 s grace period for
removed pods, a 600 s tail, and the trace's own seed. The section between the
``scaling-bench`` markers of BENCHMARKS.md is rewritten from this one run.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jobqueue_simulator import traces
from jobqueue_simulator.compare import PolicyName, Scenario, compare
from jobqueue_simulator.engine import Distribution, ServiceModel
from jobqueue_simulator.report import Summary, summarize
from jobqueue_simulator.scaledobject import load_scaled_object
from jobqueue_simulator.spec_file import load_spec

REPO = Path(__file__).resolve().parents[1]
SIM = REPO / "operator" / "jobqueue_simulator"
SPEC = SIM / "specs" / "bench" / "jobqueue.yaml"
KEDA_TUNED = SIM / "specs" / "bench" / "keda-tuned.yaml"
BEGIN, END = "<!-- scaling-bench:begin -->", "<!-- scaling-bench:end -->"
SLO_S = 60.0
STARTUP_MEDIAN_S, STARTUP_SIGMA = 20.0, 0.4
GRACE_S = 30.0
ACTUATION_S = 1.0  # a /scale write to the ReplicaSet creating or deleting pods
STALENESS_S = 2.0  # age of the queue figures each decision reads
COST_GOAL = 0.80  # of tuned KEDA's replica-seconds
STEADY_FLIPS_PER_S = 1 / 300  # at most one direction change per 5 minutes


@dataclass(frozen=True, slots=True)
class Shape:
    """One trace: its name, what it is, its seed, its rows and its service times."""

    name: str
    description: str
    seed: int
    rows: Callable[[random.Random], list[tuple[int, int]]]
    service: ServiceModel
    generated: bool = True
    steady: bool = False


def _rate_rows(
    rng: random.Random, rate: Callable[[int], float], duration_s: int
) -> list[tuple[int, int]]:
    return [(t, traces.poisson(rng, rate(t))) for t in range(duration_s)]


def _batches(rng: random.Random) -> list[tuple[int, int]]:
    rows = _rate_rows(rng, lambda t: 2.0, 1800)
    for at in (60, 660, 1260):
        rows.append((at, 5000))
    return rows


EXP2 = ServiceModel(Distribution.EXPONENTIAL, 2.0)
SHAPES: tuple[Shape, ...] = (
    Shape(
        "ramp",
        "Poisson, 0 → 60 jobs/s over 30 min, then 10 min at 60/s",
        11,
        lambda rng: _rate_rows(rng, lambda t: min(60.0, 60.0 * t / 1800), 2400),
        EXP2,
    ),
    Shape(
        "batches",
        "2 jobs/s, plus batches of 5,000 jobs at t = 1, 11 and 21 min",
        12,
        _batches,
        EXP2,
    ),
    Shape(
        "poisson-heavy",
        "Poisson 50 jobs/s for 30 min, lognormal service mean 2 s, CV 3 (heavy tail)",
        13,
        lambda rng: _rate_rows(rng, lambda t: 50.0, 1800),
        ServiceModel(Distribution.LOGNORMAL, 2.0, 3.0),
        steady=True,
    ),
    Shape(
        "daily-wave-60",
        "a day in 1 h: 2 → 60 → 2 jobs/s (cosine)",
        14,
        lambda rng: _rate_rows(
            rng, lambda t: 2.0 + 58.0 * (1 - math.cos(2 * math.pi * t / 3600)) / 2, 3600
        ),
        EXP2,
    ),
    Shape(
        "flash-crowd",
        "5 jobs/s; at 10 min 150 jobs/s for 3 min; back to 5/s; 30 min",
        15,
        lambda rng: _rate_rows(rng, lambda t: 150.0 if 600 <= t < 780 else 5.0, 1800),
        EXP2,
    ),
)


def reference_shapes() -> tuple[Shape, ...]:
    """The shipped traces (mean service 2 s, exponential); read from their files."""
    return tuple(
        Shape(
            name,
            f"shipped reference trace `{name}.csv`",
            100 + i,
            lambda rng: [],
            EXP2,
            generated=False,
            steady=name == "steady",
        )
        for i, name in enumerate(("steady", "daily-wave", "burst", "spiky"))
    )


@dataclass(frozen=True, slots=True)
class Row:
    shape: Shape
    ours: Summary
    keda_tuned: Summary
    keda_default: Summary
    duration_s: float

    @property
    def cost_ratio(self) -> float:
        return self.ours.replica_seconds / self.keda_tuned.replica_seconds

    @property
    def flips_ok(self) -> bool:
        return self.ours.direction_changes <= max(1, self.duration_s * STEADY_FLIPS_PER_S)


def run_shape(shape: Shape) -> Row:
    spec = load_spec(SPEC)
    rows = shape.rows(random.Random(shape.seed))
    if shape.generated:
        trace = traces.parse_trace(
            traces.format_trace(
                rows,
                {traces.MEAN_SERVICE_KEY: "2.0", traces.SEED_KEY: str(shape.seed)},
                shape.description,
            ),
            shape.name,
        )
    else:
        trace = traces.load_trace(SIM / "traces" / f"{shape.name}.csv")
    scenario = Scenario(
        service=shape.service,
        concurrency=10,
        startup_delay_s=STARTUP_MEDIAN_S,
        startup_sigma=STARTUP_SIGMA,
        grace_s=GRACE_S,
        actuation_s=ACTUATION_S,
        staleness_s=STALENESS_S,
        tail_s=600.0,
        seed=trace.seed if trace.seed is not None else shape.seed,
        keda_tuned=load_scaled_object(KEDA_TUNED),
    )
    names = (PolicyName.THRESHOLD, PolicyName.KEDA_TUNED, PolicyName.KEDA)
    ours, tuned, default = (summarize(r) for r in compare(spec, trace, scenario, names))
    return Row(shape, ours, tuned, default, trace.duration_s)


def _n(x: float) -> str:
    return f"{x:,.0f}"


def tree() -> str:
    """The commit the numbers came from, marked when the tree had changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        head = ""
    return head or "unknown"


def render(rows: list[Row], seconds: float, commit: str = "") -> str:
    lines = [
        "## Scaling: the operator against KEDA (simulator)",
        "",
        f"Written by `make bench-scaling` (`python -m bench.scaling`) in {seconds:.0f} s"
        + (f" on {commit}" if commit else "")
        + ". "
        f"One JobQueue, `specs/bench/jobqueue.yaml` (SLO {SLO_S:g} s, 10 slots a pod, "
        "0..60 workers, 5 s poll); **KEDA tuned** is the ScaledObject beside it "
        "(metrics-api triggers, `waiting + inflight` through `scalingModifiers`, target 8 "
        "= 80 % of a pod, 15 s poll, no HPA behaviour); **KEDA default** is KEDA's `redis` "
        "scaler with `listLength` 5 and every default. Neither sets an HPA behaviour, so "
        "the HPA runs the controller's fixed rules (at most max(2 × current, 4) pods a "
        "sync, the highest recommendation of 300 s, even above the current count), as "
        "real KEDA's does (`make compare-keda`). Same world for all: start-up "
        f"lognormal (median {STARTUP_MEDIAN_S:g} s, sigma {STARTUP_SIGMA}), removed pods "
        f"drain for up to {GRACE_S:g} s (a job still running then is interrupted and "
        f"re-queued), {ACTUATION_S:g} s from a write to the ReplicaSet acting, queue "
        f"figures {STALENESS_S:g} s old at every decision, the ReplicaSet's ranking with "
        "`pod-deletion-cost` honoured, 600 s tail, the trace's own seed. The operator "
        "drains first (`scaleDown.drainChosenPods`): the pods it chooses stop fetching "
        "but stay counted and paid for, and `/scale` is lowered only by drained pods a "
        "heartbeat shows idle, so it removes no pod with a job, whatever the job's "
        "length. Under this model, not a measurement on a cluster.",
        "",
        "| trace | policy | replica·s | vs tuned KEDA | wait p50 / p95 / max | interrupted "
        "| direction changes | peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for label, s in (
            ("**ours**", row.ours),
            ("KEDA tuned", row.keda_tuned),
            ("KEDA default", row.keda_default),
        ):
            ratio = s.replica_seconds / row.keda_tuned.replica_seconds
            lines.append(
                f"| {row.shape.name} | {label} | {_n(s.replica_seconds)} | {ratio:.0%} | "
                f"{s.wait_p50_s:.1f} / {s.wait_p95_s:.1f} / {s.wait_max_s:.1f} s | "
                f"{s.interrupted:,} | {s.direction_changes} | {s.peak_replicas} |"
            )
    generated = [r for r in rows if r.shape.generated]
    cheap = [r for r in generated if r.cost_ratio <= COST_GOAL]
    slo_ok = [r for r in rows if r.ours.wait_p95_s <= SLO_S]
    steady = [r for r in rows if r.shape.steady]
    lines += [
        "",
        "Goals, from this run:",
        "",
        f"- p95 wait ≤ {SLO_S:g} s on every trace: **{len(slo_ok)} of {len(rows)}**"
        + _missing(r.shape.name for r in rows if r not in slo_ok),
        f"- ≤ {COST_GOAL:.0%} of tuned KEDA's replica-seconds on at least 4 of the "
        f"{len(generated)} generated shapes: **{len(cheap)} of {len(generated)}**"
        + _missing(r.shape.name for r in generated if r not in cheap),
        f"- 0 jobs interrupted: **{sum(r.ours.interrupted for r in rows):,} interrupted** "
        f"in all (KEDA tuned {sum(r.keda_tuned.interrupted for r in rows):,}, "
        f"KEDA default {sum(r.keda_default.interrupted for r in rows):,})",
        "- at most one direction change per 5 min on steady load: "
        + ", ".join(
            f"`{r.shape.name}` {r.ours.direction_changes} in {r.duration_s / 60:.0f} min"
            f" ({'met' if r.flips_ok else 'missed'})"
            for r in steady
        ),
        "",
        "Where tuned KEDA spends its replica-seconds: after a cold start or a surge the "
        "HPA's scale-down window keeps the highest recommendation of 300 s, so the pool "
        "that the backlog asked for stays five minutes after the backlog is gone; and "
        "`waiting + inflight` at 8 a pod sizes for 80 % busy slots where the operator "
        "sizes for the arrival rate times the measured service time plus 10 % (and keeps "
        "25 % before it removes a pod)." + _keda_faster(rows),
        "",
        *_shortfalls(rows),
        "Traces: "
        + "; ".join(f"`{r.shape.name}`: {r.shape.description}" for r in rows)
        + ". Generated shapes are built in `bench/scaling.py` from fixed seeds.",
    ]
    return "\n".join(lines) + "\n"


def _shortfalls(rows: list[Row]) -> list[str]:
    """One paragraph per goal this run missed, with the figure and the reason."""
    out: list[str] = []
    cut = [r for r in rows if r.ours.interrupted]
    if cut:
        where = ", ".join(
            f"{r.ours.interrupted} on `{r.shape.name}` (KEDA tuned {r.keda_tuned.interrupted})"
            for r in cut
        )
        out += [
            f"**Interrupted jobs: {where}.** Not zero: the operator removed a pod that "
            "was still running a job. Drain-first removes only drained pods a heartbeat "
            "shows idle, so this is a defect of the simulated policy, not a property of "
            "the trace.",
            "",
        ]
    for r in rows:
        if r.ours.wait_p95_s > SLO_S:
            out += [f"**`{r.shape.name}` misses the SLO:** p95 {r.ours.wait_p95_s:.1f} s.", ""]
        if r.shape.generated and r.cost_ratio > COST_GOAL:
            out += [
                f"**`{r.shape.name}` costs {r.cost_ratio:.0%} of tuned KEDA** "
                f"({r.ours.replica_seconds:,.0f} against {r.keda_tuned.replica_seconds:,.0f} "
                "replica·s).",
                "",
            ]
    return out


def _keda_faster(rows: list[Row]) -> str:
    faster = [r for r in rows if r.keda_tuned.wait_p95_s < r.ours.wait_p95_s]
    if not faster:
        return ""
    listed = ", ".join(
        f"`{r.shape.name}` ({r.keda_tuned.wait_p95_s:.1f} against {r.ours.wait_p95_s:.1f} s, "
        f"at {1 / r.cost_ratio:.1f}× our replica·s)"
        for r in faster
    )
    return f" Tuned KEDA has the lower p95 on {listed}."


def _missing(names: Iterable[str]) -> str:
    listed = list(names)
    return f" (missed: {', '.join(listed)})" if listed else ""


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers of ``path`` (appended if they are missing)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for shape in (*reference_shapes(), *SHAPES):
        rows.append(run_shape(shape))
        print(
            f"{shape.name}: ours {rows[-1].ours.replica_seconds:,.0f} replica·s "
            f"({rows[-1].cost_ratio:.0%} of tuned KEDA), p95 {rows[-1].ours.wait_p95_s:.1f} s",
            flush=True,
        )
    section = render(rows, time.perf_counter() - started, tree())
    print(section)
    if not args.no_write:
        write_section(Path(args.output), section)
        print(f"wrote the scaling section of {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
