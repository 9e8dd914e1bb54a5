"""``python -m bench.operator``: reaction time, cost per poll and scale of the operator.

    .venv/bin/python -m bench.operator --quick          # a few minutes, for development
    .venv/bin/python -m bench.operator                  # 10 trials at 5 s and 1 s; 1, 100, 1000
    .venv/bin/python -m bench.operator --scale 1,100 --window-s 60 --trials 20

Writes ``bench/results/operator.json`` (raw, git-ignored) after every phase, so
an interrupted run keeps what it measured, and the section between the
``operator-bench`` markers of ``BENCHMARKS.md``. A ``--no-write`` run keeps its raw
results in ``bench/results/operator-<stamp>.json`` instead: the saved results that
``--add`` and ``--render-only`` build on stay those the section was written from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.operator import _paths, cost, reaction, report, scale
from bench.operator.env import bench_env
from jobqueue_devkit.binaries import etcd_version, kubernetes_version

REPO_ROOT = _paths.REPO_ROOT
RESULTS = REPO_ROOT / "bench" / "results" / "operator.json"

#: The operator's CPU goal: this many cores per 1,000 JobQueues polled every 5 s.
GOAL_CORES_PER_1000 = 0.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags; ``--quick`` overrides the sizes with a small development run."""
    p = argparse.ArgumentParser(prog="python -m bench.operator", description=__doc__)
    p.add_argument("--trials", type=int, default=10, help="reaction trials per interval")
    p.add_argument("--intervals", default="5,1", help="polling intervals (s) for reaction/cost")
    p.add_argument("--scale", default="1,100,1000", help="JobQueue counts for the scale runs")
    p.add_argument("--scale-interval", type=int, default=5, help="polling interval of scale runs")
    p.add_argument("--window-s", type=float, default=60.0, help="measurement window (s)")
    p.add_argument(
        "--profile-s",
        type=float,
        default=0.0,
        help="after the largest scale point's window, py-spy the operator this long (0: off)",
    )
    p.add_argument(
        "--status-timeout-s",
        type=float,
        default=scale.STATUS_TIMEOUT_S,
        help="scale runs: wait at most this long for every JobQueue's first status, then "
        "measure anyway and report how many had reported",
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the trials' random phases")
    p.add_argument("--quick", action="store_true", help="tiny run: 3 trials at 1 s; scale 1,10")
    p.add_argument("--skip-reaction", action="store_true", help="no reaction/cost phase")
    p.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"))
    p.add_argument(
        "--add",
        action="store_true",
        help="add this run's phases to the saved results (a later scale point, say) instead of "
        "starting afresh; both commands are reported",
    )
    p.add_argument(
        "--add-saved",
        metavar="FILE",
        help="measure nothing: add the phases of a run kept with --no-write "
        "(bench/results/operator-<stamp>.json) to the saved results, as --add would "
        "have, and rewrite the section",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help=f"measure nothing: rewrite the section from {RESULTS.relative_to(REPO_ROOT)}",
    )
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.intervals, args.scale, args.window_s = 3, "1", "1,10", 15.0
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def machine() -> str:
    """CPU model, cores and memory, for the report header."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.platform()}"


def versions() -> str:
    """Versions of everything that shapes the numbers."""
    redis_bin = shutil.which("redis-server") or "redis-server"
    try:
        redis_v = (
            subprocess.run(
                [redis_bin, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
            .stdout.split()[2]
            .removeprefix("v=")
        )
    except (OSError, IndexError, subprocess.TimeoutExpired):
        redis_v = "unknown"
    libs = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("kopf", "kubernetes_asyncio", "redis")
    )
    return (
        f"Python {platform.python_version()}, {libs}, redis-server {redis_v}, "
        f"Kubernetes {kubernetes_version()}, etcd {etcd_version()}"
    )


def git_state() -> str:
    """HEAD and whether the operator/protocol sources differ from it (others edit them live)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "operator", "worker-image/protocol")
    return f"commit {head}" + (" with uncommitted operator changes" if dirty else "")


def results_path(no_write: bool, now: datetime) -> Path:
    """Where this run keeps its raw results: beside, not over, the section's own."""
    if not no_write:
        return RESULTS
    return RESULTS.with_name(f"operator-{now.strftime('%Y%m%dT%H%M%SZ')}.json")


def added(previous: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """``previous`` with ``run``'s phases on top: its scale points replace those of the
    same size, and the meta names both runs (each run's own tree and date stay listed)."""
    first, this = previous["meta"], run["meta"]
    merged = dict(previous)
    merged["meta"] = {
        **this,
        "date": f"{first['date']} and {this['date']}",
        "command": f"{first['command']}, then {this['command']}",
        "loadavg_start": first.get("loadavg_start"),
        "earlier_runs": [*first.get("earlier_runs", []), first],
    }
    merged["reaction"] = {**previous.get("reaction", {}), **run.get("reaction", {})}
    merged["cost"] = {**previous.get("cost", {}), **run.get("cost", {})}
    sizes = {p["jobqueues"] for p in run.get("scale", [])}
    merged["scale"] = sorted(
        [p for p in previous.get("scale", []) if p["jobqueues"] not in sizes]
        + list(run.get("scale", [])),
        key=lambda p: int(p["jobqueues"]),
    )
    merged["skipped"] = [*previous.get("skipped", []), *run.get("skipped", [])]
    return merged


def save(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Write the raw results now (called after every phase)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))


def _jq(n: int) -> str:
    return f"{n} JobQueue" + ("" if n == 1 else "s")


def notes(results: dict[str, Any]) -> list[str]:
    """Observations computed from this run's numbers, against the issue's targets."""
    out: list[str] = []
    for key, r in (results.get("reaction") or {}).items():
        interval = float(key)
        verdict = "within" if r["max_s"] <= interval + 1 else "NOT within"
        tick = (results.get("cost") or {}).get(key, {}).get("operator_loop_seconds_per_poll")
        tick_text = f"{1000 * tick:.0f} ms" if tick else "a few tens of ms"
        sd = interval / 12**0.5 / r["trials"] ** 0.5
        out.append(
            f"Reaction at {interval:g} s: max {r['max_s']:.2f} s over {r['trials']} trials is "
            f"{verdict} the target of one interval + 1 s ({interval + 1:g} s). The time is "
            "almost all the wait for the next poll, uniform over the interval (mean "
            f"{interval / 2:g} s, standard error of a {r['trials']}-trial mean ±{sd:.2f} s; "
            f"measured mean {r['mean_s']:.2f} s); one tick (the Redis read, and the status "
            f"patch when due) took {tick_text} on average in the quiet window, and the /scale "
            "read and write plus the watch delivery the rest."
        )
    for key, c in (results.get("cost") or {}).items():
        kinds = c["api_requests_by_verb_resource_per_poll"]
        out.append(
            f"Cost at {float(key):g} s: {c['redis_round_trips_per_poll']:.2f} Redis round trips "
            f"and {c['redis_commands_per_poll']:.1f} commands per poll; "
            f"{c['api_requests_per_poll']:.2f} API requests per poll "
            f"({', '.join(f'{k}: {v:.2f}' for k, v in kinds.items())}). "
            "The operator has no Redis round-trip counter "
            "(`jobqueue_operator_redis_round_trips_total`), so round trips are "
            "counted on the Redis side only."
        )
    for s in results.get("scale") or []:
        n, cores, c = s["jobqueues"], s["cpu_cores"], s["cost"]
        reads, commands = c["redis_round_trips"], c["redis_commands"]
        per_read = commands / reads if reads else None
        achieved = s["achieved_interval_s"]
        # The goal: 0.25 core per 1,000 JobQueues polled every 5 s.
        goal_cores = GOAL_CORES_PER_1000 * n / 1000
        within = "within" if cores <= goal_cores else "NOT within"
        polls = c.get("polls") or 0
        if per_read is None:
            redis_text = "no Redis reads in the window"
        elif polls and polls > 1.05 * reads:
            redis_text = (
                f"{reads:,} Redis reads served {polls:,.0f} polls ({polls / reads:.1f} polls "
                f"and {per_read:.1f} commands per read, {commands / polls:.1f} commands per "
                "poll): the polls of one Redis endpoint that meet share one pipelined read"
            )
        else:
            redis_text = (
                f"one Redis read per poll ({per_read:.1f} commands each): nothing to share "
                "with one JobQueue, or polls that never met"
            )
        pace = (
            f"each JobQueue was polled every {achieved:.2f} s on average "
            f"(asked: {s['interval_s']} s)"
            if achieved
            else "no polls were counted"
        )
        budget_ms = GOAL_CORES_PER_1000 * s["interval_s"]  # ms per poll, any count
        cpu_ms = s.get("cpu_ms_per_poll")
        cpu_text = (
            f"; {cpu_ms:.1f} ms of operator CPU per poll, against a budget of "
            f"{budget_ms:.2f} ms per poll ({GOAL_CORES_PER_1000} core per 1,000 JobQueues "
            f"at {s['interval_s']} s)"
            if cpu_ms
            else ""
        )
        waiting = s.get("runnable_waiting_cores")
        wait_text = (
            f" It was also runnable but waiting for a CPU for {waiting:.2f} cores' worth "
            f"(load average {s.get('loadavg_1m_start_end')}): on this shared machine its CPU "
            "figure is what it got, not all it wanted."
            if waiting and waiting > 0.05
            else ""
        )
        reported = s.get("reported_before_window", n)
        partial = (
            ""
            if reported >= n
            else f" Only {reported} of {n} JobQueues had reported when the "
            f"{s['all_reported_after_s']:.0f} s wait ended; the window was measured anyway."
        )
        out.append(
            f"{_jq(n)}: {cores:.3f} cores ({within} the goal of {goal_cores:.3g}); "
            f"{pace}{cpu_text}; "
            f"{redis_text}.{wait_text}{partial}"
        )
        if not c["polls"]:
            out.append(
                f"{_jq(n)}: the operator's poll counter did not move in the window although "
                f"the apiserver saw {c['api_requests_operator_identity']:.0f} of its requests: "
                "the per-poll figures of this row are missing, not zero."
            )
    for s in results.get("scale") or []:
        c = s["cost"]
        failed = c.get("operator_redis_errors") or 0
        if failed:
            out.append(
                f"{_jq(s['jobqueues'])}: {failed:.0f} polls failed to read Redis in the window "
                f"(`jobqueue_operator_redis_errors_total`; {c['polls']:.0f} polls completed), "
                "and those JobQueues report MetricsUnavailable and hold; the Warning Events "
                "above give the errors. Code reading: every "
                "JobQueue on one Redis endpoint shares one `redis.asyncio` client whose pool has "
                "`JQO_REDIS_MAX_CONNECTIONS` (default 8) connections and raises "
                "`MaxConnectionsError` instead of waiting when more polls than that are in "
                "flight at once; TimeoutError is the poll's own deadline passing while the "
                "event loop was busy elsewhere. Failed polls lower the reads per poll below 1."
            )
    for s in results.get("scale") or []:
        prof = s.get("profile")
        if prof and prof["self"] and prof["inclusive_ours"]:
            top_self = prof["self"][0]
            # Our function that still covers (nearly) all of the hottest self time,
            # i.e. the deepest of our frames above it.
            covering = [kv for kv in prof["inclusive_ours"] if kv[1] >= 0.9 * top_self[1]]
            deepest = min(covering, key=lambda kv: kv[1]) if covering else prof["inclusive_ours"][0]
            out.append(
                f"Profile at {s['jobqueues']} JobQueues: {100 * top_self[1]:.0f} % of the "
                f"operator's samples are in `{top_self[0]}` (self time); the deepest of our "
                f"functions on those stacks is `{deepest[0]}` ({100 * deepest[1]:.0f} % "
                "inclusive)."
            )
    out.append(
        "What a tick costs besides the one Redis round trip (code reading of the tree that "
        f"ran, {results['meta'].get('git')}, confirmed by the per-kind counts above): no "
        "request on a tick that holds; the replicas come from one watch of the Deployments "
        "per namespace (before 3a0f2db, a GET deployments/scale every tick), and the "
        "status is PATCHed when the decision changes, otherwise every 30 s (before "
        "3a0f2db, whenever the queue sample moved, which the oldest job's age does every "
        "poll). A tick that scales adds a GET and a PATCH of deployments/scale. The Secret "
        "GET only when a password is referenced, every 30 s. The conflict check reads the "
        "JobQueues from "
        "kopf's in-memory index of its JobQueue watch (no request; before b663a53, "
        "`kube.find_conflict` listed every JobQueue of the namespace from every loop, N² "
        "objects per 30 s with N JobQueues) and the HPAs from one LIST per namespace every "
        "10 s, shared by all its JobQueues (from b663a53 until 23d0346 a kopf watch of "
        "HPAs instead)."
    )
    return out


async def run(args: argparse.Namespace, results: dict[str, Any], workdir: Path, path: Path) -> None:
    """Every phase in order; results are saved to ``path`` after each."""
    # SIGTERM cancels the run like Ctrl-C, so the environments' cleanup stops the
    # control plane, Redis and the operator instead of leaving them running.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    rng = random.Random(args.seed)
    intervals = _ints(args.intervals)
    if not args.skip_reaction and intervals:
        print("== reaction time and cost per poll", flush=True)
        async with bench_env(workdir / "reaction", "bench-react") as env:
            await reaction.setup(env, intervals[0])
            for interval in intervals:
                await env.patch_jobqueue(reaction.NAME, {"pollingIntervalSeconds": interval})
                trials = await reaction.run_trials(env, interval, args.trials, rng)
                results["reaction"][str(interval)] = reaction.summary(trials)
                save(results, path)
                # Quiet window: a few jobs waiting inside the band, nothing scales.
                await env.enqueue({reaction.QUEUE: 3})
                await asyncio.sleep(interval + 1)
                print(f"  cost window at {interval}s ({args.window_s:g}s)", flush=True)
                results["cost"][str(interval)] = await cost.measure(env, args.window_s, 1)
                save(results, path)
                await env.drain(reaction.QUEUE)
    counts = _ints(args.scale)
    for count in counts:
        print(f"== scale: {count} JobQueues at {args.scale_interval}s", flush=True)
        profile_s = args.profile_s if count == max(counts) else 0.0
        async with bench_env(workdir / f"scale-{count}", "bench-scale") as env:
            point = await scale.run_point(
                env,
                count,
                args.scale_interval,
                args.window_s,
                profile_s=profile_s,
                status_timeout_s=args.status_timeout_s,
            )
        results["scale"] = sorted(
            [p for p in results["scale"] if p["jobqueues"] != count] + [point],
            key=lambda p: int(p["jobqueues"]),
        )
        print(
            f"  {count}: {point['cpu_cores']:.3f} cores, RSS peak "
            f"{point['rss_peak_window_mib']:.1f} MiB, achieved interval "
            f"{point['achieved_interval_s']}, RSS slope "
            f"{point['rss_slope_mib_per_min']} MiB/min "
            f"(second half {point['rss_slope_second_half_mib_per_min']})",
            flush=True,
        )
        save(results, path)


def main(argv: list[str] | None = None) -> int:
    """Run, save, and write the BENCHMARKS.md section (also for a partial run)."""
    args = parse_args(argv)
    if args.add_saved:
        run_results: dict[str, Any] = json.loads(Path(args.add_saved).read_text())
        merged = added(json.loads(RESULTS.read_text()), run_results)
        merged["notes"] = notes(merged)
        save(merged)
        report.write_section(Path(args.output), report.render(merged))
        print(f"added {args.add_saved} to {RESULTS} and rewrote the operator section")
        return 0
    if args.render_only:
        saved: dict[str, Any] = json.loads(RESULTS.read_text())
        saved["notes"] = notes(saved)
        save(saved)
        report.write_section(Path(args.output), report.render(saved))
        print(f"rewrote the operator section of {args.output} from {RESULTS}")
        return 0
    command = "python -m bench.operator " + shlex.join(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "versions": versions(),
            "git": git_state(),
            "command": command.strip(),
            "via": os.environ.get("JOBQUEUE_BENCH_VIA"),
            "loadavg_start": tuple(round(x, 2) for x in os.getloadavg()),
            "args": vars(args),
        },
        "reaction": {},
        "cost": {},
        "scale": [],
        "skipped": [],
    }
    if args.add and RESULTS.exists():
        results = added(json.loads(RESULTS.read_text()), results)
    path = results_path(args.no_write, datetime.now(UTC))
    workdir = Path(tempfile.mkdtemp(prefix="jq-opbench-"))
    print(f"work directory (logs): {workdir}", flush=True)
    started = time.monotonic()
    status = 0
    try:
        asyncio.run(run(args, results, workdir, path))
    except (KeyboardInterrupt, asyncio.CancelledError):
        results["skipped"].append(
            "the run was interrupted (Ctrl-C or SIGTERM); the rest was not measured"
        )
        status = 130
    except Exception as exc:
        results["skipped"].append(f"the run stopped on an error: {type(exc).__name__}: {exc}")
        status = 1
        raise
    finally:
        results["meta"]["loadavg_end"] = tuple(round(x, 2) for x in os.getloadavg())
        results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
        results["notes"] = notes(results)
        save(results, path)
        if not args.no_write:
            report.write_section(Path(args.output), report.render(results))
        print(f"raw results: {path}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
