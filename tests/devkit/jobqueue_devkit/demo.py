"""`make demo`: watch a queue fill, workers appear, the queue drain, workers go away.

Everything is real: a control plane built from Go modules, redis-server, the
`jobqueue-operator` process under its own ServiceAccount, worker processes for
the Deployment's Pods (run by the development pod runner), and jobs enqueued
through the producer API. Ctrl-C at any point stops and removes all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from jobqueue_devkit import binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import LocalLoop, LoopSpec, Snapshot
from jobqueue_worker.producer import JobRequest, Producer

console = Console()
BATCH = 500


@dataclass
class DemoOptions:
    jobs: int = 3000
    job_seconds: float = 0.2
    failing_jobs: int = 20
    # Short cooldowns so the whole cycle fits in a couple of minutes on screen.
    spec: LoopSpec = field(
        default_factory=lambda: LoopSpec(scale_down_cooldown_s=10, scale_down_step=2)
    )
    timeout_s: float = 600.0


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    peak_replicas: int = 0
    drained_after_s: float | None = None
    replicas: list[int] = field(default_factory=list)


def render(snap: Snapshot, tally: Tally, spec: LoopSpec) -> Table:
    stats, status = snap.stats, snap.jobqueue_status
    table = Table(title=f"JobQueue {spec.namespace}/{spec.name}", show_header=False, expand=False)
    table.add_column(style="bold cyan")
    table.add_column()
    counters = stats.counters
    busy = sum(1 for w in stats.workers if w.state == "busy")
    table.add_row("waiting / in flight", f"{stats.waiting} / {stats.in_flight}")
    table.add_row("oldest waiting job", f"{stats.oldest_age_s():.1f} s")
    table.add_row(
        "replicas desired / spec / ready",
        f"{snap.desired if snap.desired is not None else '-'} / {snap.spec_replicas} / "
        f"{snap.ready_replicas}  (min {spec.min_replicas}, max {spec.max_replicas})",
    )
    table.add_row("worker processes (busy)", f"{snap.pods} ({busy})")
    table.add_row(
        "jobs completed / retried / dead",
        f"{counters.get('completed', 0)} / {counters.get('retried', 0)} / {stats.dead}",
    )
    table.add_row("last action", f"{status.get('lastAction', '-')}: {status.get('lastReason', '')}")
    table.add_row("elapsed", f"{time.monotonic() - tally.started:.0f} s")
    return table


async def enqueue_burst(redis_url: str, options: DemoOptions) -> None:
    spec = options.spec
    requests = [
        JobRequest(type="sleep", payload={"seconds": options.job_seconds})
        for _ in range(options.jobs - options.failing_jobs)
    ] + [JobRequest(type="fail_n_times", payload={"n": 2}) for _ in range(options.failing_jobs)]
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    async with Producer(redis_url, default_queue=spec.queue) as producer:
        with progress:
            task = progress.add_task(f"enqueue into {spec.queue!r}", total=len(requests))
            for i in range(0, len(requests), BATCH):
                chunk = requests[i : i + BATCH]
                await producer.enqueue_many(chunk)
                progress.advance(task, len(chunk))


async def watch(loop: LocalLoop, options: DemoOptions, tally: Tally) -> Snapshot:
    """Refresh the table until the queue is empty and the replicas are back at min."""
    spec = options.spec
    deadline = time.monotonic() + options.timeout_s
    snap = await loop.snapshot()
    with Live(render(snap, tally, spec), console=console, refresh_per_second=4) as live:
        while time.monotonic() < deadline:
            snap = await loop.snapshot()
            tally.peak_replicas = max(tally.peak_replicas, snap.spec_replicas)
            if not tally.replicas or tally.replicas[-1] != snap.spec_replicas:
                tally.replicas.append(snap.spec_replicas)
            empty = (
                snap.stats.waiting == 0 and snap.stats.in_flight == 0 and snap.stats.delayed == 0
            )
            if empty and tally.drained_after_s is None:
                tally.drained_after_s = time.monotonic() - tally.started
            live.update(render(snap, tally, spec))
            if empty and snap.spec_replicas == spec.min_replicas and snap.pods == spec.min_replicas:
                return snap
            await asyncio.sleep(0.5)
    console.print(f"[yellow]stopped watching after {options.timeout_s:.0f}s[/yellow]")
    return snap


def summary(snap: Snapshot, tally: Tally, options: DemoOptions) -> Panel:
    counters = snap.stats.counters
    lines = [
        f"jobs enqueued:      {options.jobs}",
        f"jobs completed:     {counters.get('completed', 0)}",
        f"retries:            {counters.get('retried', 0)}",
        f"dead-lettered:      {snap.stats.dead}",
        f"peak replicas:      {tally.peak_replicas} (max {options.spec.max_replicas})",
        f"time to drain:      {tally.drained_after_s:.1f} s"
        if tally.drained_after_s
        else "time to drain: -",
        f"back at min after:  {time.monotonic() - tally.started:.1f} s",
        "replicas over time: " + " -> ".join(str(r) for r in tally.replicas),
    ]
    return Panel("\n".join(lines), title="demo summary", expand=False)


async def run_demo(options: DemoOptions) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jq-demo-"))
    plane: ControlPlane | None = None
    redis_server: RedisServer | None = None
    try:
        with console.status(
            "starting the local control plane (etcd, kube-apiserver, controller manager)"
        ):
            plane = ControlPlane(binaries.ensure_binaries(), workdir=workdir / "plane").start()
        with console.status("starting redis-server"):
            redis_server = RedisServer(workdir=workdir / "redis").start()
        console.print(f"control plane {plane.server}; kubeconfig {plane.kubeconfig}")
        console.print(f"redis {redis_server.url}; logs under {workdir}")
        async with LocalLoop(plane, redis_server, options.spec, workdir / "loop") as loop:
            with console.status("operator and first worker starting"):
                for _ in range(120):
                    snap = await loop.snapshot()
                    if (
                        snap.ready_replicas >= options.spec.min_replicas
                        and snap.desired is not None
                    ):
                        break
                    await asyncio.sleep(0.5)
            tally = Tally()
            await enqueue_burst(redis_server.url, options)
            snap = await watch(loop, options, tally)
            console.print(summary(snap, tally, options))
        return 0
    finally:
        with console.status("cleaning up"):
            if redis_server is not None:
                redis_server.cleanup()
            if plane is not None:
                plane.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def main(jobs: int = 3000) -> int:
    """Run the demo; SIGINT and SIGTERM cancel it and the finally blocks clean up."""

    async def _main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await run_demo(DemoOptions(jobs=jobs))

    with contextlib.suppress(asyncio.CancelledError):
        return asyncio.run(_main())
    console.print("[yellow]interrupted: everything the demo started has been stopped[/yellow]")
    return 130
