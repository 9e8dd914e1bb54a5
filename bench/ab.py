"""Our worker from two source trees side by side, with BullMQ in the same run.

    .venv/bin/python -m bench.ab --base /tmp/base-tree --jobs 10000 --trials 3
    .venv/bin/python -m bench.ab --base /tmp/base-tree --sleep   # + the 1 ms handler rows

For a before/after comparison on a shared, noisy machine: ``--base`` is a copy of
another commit's ``worker-image/`` folder (``git archive <commit> worker-image | tar
-x -C /tmp/base-tree``), run exactly as ``make bench`` runs ours (the same adapter,
settings and measurements from ``measure.py``), interleaved trial by trial with this
tree's worker (or ``--new``, a copy of a third commit's) and BullMQ, medians reported.
``--sleep`` adds each tree's worker at concurrency 100 with no-op jobs and with jobs
that ``await asyncio.sleep(0.001)``
(``BENCH_SLEEP_MS``). Prints a table and writes ``bench/results/ab-<stamp>.json``;
never touches BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.envs import ADAPTERS_DIR, REPO_ROOT, cache_dir, node_env, project_env
from bench.measure import MeasureError, Runner, as_dict, median_of
from bench.peers import BY_KEY, Peer
from bench.redis_server import RedisServer

METRICS = (
    ("jobs_per_s", "1p j/s"),
    ("worker_cpu_us_per_job", "CPU µs"),
    ("redis_cpu_us_per_job", "rCPU µs"),
    ("redis_cmds_per_job", "cmds"),
    ("redis_reads_per_job", "RT"),
)


def tree_env(tree: Path) -> dict[str, str]:
    """The PYTHONPATH that runs ``tree``'s worker and producer (and the adapters)."""
    paths = [ADAPTERS_DIR, tree / "worker-image", tree / "worker-image" / "protocol"]
    return {"PYTHONPATH": os.pathsep.join(str(p) for p in paths)}


def _ours(
    key: str, tree: Path, extra: dict[str, str], concurrency: int = 10, sleep_ms: int = 0
) -> Peer:
    base = BY_KEY["ours"]
    worker = tuple(str(concurrency) if p == "10" else p for p in base.worker)
    env = {**base.extra_env, **tree_env(tree), "BENCH_SLEEP_MS": str(sleep_ms), **extra}
    return replace(base, key=key, label=key, worker=worker, extra_env=env)


def systems(args: argparse.Namespace) -> list[tuple[Peer, bool]]:
    """(peer, measure latency too)."""
    out: list[tuple[Peer, bool]] = []
    base_env: dict[str, str] = dict(kv.split("=", 1) for kv in args.base_env)
    new = Path(args.new or REPO_ROOT)
    trees: list[tuple[str, Path, dict[str, str]]] = [("new", new, {})] + (
        [("base", Path(args.base or REPO_ROOT), base_env)] if args.base or base_env else []
    )
    for name, tree, extra in trees:
        out.append((_ours(name, tree, extra), True))
    if not args.no_bullmq:
        out.append((BY_KEY["bullmq"], True))
    if args.sleep:
        for name, tree, extra in trees:
            out.append((_ours(f"{name}-c100-noop", tree, extra, 100), False))
            out.append((_ours(f"{name}-c100-sleep1ms", tree, extra, 100, 1), False))
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    p.add_argument("--base", default="", help="a tree holding another commit's worker-image/")
    p.add_argument(
        "--new",
        default="",
        help="a tree holding the commit to compare against --base (default: this tree)",
    )
    p.add_argument(
        "--base-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the base worker's environment (no --base: this tree; e.g. JQW_EVENT_LOOP=asyncio)",
    )
    p.add_argument("--jobs", type=int, default=10000)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--latency-jobs", type=int, default=300)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--no-bullmq", action="store_true")
    p.add_argument("--sleep", action="store_true", help="add the concurrency-100 rows")
    p.add_argument("--no-latency", action="store_true")
    args = p.parse_args()
    procs.install_handlers()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = cache_dir() / "runs" / f"ab-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    server = RedisServer()
    chosen = systems(args)
    rows: dict[str, list[dict[str, Any]]] = {peer.key: [] for peer, _ in chosen}
    load_start = os.getloadavg()
    try:
        server.start(cache_dir() / "logs" / f"ab-{stamp}" / "redis-server.log")
        envs = {"bullmq": node_env} if not args.no_bullmq else {}
        runners = {
            peer.key: (Runner(peer, envs.get(peer.env, project_env)(), server, run_dir), lat)
            for peer, lat in chosen
        }
        for trial in range(args.trials):
            for key, (runner, lat) in runners.items():
                rec: dict[str, Any] = {}
                try:
                    d = runner.drain(1, args.jobs, 60 + args.jobs / 20)
                    rec.update(as_dict(d))
                    if lat and not args.no_latency:
                        la = runner.latency(args.latency_jobs, args.rate, 60 + args.latency_jobs)
                        rec.update(p50_ms=la.p50_ms, p99_ms=la.p99_ms)
                except MeasureError as exc:
                    rec["error"] = str(exc).splitlines()[0]
                rows[key].append(rec)
                print(f"trial {trial + 1} {key}: " + _fmt_row(rec), flush=True)
    finally:
        server.stop()
        procs.cleanup_all()
    summary = {k: _median(v) for k, v in rows.items()}
    out = {
        "meta": {
            "stamp": stamp,
            "args": vars(args),
            "load_start": load_start,
            "load_end": os.getloadavg(),
            "cores": os.cpu_count(),
        },
        "trials": rows,
        "summary": summary,
    }
    path = REPO_ROOT / "bench" / "results" / f"ab-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(
        f"\nmedians of {args.trials} trials, {args.jobs} jobs per drain; load "
        f"{load_start} -> {os.getloadavg()}; {path}"
    )
    for key, s in summary.items():
        print(f"{key:22} " + _fmt_row(s))
    bull = summary.get("bullmq", {}).get("jobs_per_s")
    for key, s in summary.items():
        if bull and s.get("jobs_per_s") and key != "bullmq":
            print(f"{key:22} jobs/s vs BullMQ: {s['jobs_per_s'] / bull:.2f}x")
    return 0


def _median(recs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in METRICS] + ["p50_ms", "p99_ms"]
    return {k: median_of([r.get(k) for r in recs]) for k in keys}


def _fmt_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"error: {r['error']}"
    parts = []
    for k, label in [*METRICS, ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")]:
        v = r.get(k)
        if v is not None:
            parts.append(f"{label} {v:,.2f}" if v < 100 else f"{label} {v:,.0f}")
    return ", ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
