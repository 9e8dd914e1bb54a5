"""One measured run of compare-keda: both autoscalers side by side on one trace.

The devkit's control plane, one ``redis-server`` and the dev pod runner's worker
processes; a producer replays the trace into both queues, a sampler reads each
side once a second, and every job's record is read back from Redis at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from kubernetes_asyncio import client

from bench.keda_figures import (
    Agreement,
    Waits,
    agreement,
    direction_changes,
    first_time,
    integrate,
    startup_lags,
    value_at,
    wait_figures,
)
from bench.keda_objects import ModelRun, our_jobqueue_fields, variant_scaled_object
from bench.keda_traces import (
    CONCURRENCY,
    HPA_SYNC_S,
    MAX_REPLICAS,
    SAMPLE_EVERY_S,
    SETTLE_TIMEOUT_S,
    TAIL_S,
    Trace,
)
from bench.operator import _paths  # noqa: F401  (puts the devkit and sources on sys.path)
from bench.scaling import GRACE_S, SPEC
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LocalLoop, LoopSpec
from jobqueue_protocol import keys
from jobqueue_simulator.report import percentile
from jobqueue_worker.producer import JobRequest, Producer

DEPLOYMENT = "bench-worker"  # LoopSpec name "bench": its worker Deployment

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
class HpaSample:
    """KEDA's HPA and ScaledObject as the API shows them at ``t`` (the KEDA side only)."""

    t: float
    #: status.desiredReplicas and status.currentReplicas (None before the first sync).
    desired: int | None
    current: int | None
    #: status.currentMetrics: the average value per current replica the last sync read.
    metric_average: float | None
    last_scale_time: str | None
    #: The ScaledObject's Active condition ("True", "False" or None).
    active: str | None


@dataclass
class Run:
    """One autoscaler on one trace, as measured."""

    who: str
    samples: list[Sample] = field(default_factory=list)
    hpa: list[HpaSample] = field(default_factory=list)
    #: The HPA as KEDA made it (its spec, behaviour included) and the namespace's events.
    hpa_object: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: KEDA side: how long before the trace began its ScaledObject was created.
    started_before_s: float | None = None
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
    model_run: ModelRun | None = None
    error: str = ""
    #: The machine's 1-min load average when the trace began and ended (context only).
    load: tuple[float, float] | None = None

    @property
    def agreement(self) -> Agreement | None:
        if self.keda is None or not self.keda.samples:
            return None
        return agreement(self.keda.series(), self.model, self.keda.end_s, HPA_SYNC_S, 1)


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


def quantity(text: str | None) -> float | None:
    """A Kubernetes quantity as the HPA writes metric values ("12", "12500m", "1.5k")."""
    if text is None:
        return None
    scale = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if text[-1:] in scale:
        return float(text[:-1]) * scale[text[-1]]
    return float(text)


async def _read_hpa(api: client.ApiClient, namespace: str, t0: float) -> HpaSample:
    hpa = await client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(
        f"keda-hpa-{DEPLOYMENT}", namespace
    )
    so = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", DEPLOYMENT
    )
    status = hpa.status
    metrics = status.current_metrics or []
    external = metrics[0].external if metrics else None
    average = external.current.average_value if external and external.current else None
    conditions = (so.get("status") or {}).get("conditions") or []
    active = next((c.get("status") for c in conditions if c.get("type") == "Active"), None)
    return HpaSample(
        time.monotonic() - t0,
        status.desired_replicas,
        status.current_replicas,
        quantity(average),
        status.last_scale_time.isoformat() if status.last_scale_time else None,
        active,
    )


async def _sample(
    loop: LocalLoop,
    run: Run,
    t0: float,
    stop: asyncio.Event,
    hpa: tuple[client.ApiClient, str] | None = None,
) -> None:
    """One snapshot a second (Deployment, Pods, queue; KEDA's HPA) until ``stop``."""
    tick = 0
    while not stop.is_set():
        if hpa is not None:
            with contextlib.suppress(Exception):  # a missed HPA read leaves a gap, no more
                run.hpa.append(await _read_hpa(*hpa, t0))
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


async def _kube_objects(plane: ControlPlane, namespace: str, run: Run) -> None:
    """KEDA's HPA and the namespace's events, kept with the run (best effort)."""
    with contextlib.suppress(Exception):
        hpa = json.loads(plane.kubectl("get", "hpa", "-n", namespace, "-o", "json"))
        run.hpa_object = (hpa.get("items") or [{}])[0]
    with contextlib.suppress(Exception):
        events = json.loads(plane.kubectl("get", "events", "-n", namespace, "-o", "json"))
        run.events = [
            {
                "time": e.get("eventTime") or e.get("lastTimestamp") or e.get("firstTimestamp"),
                "first": e.get("firstTimestamp"),
                "last": e.get("lastTimestamp"),
                "count": e.get("count"),
                "kind": (e.get("involvedObject") or {}).get("kind"),
                "reason": e.get("reason"),
                "message": e.get("message"),
            }
            for e in events.get("items") or []
        ]


async def run_trace(
    plane: ControlPlane,
    redis_server: RedisServer,
    scaler_address: str,
    trace: Trace,
    workdir: Path,
    *,
    variant: str = "tuned",
) -> tuple[Run, Run]:
    """Both autoscalers side by side on one trace; their namespaces are new each time."""
    fields = our_jobqueue_fields(yaml.safe_load(SPEC.read_text()), MAX_REPLICAS)
    ours_ns, keda_ns = f"cmp-{trace.name}-ours", f"cmp-{trace.name}-keda"
    runs = {ours_ns: Run("ours"), keda_ns: Run("KEDA")}  # namespace = queue name
    so = variant_scaled_object(
        variant,
        namespace=keda_ns,
        deployment=DEPLOYMENT,
        scaler_address=scaler_address,
        redis_address=f"{redis_server.host}:{redis_server.port}",
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
        applied = time.monotonic()  # KEDA starts its poll and makes the HPA at once
        await _settle(ours, keda, plane, keda_ns)
        api = client.ApiClient()
        stack.push_async_callback(api.close)
        t0 = time.monotonic()
        runs[keda_ns].started_before_s = t0 - applied
        stop = asyncio.Event()
        samplers = [
            asyncio.create_task(_sample(ours, runs[ours_ns], t0, stop)),
            asyncio.create_task(_sample(keda, runs[keda_ns], t0, stop, (api, keda_ns))),
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
        await _kube_objects(plane, keda_ns, runs[keda_ns])
    for ns in runs:
        with contextlib.suppress(Exception):
            plane.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
    return runs[ours_ns], runs[keda_ns]
