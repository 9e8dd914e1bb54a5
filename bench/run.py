"""Side-by-side worker benchmark: ours against arq, RQ, Dramatiq, Celery, saq, taskiq, BullMQ.

Usage (from the repo root, with the project venv)::

    .venv/bin/python -m bench.run              # full run, writes BENCHMARKS.md
    .venv/bin/python -m bench.run --quick      # small smoke run (300 jobs, 1 trial)
    .venv/bin/python -m bench.run --only arq,rq-simple --jobs 500 --trials 1

Starts one redis-server on a free loopback port (no persistence), builds each peer's own
virtualenv (and BullMQ's node_modules) under bench/.cache, measures every system the same way,
runs redis-benchmark for the ceiling, and writes BENCHMARKS.md plus bench/results/<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from bench import ceiling, procs, report
from bench.envs import REPO_ROOT, EnvError, PeerEnv, cache_dir, node_env, project_env, python_env
from bench.measure import MeasureError, Runner, as_dict, median_of, profile_drain
from bench.peers import BY_KEY, PEERS, Peer
from bench.redis_server import REDIS_ARGS, RedisServer

console = Console(width=None if sys.stdout.isatty() else 160)

STATIC_NOTES = [
    "Every number above was measured by this run; nothing is extrapolated. Systems without "
    "numbers failed or were skipped (reason listed under 'How each system was run').",
    "The job is identical everywhere: append one 44-byte record (start time, enqueue time, "
    "worker tag) to a file with one O_APPEND write (a few µs; for ours the profile below "
    "shows its share). No system stores a result for it unless that is its default (arq "
    "keeps results 1 h, RQ 500 s, saq keeps job status, ours keeps results 1 day; BullMQ "
    "removes on complete; Celery, Dramatiq and taskiq have no result backend configured).",
    "Drain method: the worker process(es) start on an empty queue and are warmed up with a few "
    "jobs until each has run one (imports, connections, consumer groups, JIT); then each "
    "worker's process group is frozen (SIGSTOP), the N jobs are bulk-enqueued (this is the "
    "bulk enqueue figure, with nothing competing), and the workers are thawed (SIGCONT). "
    "Throughput is (N-1) / (last job start - first job start) from the jobs' own clocks.",
    "Worker CPU is the on-CPU time of the worker process tree's threads (/proc schedstat, ns "
    "resolution) plus reaped children's user+system time (RQ's forked work-horses, 10 ms "
    "ticks), from just before the thaw to the N-th finished job, divided by N; it is taken "
    "from the one-process drain. Redis CPU is Redis's own used_cpu_user+used_cpu_sys over the "
    "same window. A drain ends early if no job finishes for 10 s (then the window closes at "
    "the last job).",
    "Redis cmds/job counts every command Redis executed (INFO commandstats), including the "
    "commands run inside Lua scripts. 'Redis reads/job' is the delta of Redis's "
    "total_reads_processed: one read event per client request, pipeline or script call, so "
    "it approximates round trips (a client that writes several requests before Redis reads "
    "them is counted once); idle polling and heartbeats in the window are included.",
    "Our worker warns at start that Redis runs without AOF: expected, the benchmark Redis has "
    "no persistence for every system alike.",
    "Latency: one idle worker, one warm-up job, then jobs enqueued at a fixed rate from a "
    "separate producer process; latency = job start - the enqueue time stamped in the payload "
    "just before the enqueue call (same host clock).",
    "A system whose one-process throughput is below the latency run's rate (RQ's forking "
    "worker, sometimes arq with defaults) cannot keep up at 100 jobs/s: its latency then "
    "measures a growing backlog, not its idle wake-up time. Polling systems (arq: 0.5 s "
    "poll by default; Dramatiq: exponential back-off when its queue is empty) show their "
    "polling interval in p50/p99.",
    "Bulk enqueue: each system's own bulk API where it has one (RQ enqueue_many, BullMQ "
    "addBulk), otherwise its ordinary enqueue in a loop (Dramatiq, Celery) or 100 concurrent "
    "enqueues at a time for the asyncio libraries (arq, saq, taskiq). Timed inside the producer "
    "process, imports excluded.",
    "Delivery guarantees differ: Celery here acks early (its default: at-most-once on a crash), "
    "taskiq's list broker never acks, RQ and arq keep results; ours keeps at-least-once "
    "delivery on. Faster is not better if it loses jobs: the table's second ratio row compares "
    "ours with the at-least-once peers only.",
]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_meta(argv: list[str]) -> dict[str, Any]:
    cpu_model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))}, kernel {platform.release()}"
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    return {
        "git": rev or "?",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": " ".join(shlex.quote(a) for a in argv),
        # `make bench` runs this harness and then the operator's; both say so.
        "via": os.environ.get("JOBQUEUE_BENCH_VIA"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "os": os_name,
        "python": platform.python_version(),
        "load_start": _load(),
        "redis_args": " ".join(shlex.quote(a) for a in REDIS_ARGS),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=20000, help="jobs per drain (default 20000)")
    p.add_argument("--latency-jobs", type=int, default=1000, help="jobs in the latency run")
    p.add_argument("--rate", type=float, default=100.0, help="latency run enqueue rate (jobs/s)")
    p.add_argument("--trials", type=int, default=3, help="trials per measurement (median)")
    p.add_argument("--only", default="", help=f"comma list of systems: {','.join(BY_KEY)}")
    p.add_argument("--skip", default="", help="comma list of systems to leave out")
    p.add_argument("--quick", action="store_true", help="300 jobs, 100 latency jobs, 1 trial")
    p.add_argument("--no-ceiling", action="store_true", help="skip redis-benchmark")
    p.add_argument(
        "--no-profile", action="store_true", help="skip the py-spy profile of our worker"
    )
    p.add_argument("--ceiling-requests", type=int, default=200000)
    p.add_argument("--drain-timeout", type=float, default=0.0, help="seconds (default auto)")
    p.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="don't write BENCHMARKS.md")
    p.add_argument("--list", action="store_true", help="list the systems and their settings")
    p.add_argument(
        "--render",
        metavar="JSON",
        help="only re-render BENCHMARKS.md from a results JSON written by an earlier run",
    )
    args = p.parse_args(argv)
    if args.list:
        for peer in PEERS:
            print(f"{peer.key:12} {peer.label:28} {peer.settings}")
        raise SystemExit(0)
    if args.quick:
        args.jobs = min(args.jobs, 300)
        args.latency_jobs = min(args.latency_jobs, 100)
        args.trials = 1
        args.ceiling_requests = min(args.ceiling_requests, 20000)
    return args


def select(args: argparse.Namespace) -> list[Peer]:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = [k for k in [*only, *skip] if k not in BY_KEY]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; choose from {', '.join(BY_KEY)}")
    chosen = [BY_KEY[k] for k in only] if only else list(PEERS)
    return [p for p in chosen if p.key not in skip]


def get_env(peer: Peer, cache: dict[str, PeerEnv]) -> PeerEnv:
    if peer.env not in cache:
        if peer.env == "ours":
            cache[peer.env] = project_env()
        elif peer.env == "bullmq":
            cache[peer.env] = node_env()
        else:
            cache[peer.env] = python_env(peer.env, peer.env)
    return cache[peer.env]


RELEVANT = (
    "arq",
    "rq",
    "dramatiq",
    "celery",
    "kombu",
    "saq",
    "taskiq",
    "taskiq-redis",
    "redis",
    "hiredis",
    "bullmq",
    "ioredis",
    "node",
    "jobqueue-operator",
)


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    d1 = [t["drain1"] for t in trials if t.get("drain1")]
    d2 = [t["drain2"] for t in trials if t.get("drain2")]
    lat = [t["latency"] for t in trials if t.get("latency")]
    enq = [d["enqueue_jobs_per_s"] for d in d1 + d2]
    commands: dict[str, float] = d1[-1]["commands"] if d1 else {}
    return {
        "jobs_per_s_1": median_of([d["jobs_per_s"] for d in d1]),
        "jobs_per_s_2": median_of([d["jobs_per_s"] for d in d2]),
        "enqueue_jobs_per_s": median_of(enq),
        "p50_ms": median_of([x["p50_ms"] for x in lat]),
        "p99_ms": median_of([x["p99_ms"] for x in lat]),
        "worker_cpu_us_per_job": median_of([d["worker_cpu_us_per_job"] for d in d1]),
        "redis_cmds_per_job": median_of([d["redis_cmds_per_job"] for d in d1]),
        "redis_reads_per_job": median_of([d["redis_reads_per_job"] for d in d1]),
        "redis_cpu_us_per_job": median_of([d["redis_cpu_us_per_job"] for d in d1]),
        "commands": commands,
    }


def jobs_for(peer: Peer, args: argparse.Namespace) -> int:
    return max(50, int(args.jobs * peer.job_scale))


def run_trial(
    runner: Runner, trial: int, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    """One trial of one system: drain with 1 and 2 worker processes, then latency."""
    key = runner.peer.key
    jobs = jobs_for(runner.peer, args)
    timeout = args.drain_timeout or (60.0 + jobs / 20.0)
    rec: dict[str, Any] = {"trial": trial}
    problems: list[str] = []
    for workers in (1, 2):
        console.log(f"  {key}: drain {jobs} jobs, {workers} worker proc(s)")
        try:
            d = runner.drain(workers, jobs, timeout)
            rec[f"drain{workers}"] = as_dict(d)
            if d.timed_out:
                problems.append(
                    f"trial {trial}: drain with {workers} worker(s) {d.ended} at "
                    f"{d.jobs_seen}/{jobs} jobs (per-job figures use the jobs seen)"
                )
            if d.duplicates:
                problems.append(f"trial {trial}: {d.duplicates} extra job runs in a drain")
        except MeasureError as exc:
            problems.append(f"trial {trial}: drain {workers}: {exc}")
            console.log(f"  [red]{key}: {str(exc).splitlines()[0]}")
    console.log(f"  {key}: latency, {args.latency_jobs} jobs at {args.rate:.0f}/s")
    try:
        lat = runner.latency(args.latency_jobs, args.rate, 60 + args.latency_jobs / args.rate)
        rec["latency"] = as_dict(lat)
        if lat.timed_out:
            problems.append(f"trial {trial}: latency run saw {lat.jobs_seen}/{lat.jobs} jobs")
    except MeasureError as exc:
        problems.append(f"trial {trial}: latency: {exc}")
        console.log(f"  [red]{key}: {str(exc).splitlines()[0]}")
    return rec, problems


def finish_entry(entry: dict[str, Any]) -> None:
    trials: list[dict[str, Any]] = entry.get("trials", [])
    problems: list[str] = entry.get("problems", [])
    d1 = next((t["drain1"] for t in trials if t.get("drain1")), None)
    entry["enqueue_method"] = d1["enqueue_method"] if d1 else ""
    entry["summary"] = summarize(trials) if any(len(t) > 1 for t in trials) else None
    if entry.get("status") != "fails":
        entry["status"] = "works" if not problems else ("partial" if d1 else "fails")
    if problems:
        entry["error"] = "; ".join(problems)


SHORT_HEADERS = (
    "1p j/s",
    "2p j/s",
    "enq j/s",
    "p50 ms",
    "p99 ms",
    "CPU µs",
    "cmds",
    "RT",
    "rCPU µs",
)


def console_table(systems: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="no-op worker benchmark (this run)")
    table.add_column("system")
    for header in SHORT_HEADERS:
        table.add_column(header, justify="right")
    for name, data in systems.items():
        summ = data.get("summary") or {}
        table.add_row(
            BY_KEY[name].label if name in BY_KEY else name,
            *[report.fmt(summ.get(k), spec) for k, _, _, spec in report.COLUMNS],
        )
    return table


def profile_ours(
    peer: Peer, env: PeerEnv, server: RedisServer, run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One extra drain of our worker under py-spy (not counted in the numbers)."""
    console.log("  ours: extra drain under py-spy (profile only)")
    try:
        tools = python_env("tools", "tools")
        results_envs = {"tools": dict(sorted(tools.packages.items()))}
        pyspy = tools.executable.parent / "py-spy"
        out = REPO_ROOT / "bench" / "results" / f"{run_dir.name}-ours-pyspy.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        jobs = max(20000, args.jobs)
        prof = profile_drain(Runner(peer, env, server, run_dir), jobs, 60 + jobs / 20, pyspy, out)
        return {**as_dict(prof), "py_spy": tools.packages.get("py-spy"), "env": results_envs}
    except (EnvError, MeasureError, subprocess.SubprocessError, OSError) as exc:
        console.log(f"  [yellow]profile skipped: {str(exc).splitlines()[0]}")
        return {"error": str(exc)}


def run_systems(
    peers: list[Peer],
    server: RedisServer,
    run_dir: Path,
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    """Prepare every environment, then run trial 1 of every system, trial 2, ...

    Interleaving spreads each system's trials over the run, so a noisy minute on a shared
    machine does not land on one system only. A failing system is recorded, never fatal.
    """
    meta = results["meta"]
    envs: dict[str, PeerEnv] = {}
    runners: dict[str, Runner] = {}
    for peer in peers:
        entry: dict[str, Any] = {
            "label": peer.label,
            "settings": peer.settings,
            "jobs": jobs_for(peer, args),
            "trials": [],
            "problems": [],
        }
        results["systems"][peer.key] = entry
        try:
            with console.status(f"preparing environment for {peer.key}"):
                env = get_env(peer, envs)
            entry["packages"] = {k: v for k, v in env.packages.items() if k in RELEVANT}
            results.setdefault("environments", {})[peer.env] = dict(sorted(env.packages.items()))
            if env.name == "bullmq":
                meta["node"] = env.packages.get("node")
            runners[peer.key] = Runner(peer, env, server, run_dir)
        except (EnvError, subprocess.SubprocessError, OSError) as exc:
            entry.update(status="fails", problems=[f"environment: {exc}"])
            console.log(f"[red]{peer.key}: no environment: {str(exc).splitlines()[0]}")
    for trial in range(1, args.trials + 1):
        for key, runner in runners.items():
            entry = results["systems"][key]
            console.rule(f"{runner.peer.label} — trial {trial}/{args.trials}")
            try:
                rec, problems = run_trial(runner, trial, args)
                entry["trials"].append(rec)
                entry["problems"].extend(problems)
            except Exception as exc:
                entry["problems"].append(f"trial {trial} crashed: {traceback.format_exc()}")
                console.log(f"[red]{key} crashed: {exc!r}")
            finally:
                procs.cleanup_all_except(server.proc)
    for key, entry in results["systems"].items():
        finish_entry(entry)
        if key == "ours" and key in runners and not args.no_profile and entry.get("summary"):
            results["profile"] = profile_ours(
                runners[key].peer, runners[key].env, server, run_dir, args
            )
            procs.cleanup_all_except(server.proc)


def render(results: dict[str, Any], output: str) -> None:
    text = report.render(
        results,
        lambda k: BY_KEY[k].label if k in BY_KEY else k,
        {p.key for p in PEERS if p.at_least_once},
    )
    report.write_section(Path(output), text)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv if argv is None else ["python -m bench.run", *argv]
    args = parse_args(raw[1:])
    if args.render:
        render(json.loads(Path(args.render).read_text()), args.output)
        console.log(f"re-rendered {args.output} from {args.render}")
        return 0
    procs.install_handlers()
    peers = select(args)
    meta = machine_meta(["python", "-m", "bench.run", *raw[1:]])
    meta.update(
        jobs=args.jobs,
        latency_jobs=args.latency_jobs,
        rate=args.rate,
        trials=args.trials,
        quick=args.quick,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = cache_dir() / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"meta": meta, "systems": {}, "notes": []}
    server = RedisServer()
    try:
        server.start(cache_dir() / "logs" / stamp / "redis-server.log")
        meta["redis_version"] = server.version()
        meta["redis_port"] = server.port
        console.log(f"redis-server {meta['redis_version']} on {server.url} (no persistence)")
        run_systems(peers, server, run_dir, args, results)
        if not args.no_ceiling:
            console.rule("ceiling: redis-benchmark")
            try:
                rows = ceiling.run(server, args.ceiling_requests)
                results["ceiling"] = {
                    "requests": args.ceiling_requests,
                    "version": _redis_benchmark_version(),
                    "rows": [as_dict(r) for r in rows],
                    "paced": ceiling.paced_round_trips(server, rate=args.rate),
                }
            except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
                results["ceiling"] = {"error": str(exc)}
    finally:
        server.stop()
        procs.cleanup_all()
    meta["load_end"] = _load()
    results["notes"] = _notes(results)
    out_json = REPO_ROOT / "bench" / "results" / f"{stamp}.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2, default=str))
    console.print(console_table(results["systems"]))
    if not args.no_write:
        render(results, args.output)
        console.log(f"wrote {args.output} and {out_json}")
    return 0


def _redis_benchmark_version() -> str:
    try:
        out = subprocess.run(
            ["redis-benchmark", "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _notes(results: dict[str, Any]) -> list[str]:
    notes = list(STATIC_NOTES)
    meta = results["meta"]
    notes.insert(
        0,
        f"Load average {meta['load_start']} at the start and {meta.get('load_end')} at the end "
        f"on {meta['cores']} cores: if it is well above 0, other work shared the CPUs and every "
        "number is pessimistic and noisy.",
    )
    for name, data in results["systems"].items():
        if data.get("status") != "works":
            why = data.get("error") or "; ".join(data.get("problems", [])) or "unknown"
            notes.append(f"{name}: {data.get('status')} — {why.strip().splitlines()[-1][:400]}")
    return notes


if __name__ == "__main__":
    started = time.monotonic()
    try:
        rc = main()
    except KeyboardInterrupt:
        console.log("[yellow]interrupted; workers and redis-server stopped")
        rc = 130
    console.log(f"done in {time.monotonic() - started:.0f}s")
    sys.exit(rc)
