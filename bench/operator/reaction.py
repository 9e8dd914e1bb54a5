"""Reaction time: threshold crossed → new replica count visible through the API.

Each trial has its own JobQueue (min 1, max 2, scale-up at ``THRESHOLD`` waiting
jobs, no cooldowns) and Deployment, created together before the trials of an
interval and deleted after them. One JobQueue reused trial after trial would
have to scale back down and then up again, and the policy never reverses the
direction of the count within 60 s of its last change (``timing.DIRECTION_DWELL_S``,
whatever the cooldowns): every trial would wait out that dwell twice. A trial:

1. its Deployment is at 1 replica and its queue holds ``THRESHOLD - 1`` jobs
   (within the hysteresis band, so the operator holds), for longer than a poll;
2. a random pause of U(0, interval) so the crossing lands at a random phase of
   the operator's poll cycle (otherwise every trial would hit the same phase);
3. ``t0``: the enqueue of the one job that crosses the threshold *returns*;
4. ``t1``: the benchmark's own watch on the Deployment delivers ``spec.replicas == 2``.

The JobQueue named ``NAME`` stays for the cost window, which wants one quiet
JobQueue. The watch runs as admin in the benchmark process, so ``t1 - t0``
includes the operator's wait for its next poll, its Redis read, its reads of
``/scale`` and the conflict lists, the ``/scale`` write and the watch delivery
back to us.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from kubernetes_asyncio import client, watch

from bench.operator.env import BenchEnv
from jobqueue_devkit.stack import LoopSpec

NAME = "react"
QUEUE = NAME  # every reaction JobQueue's queue has its name
THRESHOLD = 10


def reaction_spec(namespace: str, interval_s: int, name: str = NAME) -> LoopSpec:
    """A trial's JobQueue (see the module docstring); its queue has its name."""
    return LoopSpec(
        namespace=namespace,
        name=name,
        queue=name,
        min_replicas=1,
        max_replicas=2,
        polling_interval_s=interval_s,
        scale_up_depth=THRESHOLD,
        scale_up_latency_s=3600.0,  # depth alone decides; the jobs never get that old
        scale_up_cooldown_s=0,
        scale_up_max_step=1,
        scale_down_depth=1,  # THRESHOLD - 1 waiting jobs sit in the band: hold
        scale_down_latency_s=1800.0,
        scale_down_cooldown_s=0,
        scale_down_step=1,
    )


class ReplicaWatch:
    """Follows one Deployment's ``spec.replicas`` with a watch, timestamping each change."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self._apps = client.AppsV1Api(api)
        self._namespace, self._name = namespace, name
        self.replicas: int | None = None
        self.seen_at = 0.0  # time.monotonic() when ``replicas`` was delivered
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplicaWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:  # a watch ends after timeout_seconds; start a new one
            w = watch.Watch()
            try:
                async with w.stream(
                    self._apps.list_namespaced_deployment,
                    self._namespace,
                    field_selector=f"metadata.name={self._name}",
                    timeout_seconds=120,
                ) as stream:
                    async for event in stream:
                        now = time.monotonic()
                        obj = event["object"]
                        replicas = int(obj.spec.replicas or 0)
                        if replicas != self.replicas:
                            async with self._changed:
                                self.replicas, self.seen_at = replicas, now
                                self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped watch is re-established; the trial's timeout guards
                await asyncio.sleep(0.2)

    async def wait_for(self, replicas: int, timeout_s: float) -> float:
        """Wait until ``spec.replicas == replicas``; returns when that was delivered."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: self.replicas == replicas)
            return self.seen_at


@dataclass
class Trial:
    """One threshold crossing."""

    interval_s: int
    reaction_s: float
    phase_delay_s: float


def trial_names(interval_s: int, trials: int) -> list[str]:
    return [f"{NAME}-{interval_s}s-{i}" for i in range(trials)]


async def run_trials(
    env: BenchEnv, interval_s: int, trials: int, rng: random.Random
) -> list[Trial]:
    """``trials`` crossings at ``interval_s``, each on a JobQueue of its own."""
    timeout_s = 3 * interval_s + 20
    names = trial_names(interval_s, trials)
    await env.create_loops(reaction_spec(env.namespace, interval_s, n) for n in names)
    await env.enqueue(dict.fromkeys(names, THRESHOLD - 1))
    out: list[Trial] = []
    try:
        for name in names:
            async with ReplicaWatch(env.api, env.namespace, f"{name}-worker") as rw:
                await rw.wait_for(1, timeout_s)
                if not out:
                    # Every loop has polled since the jobs arrived, and holds.
                    await asyncio.sleep(interval_s + 1)
                env.check_operator()
                delay = rng.uniform(0, interval_s)
                await asyncio.sleep(delay)
                await env.enqueue({name: 1})
                t0 = time.monotonic()
                t1 = await rw.wait_for(2, timeout_s)
            out.append(Trial(interval_s, t1 - t0, delay))
            print(f"  interval {interval_s}s trial {len(out)}/{trials}: {t1 - t0:.3f}s", flush=True)
    finally:
        for name in names:
            await env.drain(name)
        await env.delete_loops(names)
    return out


async def setup(env: BenchEnv, interval_s: int) -> None:
    """Create the reaction JobQueue and Deployment at ``interval_s``."""
    await env.create_loops([reaction_spec(env.namespace, interval_s)])


def summary(trials: list[Trial]) -> dict[str, Any]:
    """Median, max, min and mean of the reaction times, plus the raw trials."""
    times = [t.reaction_s for t in trials]
    return {
        "trials": len(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
        "min_s": min(times),
        "mean_s": statistics.fmean(times),
        "raw": [asdict(t) for t in trials],
    }
