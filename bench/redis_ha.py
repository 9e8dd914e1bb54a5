"""Our worker on Redis behind Sentinel and on a 3-shard Cluster, against standalone Redis.

Usage (from the repo root, with the project venv; the devkit starts the topologies)::

    make bench-redis-ha                                      # full run, writes BENCHMARKS.md
    make bench-redis-ha BENCH_REDIS_HA_ARGS=--quick          # smoke run
    PYTHONPATH=tests/devkit .venv/bin/python -m bench.redis_ha [--quick] [--jobs N] [--trials N]

One run starts, side by side on this machine: a standalone redis-server (bench/redis_server.py,
as bench.run), the devkit's Sentinel topology (1 master + 2 replicas + 3 sentinels; clients go
through ``redis+sentinel://``) and the devkit's Redis Cluster (3 masters + 3 replicas; clients
use ``redis+cluster://``). Every data node runs without persistence (the devkit's AOF is turned
off with CONFIG SET so all three match bench.run's Redis). Our worker is driven and measured by
bench/measure.py's Runner exactly as in bench.run (no-op jobs, concurrency 10, at-least-once
with leases): drains with 1 and 3 worker processes, then start latency at a fixed enqueue rate.

On the Cluster the jobs are dealt round-robin over three queues whose hash tags fall on the
three different masters (checked with CLUSTER KEYSLOT), and every worker serves all three
queues (one step call per queue, docs/redis-ha.md). Standalone is measured with one queue (the
baseline of Sentinel) and with the same three queues (the baseline of the Cluster), so each
ratio compares the same worker configuration. Per master: Redis CPU (INFO used_cpu_user +
used_cpu_sys) over the drain window divided by the jobs completed on that master's queues
(their ``completed`` counters), the split of jobs over the shards, and the jobs/s one shard
would carry with its Redis main thread at 100 % of one core (1 / CPU per job).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis
from redis.crc import key_slot

from bench import procs
from bench.envs import REPO_ROOT, cache_dir, project_env
from bench.measure import MeasureError, Runner, median_of
from bench.peers import BY_KEY
from bench.redis_server import RedisServer, RedisSnapshot
from bench.run import machine_meta
from bench.sections import write_between
from jobqueue_protocol.keys import counters_key

BEGIN = "<!-- redis-ha-bench:begin -->"
END = "<!-- redis-ha-bench:end -->"
SPLIT_TOLERANCE = 0.20
ONE_QUEUE = "benchq"
QUEUE_STEM = "bench"
COMPLETED = "completed"


# ---------------------------------------------------------------- pure parts (unit-tested)
def ratio(value: float | None, base: float | None) -> float | None:
    """value / base, or None when either is missing or the base is zero."""
    if value is None or base is None or base == 0:
        return None
    return value / base


def split_shares(jobs: Mapping[int, int]) -> dict[int, float]:
    """Each shard's share of the jobs (0..1); empty when no job ran."""
    total = sum(jobs.values())
    return {k: v / total for k, v in jobs.items()} if total > 0 else {}


def split_within(jobs: Mapping[int, int], tolerance: float = SPLIT_TOLERANCE) -> bool:
    """True when every shard's job count is within ±tolerance of the even share."""
    if not jobs or sum(jobs.values()) == 0:
        return False
    even = sum(jobs.values()) / len(jobs)
    return all(abs(v - even) <= tolerance * even for v in jobs.values())


def ceiling_jobs_per_s(cpu_us_per_job: float | None) -> float | None:
    """Jobs/s a Redis main thread carries at 100 % of one core, given its CPU per job."""
    if cpu_us_per_job is None or cpu_us_per_job <= 0:
        return None
    return 1e6 / cpu_us_per_job


def pick_queues(
    slot_ranges: Sequence[tuple[int, int, int]], stem: str = QUEUE_STEM, tries: int = 10000
) -> dict[int, str]:
    """One queue name per master (port) whose hash tag ``{name}`` falls in that master's slots.

    ``slot_ranges``: (first slot, last slot, master port) as CLUSTER SLOTS lists them. Every
    key of a queue is ``jq:v1:{<queue>}:...``, so its slot is the slot of the name itself.
    """
    masters = {port for _, _, port in slot_ranges}
    chosen: dict[int, str] = {}
    for i in range(tries):
        name = f"{stem}{i}"
        slot = key_slot(name.encode())
        port = next(p for lo, hi, p in slot_ranges if lo <= slot <= hi)
        chosen.setdefault(port, name)
        if len(chosen) == len(masters):
            return dict(sorted(chosen.items()))
    raise ValueError(f"no queue name for every master in {tries} tries")


@dataclass
class ShardWindow:
    """One master over one drain window."""

    port: int
    queue: str
    jobs: int
    cpu_s: float

    @property
    def cpu_us_per_job(self) -> float | None:
        return self.cpu_s / self.jobs * 1e6 if self.jobs > 0 else None


def shard_windows(
    queues: Mapping[int, str],
    start: Mapping[int, tuple[float, int]],
    end: Mapping[int, tuple[float, int]],
) -> list[ShardWindow]:
    """Per master: (cpu seconds, completed) at the window's start and end -> the window."""
    return [
        ShardWindow(
            port=port,
            queue=queue,
            jobs=end[port][1] - start[port][1],
            cpu_s=end[port][0] - start[port][0],
        )
        for port, queue in queues.items()
    ]


# ---------------------------------------------------------------- targets for measure.Runner
def _view(port: int) -> RedisServer:
    """bench's RedisServer over a node it did not start: its flush() and snapshot() only."""
    return RedisServer(
        port=port, _client=redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    )


def _release(view: RedisServer) -> None:
    view.proc = None
    view.stop()  # closes the client and removes the (empty) temporary directory


@dataclass
class SentinelTarget:
    """What Runner needs (url, flush, snapshot) on the Sentinel topology: INFO from the master."""

    url: str
    master: RedisServer

    def flush(self) -> None:
        self.master.flush()

    def snapshot(self) -> RedisSnapshot:
        return self.master.snapshot()


@dataclass
class ClusterTarget:
    """Runner's target on the Cluster: sums over the masters, keeps the per-master windows.

    Runner.drain takes its first snapshot just before the thaw and its last one at the N-th
    job (bench/measure.py); flush() starts a new window list, so ``history[0]`` and
    ``history[-1]`` bound the drain. The ``completed`` counters are read before the first
    INFO of the window (so they are not in its command counts) and again after the drain.
    """

    url: str
    queues: dict[int, str]  # master port -> the queue whose slot it serves
    views: dict[int, RedisServer] = field(default_factory=dict)
    history: list[dict[int, tuple[float, int]]] = field(default_factory=list)

    def completed(self) -> dict[int, int]:
        out = {}
        for port, queue in self.queues.items():
            raw = self.views[port].client.hget(counters_key(queue), COMPLETED)
            out[port] = int(cast(bytes, raw)) if raw is not None else 0
        return out

    def flush(self) -> None:
        for view in self.views.values():
            view.flush()
        self.history.clear()

    def snapshot(self) -> RedisSnapshot:
        done = self.completed() if not self.history else None
        snaps = {port: view.snapshot() for port, view in self.views.items()}
        if done is not None:
            self.history.append({p: (s.cpu_s, done[p]) for p, s in snaps.items()})
        else:
            self.history.append({p: (s.cpu_s, -1) for p, s in snaps.items()})
        commands: dict[str, int] = {}
        for snap in snaps.values():
            for k, v in snap.commands.items():
                commands[k] = commands.get(k, 0) + v
        return RedisSnapshot(
            commands=commands,
            reads=sum(s.reads for s in snaps.values()),
            cpu_s=sum(s.cpu_s for s in snaps.values()),
        )

    def window(self) -> list[ShardWindow]:
        """The per-master window of the last drain (call right after Runner.drain)."""
        if len(self.history) < 2:
            return []
        done = self.completed()
        start = self.history[0]
        end = {p: (cpu, done[p]) for p, (cpu, _) in self.history[-1].items()}
        return shard_windows(self.queues, start, end)


# ---------------------------------------------------------------- topologies
def _no_aof(ports: Sequence[int]) -> None:
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        try:
            client.config_set("appendonly", "no")
        finally:
            client.close()


@contextmanager
def standalone(log: Path, pids: dict[str, list[int]]) -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start(log)
        assert server.proc is not None
        pids["standalone"] = [server.proc.pid]
        yield server
    finally:
        server.stop()


@contextmanager
def sentinel(pids: dict[str, list[int]]) -> Iterator[SentinelTarget]:
    from jobqueue_devkit.redis_sentinel import SentinelTopology

    topo = SentinelTopology()
    view: RedisServer | None = None
    try:
        topo.start()
        pids["sentinel"] = [s.process.pid for s in topo.servers if s.process] + [
            p.pid for p in topo._sentinel_procs
        ]
        _no_aof([s.port for s in topo.servers])
        port = topo.master_port()
        if port is None:
            raise RuntimeError("no sentinel names a master")
        view = _view(port)
        yield SentinelTarget(url=topo.url, master=view)
    finally:
        if view is not None:
            _release(view)
        topo.cleanup()


@contextmanager
def cluster(pids: dict[str, list[int]]) -> Iterator[ClusterTarget]:
    from jobqueue_devkit.redis_cluster import RedisClusterNodes

    nodes = RedisClusterNodes()
    target: ClusterTarget | None = None
    try:
        nodes.start()
        pids["cluster"] = [s.process.pid for s in nodes.servers if s.process]
        _no_aof([s.port for s in nodes.servers])
        seed = redis.Redis(host="127.0.0.1", port=nodes.servers[0].port, socket_timeout=10)
        try:
            raw = seed.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            ranges = [(int(e[0]), int(e[1]), int(e[2][1])) for e in raw]
            queues = pick_queues(ranges)
            for port, queue in queues.items():  # the server agrees on every queue's slot
                slot = int(seed.execute_command("CLUSTER", "KEYSLOT", counters_key(queue)))  # type: ignore[no-untyped-call]
                lo_hi = [(lo, hi) for lo, hi, p in ranges if p == port]
                if not any(lo <= slot <= hi for lo, hi in lo_hi):
                    raise RuntimeError(f"{queue}: slot {slot} is not on master {port}")
        finally:
            seed.close()
        target = ClusterTarget(url=nodes.url, queues=queues)
        target.views = {port: _view(port) for port in queues}
        yield target
    finally:
        if target is not None:
            for view in target.views.values():
                _release(view)
        nodes.cleanup()


# ---------------------------------------------------------------- measuring
@dataclass
class Row:
    key: str
    label: str
    baseline: str | None
    queues: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def measure_row(
    runner: Runner,
    target: object,
    row: Row,
    args: argparse.Namespace,
    trial: int,
    *,
    keep: subprocess.Popen[bytes] | None,
) -> None:
    """One trial of one row; ``keep`` is the standalone redis-server (bench.procs spawned it)."""
    rec: dict[str, Any] = {"trial": trial}
    timeout = 60.0 + args.jobs / 20.0
    for workers in (1, 3):
        procs_label = f"{row.key}: drain {args.jobs} jobs, {workers} worker proc(s)"
        print(f"[{time.strftime('%H:%M:%S')}] {procs_label}", flush=True)
        try:
            d = runner.drain(workers, args.jobs, timeout)
            rec[f"drain{workers}"] = asdict(d)
            if isinstance(target, ClusterTarget):
                rec[f"shards{workers}"] = [
                    {**asdict(w), "cpu_us_per_job": w.cpu_us_per_job} for w in target.window()
                ]
            if d.timed_out:
                row.problems.append(
                    f"trial {trial}: drain {workers}p {d.ended} at {d.jobs_seen}/{args.jobs}"
                )
        except MeasureError as exc:
            row.problems.append(f"trial {trial}: drain {workers}p: {str(exc).splitlines()[0]}")
        finally:
            procs.cleanup_all_except(keep)
    print(f"[{time.strftime('%H:%M:%S')}] {row.key}: latency", flush=True)
    try:
        lat = runner.latency(args.latency_jobs, args.rate, 60 + args.latency_jobs / args.rate)
        rec["latency"] = asdict(lat)
        if lat.timed_out:
            row.problems.append(f"trial {trial}: latency saw {lat.jobs_seen}/{lat.jobs} jobs")
    except MeasureError as exc:
        row.problems.append(f"trial {trial}: latency: {str(exc).splitlines()[0]}")
    finally:
        procs.cleanup_all_except(keep)
    row.trials.append(rec)


def summarize(row: Row) -> dict[str, Any]:
    def pick(part: str, name: str) -> float | None:
        return median_of([t[part][name] for t in row.trials if t.get(part)])

    out: dict[str, Any] = {
        "jobs_per_s_1": pick("drain1", "jobs_per_s"),
        "jobs_per_s_3": pick("drain3", "jobs_per_s"),
        "p50_ms": pick("latency", "p50_ms"),
        "p99_ms": pick("latency", "p99_ms"),
        "redis_cpu_us_per_job": pick("drain1", "redis_cpu_us_per_job"),
        "redis_cmds_per_job": pick("drain1", "redis_cmds_per_job"),
    }
    for workers in (1, 3):
        windows = [t[f"shards{workers}"] for t in row.trials if t.get(f"shards{workers}")]
        if not windows:
            continue
        ports = [w["port"] for w in windows[0]]
        shards = []
        for i, port in enumerate(ports):
            jobs = [int(w[i]["jobs"]) for w in windows]
            cpu = median_of([w[i]["cpu_us_per_job"] for w in windows])
            shards.append(
                {
                    "port": port,
                    "queue": windows[0][i]["queue"],
                    "jobs": int(median_of([float(j) for j in jobs]) or 0),
                    "cpu_us_per_job": cpu,
                    "ceiling_jobs_per_s": ceiling_jobs_per_s(cpu),
                }
            )
        jobs_by = {s["port"]: s["jobs"] for s in shards}
        shares = split_shares(jobs_by)
        for s in shards:
            s["share"] = shares.get(s["port"])
        out[f"shards{workers}"] = shards
        out[f"split_ok{workers}"] = split_within(jobs_by)
    return out


def add_summaries(results: dict[str, Any]) -> None:
    """Each row's median summary from its saved trials (a saved run can be re-rendered)."""
    for entry in results["rows"].values():
        row = Row(
            key=entry["key"],
            label=entry["label"],
            baseline=entry["baseline"],
            queues=entry["queues"],
            trials=entry["trials"],
            problems=entry["problems"],
        )
        entry["summary"] = summarize(row) if row.trials else None


# ---------------------------------------------------------------- report
def _f(v: float | None, spec: str = ".0f") -> str:
    return "—" if v is None else format(v, spec)


def _r(v: float | None, base: float | None) -> str:
    got = ratio(v, base)
    return "" if got is None else f" ({got:.2f}×)"


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    rows: dict[str, dict[str, Any]] = results["rows"]
    lines = [
        "## Redis HA: Sentinel and a 3-shard Cluster against standalone Redis",
        "",
        f"Commit `{meta['git']}`, {meta['date']}, command `{meta['command']}`"
        + (f" (via `{meta['via']}`)" if meta.get("via") else "")
        + ".",
        f"Machine: {meta['cores']} cores ({meta['cpu_model']}), shared with other work "
        f"(load {meta['load_start']} at start): absolute figures are noisy and only the "
        "ratios against standalone Redis, measured in the same run, are meant to carry over. "
        f"Redis {meta.get('redis_version', '?')}, every data node without persistence. "
        f"{meta['jobs']} jobs per drain, {meta['latency_jobs']} latency jobs at "
        f"{meta['rate']:.0f}/s, {meta['trials']} trial(s), median"
        + (" (--quick: a smoke run)" if meta.get("quick") else "")
        + ".",
        "",
        "Our worker as in the worker benchmark above (bench/measure.py: no-op jobs, "
        "concurrency 10, at-least-once with 30 s leases). Ratio in brackets: against the "
        "standalone row with the same queues.",
        "",
        "| Redis | queues | 1 proc jobs/s | 3 procs jobs/s | p50 ms | p99 ms | "
        "Redis CPU µs/job (all masters) | Redis cmds/job |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows.values():
        s = row.get("summary") or {}
        base = (rows.get(row["baseline"]) or {}).get("summary") or {} if row["baseline"] else {}
        lines.append(
            f"| {row['label']} | {row['queues']} "
            f"| {_f(s.get('jobs_per_s_1'))}{_r(s.get('jobs_per_s_1'), base.get('jobs_per_s_1'))} "
            f"| {_f(s.get('jobs_per_s_3'))}{_r(s.get('jobs_per_s_3'), base.get('jobs_per_s_3'))} "
            f"| {_f(s.get('p50_ms'), '.1f')}{_r(s.get('p50_ms'), base.get('p50_ms'))} "
            f"| {_f(s.get('p99_ms'), '.1f')}{_r(s.get('p99_ms'), base.get('p99_ms'))} "
            f"| {_f(s.get('redis_cpu_us_per_job'))}"
            f"{_r(s.get('redis_cpu_us_per_job'), base.get('redis_cpu_us_per_job'))} "
            f"| {_f(s.get('redis_cmds_per_job'), '.1f')} |"
        )
    cl = (rows.get("cluster") or {}).get("summary") or {}
    for workers in (1, 3):
        shards = cl.get(f"shards{workers}")
        if not shards:
            continue
        ok = cl.get(f"split_ok{workers}")
        lines += [
            "",
            f"Cluster, per master, drain with {workers} worker process(es) "
            f"(split {'within' if ok else 'NOT within'} ±{SPLIT_TOLERANCE:.0%} of even):",
            "",
            "| master (port) | queue | jobs | share | Redis CPU µs/job | jobs/s at 1 core |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for sh in shards:
            lines.append(
                f"| {sh['port']} | `{sh['queue']}` | {sh['jobs']} | {_f(sh['share'], '.1%')} "
                f"| {_f(sh['cpu_us_per_job'])} | {_f(sh['ceiling_jobs_per_s'])} |"
            )
    per_shard = [
        sh["ceiling_jobs_per_s"] for sh in cl.get("shards1") or [] if sh["ceiling_jobs_per_s"]
    ]
    alone = ((rows.get("standalone3") or {}).get("summary") or {}).get("redis_cpu_us_per_job")
    if per_shard:
        lines += [
            "",
            f"**Each added shard carries about {min(per_shard):.0f}–{max(per_shard):.0f} jobs/s** "
            "at its Redis CPU ceiling (one core for Redis's main thread: 1 / the shard's "
            "measured CPU per job, from the one-process drain), against "
            f"{_f(ceiling_jobs_per_s(alone))} jobs/s for standalone Redis with the same three "
            "queues. An upper bound for Redis only: it assumes enough worker processes to "
            "load every shard (here the workers were the limit: see the throughput above), "
            "that the "
            "queues' slots spread evenly, and that Redis's CPU per job stays as measured at "
            "this load; the network between workers and shards is loopback here.",
        ]
    lines += ["", "Notes:", ""]
    lines += [f"- {n}" for n in NOTES]
    for row in rows.values():
        for p in row.get("problems") or []:
            lines.append(f"- {row['label']}: {p}")
    for what, why in results.get("missing", {}).items():
        lines.append(f"- Not measured: {what}: {why}")
    return "\n".join(lines) + "\n"


NOTES = [
    "Throughput, start latency, Redis CPU and commands are measured exactly as in the worker "
    "benchmark (bench/measure.py); Redis CPU is INFO used_cpu_user+used_cpu_sys over the "
    "drain window, summed over the masters (replicas and sentinels are not counted; the "
    "master's replication to its replicas is).",
    "Sentinel: the clients ask a sentinel for the master and then talk to the master only; "
    "the sentinels' own PING/INFO to the master and the replicas' acks fall in the window.",
    "Cluster: three queues chosen so that their hash tags ({bench<n>}) land on the three "
    "masters (checked with CLUSTER KEYSLOT); jobs dealt round-robin over them; every worker "
    "process serves all three queues (one step call per queue). Jobs per master are the "
    "difference of the queues' `completed` counters over the window. The producer deals the "
    "jobs evenly, so the split check says whether the workers drained every shard's queue "
    "in the window (not how a real key population hashes); the per-master CPU per job says "
    "whether the Redis work splits too. The three worker processes are not pinned one per "
    "shard.",
    "Standalone with three queues runs the same three queue names on one server: the "
    "baseline for the Cluster row; standalone with one queue is the baseline for Sentinel.",
    "Jobs/s at 1 core is 1e6 / (Redis CPU µs per job): what one Redis main thread would carry "
    "if it did nothing else; on this 2-core machine the workers and all Redis nodes share "
    "the same two cores, so no shard reached it here.",
]


# ---------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.redis_ha", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=5000, help="jobs per drain (default 5000)")
    p.add_argument("--latency-jobs", type=int, default=1000, help="jobs in the latency run")
    p.add_argument("--rate", type=float, default=100.0, help="latency enqueue rate (jobs/s)")
    p.add_argument("--trials", type=int, default=2, help="trials (median; default 2)")
    p.add_argument("--quick", action="store_true", help="500 jobs, 100 latency jobs, 1 trial")
    p.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="don't write BENCHMARKS.md")
    p.add_argument("--render", metavar="JSON", help="only re-render from a saved results JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 500)
        args.latency_jobs = min(args.latency_jobs, 100)
        args.trials = 1
    return args


ROWS = (
    ("standalone1", "standalone", None, ONE_QUEUE),
    ("sentinel", "Sentinel (1 master, 2 replicas, 3 sentinels)", "standalone1", ONE_QUEUE),
    ("standalone3", "standalone", None, "3 queues"),
    ("cluster", "Cluster (3 masters + 3 replicas)", "standalone3", "3 queues, 1 per shard"),
)


def start_targets(
    stack: ExitStack, rows: dict[str, Row], results: dict[str, Any], run_dir: Path
) -> dict[str, Any]:
    """Every topology that starts (standalone must); the others are recorded as missing."""
    pids: dict[str, list[int]] = results["pids"]
    targets: dict[str, Any] = {}
    try:
        server = stack.enter_context(standalone(run_dir / "redis-server.log", pids))
        results["meta"]["redis_version"] = server.version()
        targets["standalone1"] = targets["standalone3"] = server
    except Exception as exc:  # without the baseline there is nothing to compare
        raise SystemExit(f"standalone redis-server did not start: {exc}") from exc
    for key, factory in (("sentinel", sentinel), ("cluster", cluster)):
        try:
            targets[key] = stack.enter_context(factory(pids))
        except Exception as exc:
            results["missing"][rows[key].label] = f"the topology did not start: {exc}"
            print(f"{key}: did not start: {exc}", flush=True)
    print(f"PIDs started: {pids}", flush=True)
    return targets


def run_rows(
    rows: dict[str, Row], results: dict[str, Any], run_dir: Path, args: argparse.Namespace
) -> None:
    """Start the topologies, run trial 1 of every row, trial 2, ..., stop everything."""
    env = project_env()
    peer = BY_KEY["ours"]
    with ExitStack() as stack:
        targets = start_targets(stack, rows, results, run_dir)
        cl = targets.get("cluster")
        names = list(cl.queues.values()) if cl else [f"{QUEUE_STEM}{i}" for i in range(3)]
        keep = targets["standalone1"].proc
        runners: dict[str, Runner] = {}
        for key, target in targets.items():
            runner = Runner(peer, env, cast(RedisServer, target), run_dir / key)
            (run_dir / key).mkdir(exist_ok=True)
            runner.out = run_dir / key / "ours.records"
            runner.logs = runner.logs / key  # one log directory per row
            runner.logs.mkdir(parents=True, exist_ok=True)
            runner.queue = ONE_QUEUE if rows[key].queues == ONE_QUEUE else ",".join(names)
            runners[key] = runner
        for trial in range(1, args.trials + 1):
            for key, runner in runners.items():
                try:
                    measure_row(runner, targets[key], rows[key], args, trial, keep=keep)
                except Exception:
                    rows[key].problems.append(f"trial {trial} crashed: {traceback.format_exc()}")
                    print(traceback.format_exc(), flush=True)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv if argv is None else ["python -m bench.redis_ha", *argv]
    args = parse_args(raw[1:])
    if args.render:
        saved: dict[str, Any] = json.loads(Path(args.render).read_text())
        add_summaries(saved)
        write_between(Path(args.output), BEGIN, END, render(saved))
        return 0
    procs.install_handlers()
    meta = machine_meta(["python", "-m", "bench.redis_ha", *raw[1:]])
    meta.update(
        jobs=args.jobs,
        latency_jobs=args.latency_jobs,
        rate=args.rate,
        trials=args.trials,
        quick=args.quick,
        via=os.environ.get("JOBQUEUE_BENCH_VIA"),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = cache_dir() / "runs" / f"redis-ha-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = {k: Row(k, label, base, queues) for k, label, base, queues in ROWS}
    results: dict[str, Any] = {"meta": meta, "rows": {}, "missing": {}, "pids": {}}
    run_rows(rows, results, run_dir, args)
    results["pids_stopped"] = True  # the ExitStack in run_rows stopped every node
    results["rows"] = {key: asdict(row) for key, row in rows.items()}
    out = REPO_ROOT / "bench" / "results" / f"redis-ha-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))  # raw, before any summary
    add_summaries(results)
    out.write_text(json.dumps(results, indent=2, default=str))
    text = render(results)
    print(text)
    if not args.no_write:
        write_between(Path(args.output), BEGIN, END, text)
        print(f"wrote {args.output} and {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
