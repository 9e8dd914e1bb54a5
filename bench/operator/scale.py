"""Operator CPU and memory with N JobQueues, each with a real Deployment and real queue keys.

Per scale point: a fresh control plane, Redis and operator (see ``env.bench_env``);
N Deployments (min 1 replica, Pods stay Pending) and N JobQueues created with
bounded concurrency; ``JOBS_PER_QUEUE`` no-op jobs enqueued on each JobQueue's own
queue (inside the hysteresis band, so nothing scales and the steady-state cost is
what is measured); then wait until every JobQueue has reported status at least
once, and measure over a fixed window:

* operator CPU time (user + system, from the kernel) / window = fraction of a core,
  and the time its threads were runnable but waiting for a CPU (schedstat), since
  the 2 cores are shared and "used 0.4 cores" can mean "wanted more";
* RSS sampled every 0.5 s (window peak, and its least-squares slope over the window:
  a leak shows as a steady rise, a healthy operator as a flat line with noise) and
  ``VmHWM`` (lifetime peak, includes start-up);
* polls, Redis round trips and API requests over the same window (``cost.measure``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from bench.operator import cost, profile
from bench.operator.env import BenchEnv
from bench.operator.probes import ProcessSampler
from jobqueue_devkit.stack import LoopSpec

JOBS_PER_QUEUE = 3
STATUS_TIMEOUT_S = 600.0


def scale_spec(namespace: str, index: int, interval_s: int) -> LoopSpec:
    """JobQueue number ``index``: its own queue and Deployment; holds with a few jobs waiting."""
    return LoopSpec(
        namespace=namespace,
        name=f"jq-{index:04d}",
        queue=f"bench-{index:04d}",
        min_replicas=1,
        max_replicas=2,
        polling_interval_s=interval_s,
        scale_up_depth=100,
        scale_up_latency_s=3600.0,
        scale_up_cooldown_s=0,
        scale_up_max_step=1,
        scale_down_depth=1,  # JOBS_PER_QUEUE waiting jobs sit in the band: hold
        scale_down_latency_s=1800.0,
        scale_down_cooldown_s=0,
        scale_down_step=1,
    )


async def wait_all_reported(env: BenchEnv, count: int, timeout_s: float) -> tuple[float, int, int]:
    """Wait until ``count`` JobQueues carry a status written by the operator, at most ``timeout_s``.

    Returns (seconds waited, JobQueues with a status, JobQueues whose status holds a
    Redis observation). A status without an observation is a report too: the
    operator ran a tick and said why it could not read Redis (that count is kept
    so the report can say so). A timeout is not an error: the point is then
    measured as it is and the report says how many had reported.
    """
    started = time.monotonic()
    reported = observed = 0
    while time.monotonic() - started < timeout_s:
        env.check_operator()
        statuses = [jq.get("status") or {} for jq in await env.list_jobqueues()]
        reported = sum(1 for st in statuses if st.get("observedGeneration") is not None)
        observed = sum(1 for st in statuses if st.get("observed"))
        if reported >= count:
            break
        print(f"  {reported}/{count} JobQueues have reported status", flush=True)
        await asyncio.sleep(5)
    return time.monotonic() - started, reported, observed


async def run_point(
    env: BenchEnv,
    count: int,
    interval_s: int,
    window_s: float,
    *,
    profile_s: float = 0.0,
    status_timeout_s: float = STATUS_TIMEOUT_S,
) -> dict[str, Any]:
    """Set up ``count`` JobQueues on a fresh environment and measure one window.

    With ``profile_s`` > 0, py-spy then samples the operator for that long, in a
    second window, so the profiler's own cost stays out of the measured one.
    """
    specs = [scale_spec(env.namespace, i, interval_s) for i in range(count)]
    t = time.monotonic()
    await env.create_loops(specs)
    create_s = time.monotonic() - t
    await env.enqueue({s.queue: JOBS_PER_QUEUE for s in specs})
    print(f"  created {count} Deployments + JobQueues in {create_s:.1f}s", flush=True)
    report_s, reported, observed = await wait_all_reported(env, count, status_timeout_s)
    # Let the first burst of daemon starts and finalizer patches settle into steady state.
    await asyncio.sleep(2 * interval_s)
    sampler = ProcessSampler(env.operator.pid)
    cpu0 = sampler.cpu_seconds()
    wait0 = sampler.run_delay_seconds()
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    costs, _ = await asyncio.gather(
        cost.measure(env, window_s, count), sampler.sample_for(window_s)
    )
    wall = time.monotonic() - t0
    cpu = sampler.cpu_seconds() - cpu0
    wait1 = sampler.run_delay_seconds()
    run_delay = None if wait0 is None or wait1 is None else wait1 - wait0
    polls = costs["polls"]
    # The polls were counted between two scrapes, a shorter time than ``wall`` (which
    # holds every probe at both ends): per poll figures use that span.
    span = costs["counter_span_s"]
    hot_spots = None
    if profile_s > 0:
        print(f"  profiling the operator for {profile_s:g}s (py-spy)", flush=True)
        raw = await profile.record(
            env.operator.pid, profile_s, env.workdir / f"operator-{count}.collapsed"
        )
        hot_spots = profile.summarise(raw)
    return {
        "profile": hot_spots,
        "jobqueues": count,
        "interval_s": interval_s,
        "create_s": round(create_s, 1),
        "all_reported_after_s": round(report_s, 1),
        "reported_before_window": reported,
        "observed_redis_before_window": observed,
        "window_s": round(wall, 2),
        "cpu_seconds": round(cpu, 3),
        "cpu_cores": cpu / wall,
        "runnable_waiting_cores": None if run_delay is None else run_delay / wall,
        "loadavg_1m_start_end": (round(load0, 2), round(os.getloadavg()[0], 2)),
        "cpu_ms_per_poll": 1000 * (cpu / wall) * span / polls if polls else None,
        "rss_peak_window_mib": sampler.rss_peak / 2**20,
        "rss_peak_lifetime_mib": sampler.lifetime_peak_rss() / 2**20,
        "rss_median_window_mib": sorted(sampler.samples)[len(sampler.samples) // 2] / 2**20
        if sampler.samples
        else None,
        "rss_slope_mib_per_min": rss_slope_mib_per_min(sampler.sample_times, sampler.samples),
        # The heap grows in steps that come further apart as it settles: the second
        # half of a long window tells growth that continues from growth that stops.
        "rss_slope_second_half_mib_per_min": rss_slope_mib_per_min(
            *second_half(sampler.sample_times, sampler.samples)
        ),
        "achieved_interval_s": count * span / polls if polls else None,
        "redis_round_trips_per_jobqueue_per_poll": costs["redis_round_trips_per_poll"],
        "cost": costs,
    }


def second_half(times: list[float], samples: list[int]) -> tuple[list[float], list[int]]:
    """The samples taken in the second half of the window's time."""
    if not times:
        return [], []
    middle = (times[0] + times[-1]) / 2
    kept = [i for i, t in enumerate(times) if t >= middle]
    return [times[i] for i in kept], [samples[i] for i in kept]


def rss_slope_mib_per_min(times: list[float], samples: list[int]) -> float | None:
    """Least-squares slope of RSS (bytes) against time (seconds), in MiB a minute."""
    if len(samples) < 3:
        return None
    return statistics.linear_regression(times, samples).slope * 60 / 2**20
