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
import contextlib
import copy
import functools
import itertools
import json
import math
import operator
import os
import random
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from bench.operator import _paths  # noqa: F401  (puts the devkit and sources on sys.path)
from bench.scaling import ACTUATION_S, GRACE_S, KEDA_TUNED, SPEC, STALENESS_S, tree
from bench.sections import write_between
from jobqueue_devkit import binaries, keda_binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.keda_stack import KedaStack, start_keda_scaler
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LocalLoop, LoopSpec
from jobqueue_protocol import keys
from jobqueue_simulator import traces as sim_traces
from jobqueue_simulator.engine import Distribution, ServiceModel, SimConfig, simulate
from jobqueue_simulator.keda_model import KedaModel
from jobqueue_simulator.report import percentile
from jobqueue_simulator.scaledobject import KedaConfig, parse_scaled_object
from jobqueue_worker.producer import JobRequest, Producer

REPO = Path(__file__).resolve().parents[1]

BEGIN, END = "<!-- compare-keda:begin -->", "<!-- compare-keda:end -->"
CONCURRENCY = 10  # slots a worker pod, as in specs/bench
MAX_REPLICAS = 10  # 60 in specs/bench; 10 worker processes a side fit two cores
SERVICE = ServiceModel(Distribution.LOGNORMAL, 2.0, 0.5)  # each job's `sleep` seconds
TAIL_S = 45  # after the last arrival, inside the measured window
HPA_SYNC_S = 15  # the plane's HPA controller: Kubernetes' default
SAMPLE_EVERY_S = 1.0
SETTLE_TIMEOUT_S = 120.0
# The simulator's pod start-up for point 3: a worker process here starts and passes
# its 1 s readiness probe in about 2-3 s. Fixed before any run; not fitted to one.
SIM_STARTUP_S = 3.0


# ---------------------------------------------------------------- traces (pure)


@dataclass(frozen=True)
class Trace:
    """One short arrival trace: jobs a second, where the surge is and what it needs."""

    name: str
    description: str
    seed: int
    duration_s: int
    rate: Callable[[int], float]
    surge_at_s: int
    surge_rate: float
    #: A window with no arrivals (drain to zero and back), or None.
    idle: tuple[int, int] | None = None

    def rows(self) -> list[tuple[int, int]]:
        """(second, jobs arriving in it): Poisson counts from the trace's seed."""
        rng = random.Random(self.seed)
        return [(t, sim_traces.poisson(rng, self.rate(t))) for t in range(self.duration_s)]

    def services(self, jobs: int) -> list[float]:
        """Each job's sleep, in arrival order, from its own stream of the seed."""
        rng = random.Random(self.seed * 7919 + 1)
        return [round(SERVICE.draw(rng), 3) for _ in range(jobs)]

    @property
    def needed_replicas(self) -> int:
        """Pods whose slots cover the surge's arrival rate × mean service time."""
        return math.ceil(self.surge_rate * SERVICE.mean_s / CONCURRENCY - 1e-9)


TRACES: tuple[Trace, ...] = (
    Trace(
        "step",
        "2 jobs/s for 30 s, then 20 jobs/s until 3 min",
        21,
        180,
        lambda t: 20.0 if t >= 30 else 2.0,
        surge_at_s=30,
        surge_rate=20.0,
    ),
    Trace(
        "flash-crowd",
        "2 jobs/s; 40 jobs/s for 30 s at 30 s; 2 jobs/s until 3 min",
        22,
        180,
        lambda t: 40.0 if 30 <= t < 60 else 2.0,
        surge_at_s=30,
        surge_rate=40.0,
    ),
    Trace(
        "drain-and-back",
        "15 jobs/s for 60 s, nothing for 90 s, 15 jobs/s for 60 s",
        23,
        210,
        lambda t: 0.0 if 60 <= t < 150 else 15.0,
        surge_at_s=150,
        surge_rate=15.0,
        idle=(60, 150),
    ),
)


# ---------------------------------------------------------------- figures (pure)

Series = Sequence[tuple[float, int]]  # (seconds since the trace began, value), by time


def value_at(series: Series, t: float) -> int:
    """The step function's value at ``t`` (its first value before the first point)."""
    current = series[0][1] if series else 0
    for at, value in series:
        if at > t:
            break
        current = value
    return current


def integrate(series: Series, end_s: float) -> float:
    """Seconds × value of the step function over [first point, end_s]."""
    total = 0.0
    for (t, value), (next_t, _) in zip(series, [*series[1:], (end_s, 0)], strict=False):
        total += value * max(0.0, min(next_t, end_s) - t)
    return total


def changes(series: Series) -> list[tuple[float, int, int]]:
    """(time, from, to) at every change of value."""
    out = []
    for (_, before), (t, after) in itertools.pairwise(series):
        if after != before:
            out.append((t, before, after))
    return out


def direction_changes(values: Sequence[int]) -> int:
    """How often the value turns from going up to going down or back."""
    direction, flips = 0, 0
    for before, after in itertools.pairwise(values):
        if after == before:
            continue
        step = 1 if after > before else -1
        flips += direction not in (0, step)
        direction = step
    return flips


def first_time(series: Series, after_s: float, done: Callable[[int], bool]) -> float | None:
    """Seconds from ``after_s`` until the first point at or after it that is ``done``."""
    for t, value in series:
        if t >= after_s and done(value):
            return t - after_s
    return None


def startup_lags(wanted: Series, ready: Series) -> list[float]:
    """For each rise of ``wanted`` to n: seconds until ``ready`` reaches n (rises that
    are withdrawn or never met are left out). Write → Pods ready, all the way."""
    lags = []
    for t, before, n in changes(wanted):
        if n <= before:
            continue
        met = first_time(ready, t, functools.partial(operator.le, n))  # n <= v
        later_drop = first_time(wanted, t, functools.partial(operator.gt, n))  # v < n
        if met is not None and (later_drop is None or met <= later_drop):
            lags.append(met)
    return lags


@dataclass(frozen=True)
class Waits:
    p50_s: float
    p95_s: float
    max_s: float
    started: int
    unstarted: int
    redelivered: int


def wait_figures(records: Sequence[tuple[float | None, float | None, int]]) -> Waits:
    """From (enqueued_at, started_at, deliveries) per job: nearest-rank percentiles."""
    waits = sorted(s - e for e, s, _ in records if e is not None and s is not None)
    return Waits(
        p50_s=percentile(waits, 50),
        p95_s=percentile(waits, 95),
        max_s=waits[-1] if waits else 0.0,
        started=len(waits),
        unstarted=sum(1 for e, s, _ in records if s is None),
        redelivered=sum(1 for *_, d in records if d > 1),
    )


@dataclass(frozen=True)
class Agreement:
    """How far the model's replica timeline is from the measured one."""

    #: The largest replica gap left after allowing ``window_s`` either way.
    max_gap: int
    #: Seconds where the gap is within ``tolerance``, over all seconds compared.
    share_within: float
    window_s: float
    tolerance: int

    @property
    def agrees(self) -> bool:
        return self.max_gap <= self.tolerance


def agreement(
    measured: Series, model: Series, end_s: float, window_s: float = 15.0, tolerance: int = 1
) -> Agreement:
    """Both ways, on a 1 s grid: for each second of one timeline, the nearest value
    of the other within ``window_s`` either side; the gap is the worst of those."""
    grid = range(math.floor(end_s) + 1)
    a = [value_at(measured, t) for t in grid]
    b = [value_at(model, t) for t in grid]
    w = math.floor(window_s)
    gaps = []
    for t in grid:
        lo, hi = max(0, t - w), min(len(grid), t + w + 1)
        gaps.append(
            max(
                min(abs(a[t] - x) for x in b[lo:hi]),
                min(abs(b[t] - x) for x in a[lo:hi]),
            )
        )
    within = sum(1 for g in gaps if g <= tolerance)
    return Agreement(max(gaps, default=0), within / len(gaps), window_s, tolerance)


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


# ---------------------------------------------------------------- one measured run


@dataclass
class Sample:
    t: float
    spec_replicas: int
    ready: int
    pods: int
    waiting: int
    in_flight: int


@dataclass
class Run:
    """One autoscaler on one trace, as measured."""

    who: str
    samples: list[Sample] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    records: list[tuple[float | None, float | None, int]] = field(default_factory=list)
    end_s: float = 0.0
    missed: list[str] = field(default_factory=list)  # samples lost to a failed snapshot

    def series(self, what: str = "spec_replicas") -> list[tuple[float, int]]:
        return [(s.t, int(getattr(s, what))) for s in self.samples]

    @property
    def waits(self) -> Waits:
        return wait_figures(self.records)

    @property
    def replica_seconds(self) -> float:
        return integrate(self.series(), self.end_s)

    @property
    def pod_seconds(self) -> float:
        return integrate(self.series("pods"), self.end_s)

    @property
    def flips(self) -> int:
        return direction_changes([v for _, v in self.series()])

    @property
    def peak(self) -> int:
        return max((s.spec_replicas for s in self.samples), default=0)

    @property
    def startup_median_s(self) -> float | None:
        lags = sorted(startup_lags(self.series(), self.series("ready")))
        return percentile(lags, 50) if lags else None

    def first_scale_up_s(self, trace: Trace) -> float | None:
        series = self.series()
        before = value_at(series, trace.surge_at_s)
        return first_time(series, trace.surge_at_s, lambda v: v > before)

    def capacity_s(self, trace: Trace) -> float | None:
        need = trace.needed_replicas
        return first_time(self.series("ready"), trace.surge_at_s, lambda v: v >= need)


@dataclass
class TraceResult:
    trace: Trace
    ours: Run | None = None
    keda: Run | None = None
    model: list[tuple[float, int]] = field(default_factory=list)
    error: str = ""
    #: The machine's 1-min load average when the trace began and ended (context only).
    load: tuple[float, float] | None = None

    @property
    def agreement(self) -> Agreement | None:
        if self.keda is None or not self.keda.samples:
            return None
        return agreement(self.keda.series(), self.model, self.keda.end_s, HPA_SYNC_S, 1)


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


def loop_spec(namespace: str, queue: str, jobqueue_fields: dict[str, Any]) -> LoopSpec:
    return LoopSpec(
        namespace=namespace,
        name="bench",
        queue=queue,
        min_replicas=0,
        max_replicas=MAX_REPLICAS,
        worker_concurrency=CONCURRENCY,
        worker_grace_s=GRACE_S,
        jobqueue_extra=jobqueue_fields,
    )


async def _sample(loop: LocalLoop, run: Run, t0: float, stop: asyncio.Event) -> None:
    """One snapshot a second (Deployment, Pods, queue) until ``stop``."""
    tick = 0
    while not stop.is_set():
        try:
            snap = await loop.snapshot()
        except DevkitError:
            raise  # the operator exited: this run measures nothing
        except Exception as exc:  # a slow API answer costs one sample, not the run
            run.missed.append(f"{time.monotonic() - t0:.0f}s {type(exc).__name__}")
        else:
            run.samples.append(
                Sample(
                    time.monotonic() - t0,
                    snap.spec_replicas,
                    snap.ready_replicas,
                    snap.pods,
                    snap.stats.waiting,
                    snap.stats.in_flight,
                )
            )
        tick += 1
        delay = t0 + tick * SAMPLE_EVERY_S - time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, delay))


async def _replay(redis_url: str, trace: Trace, runs: dict[str, Run], t0: float) -> None:
    """The trace's jobs, at their second, into every queue in one round trip."""
    rows = trace.rows()
    services = trace.services(sum(n for _, n in rows))
    i = 0
    async with Producer(redis_url) as producer:
        for t, count in rows:
            await asyncio.sleep(max(0.0, t0 + t - time.monotonic()))
            if not count:
                continue
            batch = services[i : i + count]
            i += count
            reqs = [
                JobRequest(type="sleep", payload={"seconds": s}, queue=queue)
                for queue in runs
                for s in batch
            ]
            ids = await producer.enqueue_many(reqs)
            for k, run in enumerate(runs.values()):
                run.job_ids += ids[k * count : (k + 1) * count]


async def _records(
    redis_url: str, queue: str, ids: list[str]
) -> list[tuple[float | None, float | None, int]]:
    out: list[tuple[float | None, float | None, int]] = []
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(keys.job_key(queue, job_id), "enqueued_at", "started_at", "deliveries")
        for enq, started, deliveries in await pipe.execute():
            out.append(
                (
                    int(enq) / 1000 if enq else None,
                    int(started) / 1000 if started else None,
                    int(deliveries or 0),
                )
            )
    finally:
        await client.aclose()
    return out


async def _touch_queues(redis_url: str, queues: list[str]) -> None:
    """Make each queue known to Redis (one job enqueued, then removed) before the clock
    starts, as the real-KEDA tests do: our scaler answers an error for a queue no job
    was ever enqueued to, and neither side should start from an error."""
    async with Producer(redis_url) as producer:
        await producer.enqueue_many([JobRequest(type="noop", queue=q) for q in queues])
    client = aioredis.Redis.from_url(redis_url)
    try:
        for queue in queues:
            await client.delete(*keys.ready_keys(queue))
    finally:
        await client.aclose()


async def _settle(ours: LocalLoop, keda: LocalLoop, plane: ControlPlane, namespace: str) -> None:
    """Until the operator has reported on its JobQueue and KEDA has made its HPA."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        snap = await ours.snapshot()
        await keda.snapshot()
        hpa = plane.kubectl("get", "hpa", "-n", namespace, "-o", "name")
        if snap.desired is not None and "keda-hpa-" in hpa:
            return
        await asyncio.sleep(1.0)
    raise TimeoutError(
        f"neither settled within {SETTLE_TIMEOUT_S:.0f}s (operator status, KEDA HPA)"
    )


async def run_trace(
    plane: ControlPlane, redis_server: RedisServer, scaler_address: str, trace: Trace, workdir: Path
) -> tuple[Run, Run]:
    """Both autoscalers side by side on one trace; their namespaces are new each time."""
    shipped = yaml.safe_load(KEDA_TUNED.read_text())
    fields = our_jobqueue_fields(yaml.safe_load(SPEC.read_text()), MAX_REPLICAS)
    ours_ns, keda_ns = f"cmp-{trace.name}-ours", f"cmp-{trace.name}-keda"
    runs = {ours_ns: Run("ours"), keda_ns: Run("KEDA")}  # namespace = queue name
    so = real_scaled_object(
        shipped,
        namespace=keda_ns,
        deployment="bench-worker",
        scaler_address=scaler_address,
        queue=keda_ns,
        max_replicas=MAX_REPLICAS,
    )
    so_file = workdir / f"{keda_ns}-scaledobject.json"
    so_file.parent.mkdir(parents=True, exist_ok=True)
    so_file.write_text(json.dumps(so, indent=1))
    ours = LocalLoop(plane, redis_server, loop_spec(ours_ns, ours_ns, fields), workdir / "ours")
    keda = LocalLoop(
        plane, redis_server, loop_spec(keda_ns, keda_ns, fields), workdir / "keda", jobqueue=False
    )
    await _touch_queues(redis_server.url, list(runs))
    async with contextlib.AsyncExitStack() as stack:
        for loop in (ours, keda):
            # Stopped even when its start fails half-way (the operator may be running).
            stack.push_async_exit(loop.__aexit__)
            await loop.__aenter__()
        stack.callback(
            plane.kubectl, "delete", "-f", str(so_file), "--ignore-not-found", "--wait=false"
        )
        plane.kubectl("apply", "-f", str(so_file))
        await _settle(ours, keda, plane, keda_ns)
        t0 = time.monotonic()
        stop = asyncio.Event()
        samplers = [
            asyncio.create_task(_sample(ours, runs[ours_ns], t0, stop)),
            asyncio.create_task(_sample(keda, runs[keda_ns], t0, stop)),
        ]
        try:
            await _replay(redis_server.url, trace, runs, t0)
            await asyncio.sleep(max(0.0, t0 + trace.duration_s + TAIL_S - time.monotonic()))
        finally:
            stop.set()
            outcomes = await asyncio.gather(*samplers, return_exceptions=True)
        for failed in outcomes:
            if isinstance(failed, BaseException):
                raise failed
        for queue, run in runs.items():
            run.end_s = float(trace.duration_s + TAIL_S)
            run.records = await _records(redis_server.url, queue, run.job_ids)
    for ns in runs:
        with contextlib.suppress(Exception):
            plane.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
    return runs[ours_ns], runs[keda_ns]


# ---------------------------------------------------------------- the whole run


@dataclass
class Outcome:
    results: list[TraceResult]
    keda_version: str
    setup_error: str = ""
    seconds: float = 0.0
    commit: str = ""


async def run_all(selected: Sequence[Trace], workdir: Path) -> Outcome:
    shipped = yaml.safe_load(KEDA_TUNED.read_text())
    config = model_config(shipped, MAX_REPLICAS, HPA_SYNC_S)
    results = [TraceResult(t, model=model_timeline(t, config)) for t in selected]
    outcome = Outcome(results, keda_binaries.KEDA_VERSION)
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
                    plane, redis_server, scaler.address, result.trace, workdir / result.trace.name
                )
            except Exception as exc:
                traceback.print_exc()
                result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            result.load = (load_before, os.getloadavg()[0])
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


# ---------------------------------------------------------------- the section


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
        "| real write → Pods ready, median |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for r in results:
        a = r.agreement
        if a is None or r.keda is None:
            lines.append(
                f"| {r.trace.name} | not measured | {_timeline(r.model)} | – | – | – | – |"
            )
            continue
        lag = r.keda.startup_median_s
        lines.append(
            f"| {r.trace.name} | {_timeline(r.keda.series())} | {_timeline(r.model)} | "
            f"{a.max_gap} | {a.share_within:.0%} | {'yes' if a.agrees else '**no**'} | "
            + ("–" if lag is None else f"{lag:.0f} s")
            + " |"
        )
    return lines


def render(outcome: Outcome) -> str:
    measured = [r for r in outcome.results if r.ours is not None and r.keda is not None]
    lines = [
        "## Scaling: the operator against real KEDA (measured)",
        "",
        f"Written by `make compare-keda` (`python -m bench.compare_keda`) in "
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
        f"{MAX_REPLICAS} (60 there). **KEDA**: `specs/bench/keda-tuned.yaml` as shipped "
        "(waiting + in-flight, target 8 = 80 % of a pod, pollingInterval 15 s, "
        f"cooldownPeriod 300 s, HPA default behaviour) with maxReplicaCount {MAX_REPLICAS}, "
        "its two metrics-api triggers and `scalingModifiers` formula replaced by one "
        "`external` trigger on `jobqueue-operator keda-scaler` whose `backlog` metric is the "
        "same sum (`targetBacklogPerReplica` 8, `activationBacklog` 0); KEDA's own `redis` "
        "trigger cannot read our sorted-set queues.",
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
        f"bench's world except start-up: fixed {SIM_STARTUP_S:g} s (a worker process here, "
        f"set before the run, not fitted), actuation {ACTUATION_S:g} s, figures "
        f"{STALENESS_S:g} s old, grace {GRACE_S:g} s. They agree when, at every second, each "
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
        "Reproduce: `make keda` once (builds KEDA, 10-20 min cold), then `make compare-keda`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--traces", default=",".join(t.name for t in TRACES))
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    args = parser.parse_args(argv)
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
        return await run_all(selected, workdir)

    try:
        outcome = asyncio.run(_main())
    except asyncio.CancelledError:
        print(f"interrupted; everything started was stopped; logs in {workdir}")
        return 130
    outcome.seconds, outcome.commit = time.perf_counter() - started, tree()
    section = render(outcome)
    print(section)
    if not args.no_write:
        write_between(Path(args.output), BEGIN, END, section)
        print(f"wrote the compare-keda section of {args.output}")
    if args.keep or outcome.setup_error or any(r.error for r in outcome.results):
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
