"""BENCHMARKS.md from one run's results (only what the run measured)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ceiling as ceiling_mod
from bench.peers import REFERENCES

# BENCHMARKS.md is shared: this harness owns the text between its markers (the worker part and
# the title); the operator harness (bench/operator) owns the text between its own markers.
BEGIN = "<!-- worker-bench:begin -->"
END = "<!-- worker-bench:end -->"
OPERATOR_BEGIN = "<!-- operator-bench:begin -->"
OPERATOR_END = "<!-- operator-bench:end -->"


def _between(text: str, begin: str, end: str) -> tuple[str, str, str] | None:
    if begin in text and end in text and text.index(begin) < text.index(end):
        head, rest = text.split(begin, 1)
        mid, tail = rest.split(end, 1)
        return head, mid, tail
    return None


def write_section(path: Path, section: str) -> None:
    """Replace our marked block in ``path``; keep the operator harness's block untouched.

    Without our markers (a new file, or one written before the markers existed) the file
    becomes our block followed by the operator block, if there is one.
    """
    old = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    ours = _between(old, BEGIN, END)
    if ours is not None:
        head, _, tail = ours
        path.write_text(head + block + tail)
        return
    op = _between(old, OPERATOR_BEGIN, OPERATOR_END)
    op_block = f"\n\n{OPERATOR_BEGIN}{op[1]}{OPERATOR_END}" if op is not None else ""
    path.write_text(block + op_block + "\n")


# (key in the per-system summary, header, higher is better, format)
COLUMNS: tuple[tuple[str, str, bool, str], ...] = (
    ("jobs_per_s_1", "no-op jobs/s, 1 worker proc", True, "{:,.0f}"),
    ("jobs_per_s_2", "no-op jobs/s, 2 worker procs", True, "{:,.0f}"),
    ("enqueue_jobs_per_s", "bulk enqueue jobs/s", True, "{:,.0f}"),
    ("p50_ms", "start latency p50 ms @100/s", False, "{:.2f}"),
    ("p99_ms", "start latency p99 ms @100/s", False, "{:.2f}"),
    ("worker_cpu_us_per_job", "worker CPU µs/job", False, "{:,.0f}"),
    ("redis_cmds_per_job", "Redis cmds/job", False, "{:.2f}"),
    ("redis_reads_per_job", "Redis reads/job (≈ round trips)", False, "{:.2f}"),
    ("redis_cpu_us_per_job", "Redis CPU µs/job", False, "{:.1f}"),
)


def fmt(value: Any, spec: str) -> str:
    if value is None:
        return "–"
    return spec.format(value)


def ratios(
    systems: dict[str, dict[str, Any]], only: set[str] | None = None
) -> dict[str, tuple[float | None, str | None]]:
    """Per column: ours / best peer, and which peer is best (by that column's direction).

    A reference (the bare list hand-off) is a yardstick, not a peer: never the best.
    """
    ours = systems.get("ours", {}).get("summary") or {}
    out: dict[str, tuple[float | None, str | None]] = {}
    for key, _, higher, _ in COLUMNS:
        best_val: float | None = None
        best_peer: str | None = None
        for name, data in systems.items():
            val = (data.get("summary") or {}).get(key)
            if name == "ours" or name in REFERENCES or val is None:
                continue
            if only is not None and name not in only:
                continue
            if best_val is None or (val > best_val if higher else val < best_val):
                best_val, best_peer = val, name
        mine = ours.get(key)
        ratio = mine / best_val if mine is not None and best_val else None
        out[key] = (ratio, best_peer)
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def render(
    res: dict[str, Any], label_of: Callable[[str], str], at_least_once: set[str] | None = None
) -> str:
    meta = res["meta"]
    systems: dict[str, dict[str, Any]] = res["systems"]
    lines: list[str] = ["# Benchmarks", ""]
    if meta.get("quick") or meta["jobs"] < 5000 or meta["trials"] < 3:
        kind = "`--quick` run" if meta.get("quick") else "small run"
        lines += [
            f"> **Small-sample {kind}.** {meta['jobs']} jobs per drain, "
            f"{meta['latency_jobs']} latency jobs, {meta['trials']} trial(s), on a machine with "
            f"load average {meta['load_start']} at the start. Treat these numbers as a smoke "
            "test of the harness, not as results: a full `make bench` on a quiet machine "
            "(20,000 jobs, 1,000 latency jobs, 3 trials) produces the real ones.",
            "",
        ]
    lines += [
        f"- Date: {meta['date']}",
        (
            f"- Command: `{meta['via']}`, whose worker part is `{meta['command']}` "
            f"(repo at {meta.get('git', '?')}); the operator part is reported below"
            if meta.get("via")
            else f"- Command: `{meta['command']}` (repo at {meta.get('git', '?')})"
        ),
        f"- Machine: {meta['cores']} cores, {meta['cpu_model']}, "
        f"{meta['memory_gib']:.1f} GiB RAM; load average at start {meta['load_start']}, "
        f"at end {meta.get('load_end', '?')}",
        f"- OS: {meta['os']}",
        f"- Python (harness, ours): {meta['python']}; Node: {meta.get('node', '–')}",
        f"- Redis: {meta['redis_version']}, one `redis-server` started by the harness on "
        f"127.0.0.1:{meta['redis_port']} with `{meta['redis_args']}` (no persistence)",
        f"- Jobs per drain: {meta['jobs']} (scaled down for slow systems, see below); "
        f"latency: {meta['latency_jobs']} jobs at {meta['rate']:.0f} jobs/s; "
        f"trials: {meta['trials']} (median reported)",
        "",
        "## Worker: no-op jobs, same job, same Redis",
        "",
        "Higher is better for the three throughput columns; lower is better for the others.",
        "",
    ]
    header = ["system", *[c[1] for c in COLUMNS]]
    rows: list[list[str]] = []
    for name, data in systems.items():
        summ = data.get("summary")
        if not summ:
            rows.append([label_of(name)] + ["–"] * len(COLUMNS))
            continue
        rows.append([label_of(name)] + [fmt(summ.get(k), spec) for k, _, _, spec in COLUMNS])
    for title, only in (
        ("**ours / best peer**", None),
        ("**ours / best at-least-once peer**", at_least_once),
    ):
        rat = ratios(systems, only)
        rows.append(
            [title]
            + [
                (f"{r:.2f}× (vs {label_of(p)})" if r is not None and p else "–")
                for r, p in (rat[k] for k, _, _, _ in COLUMNS)
            ]
        )
    lines += _table(header, rows)
    lines += [
        "",
        "Ratios: above 1 is better for the three throughput columns, below 1 is better for the "
        "others. At-least-once peers (they redeliver a job whose worker died, as run here): "
        + ", ".join(label_of(k) for k in sorted(at_least_once or set()) if k != "ours")
        + ".",
    ]
    lines += _targets(systems, label_of, (res.get("ceiling") or {}).get("paced"))
    lines += ["", "### How each system was run", ""]
    for name, data in systems.items():
        status = data.get("status", "?")
        pk = ", ".join(f"{k} {v}" for k, v in sorted(data.get("packages", {}).items()))
        jobs = data.get("jobs")
        lines.append(
            f"- **{label_of(name)}** — {status}. {data.get('settings', '')}. "
            + (f"Drained {jobs} jobs. " if jobs else "")
            + (f"Enqueue: {data['enqueue_method']}. " if data.get("enqueue_method") else "")
            + (f"Versions: {pk}." if pk else "")
        )
        if data.get("error"):
            lines.append(f"  - Error: `{str(data['error']).strip().splitlines()[-1][:300]}`")
    lines += ["", "### Redis commands per job (1 worker process, drain)", ""]
    for name, data in systems.items():
        mix = (data.get("summary") or {}).get("commands")
        if mix:
            top = sorted(mix.items(), key=lambda kv: -kv[1])[:10]
            lines.append(f"- {label_of(name)}: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    lines += _ceiling(res, systems)
    lines += _profile(res)
    envs: dict[str, dict[str, str]] = dict(res.get("environments") or {})
    envs.update((res.get("profile") or {}).get("env") or {})
    if envs:
        lines += [
            "",
            "## Package versions per environment",
            "",
            "Each peer runs from its own virtualenv (pins: bench/requirements/<env>.txt; "
            "BullMQ: bench/adapters/bullmq/package.json); ours runs from the project venv.",
            "",
            "<details><summary>Full lists</summary>",
            "",
        ]
        for name, pkgs in sorted(envs.items()):
            lines.append(f"- **{name}**: " + ", ".join(f"{k} {v}" for k, v in pkgs.items()))
        lines += ["", "</details>"]
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in res.get("notes", [])]
    lines.append("")
    return "\n".join(lines)


def _ceiling(res: dict[str, Any], systems: dict[str, dict[str, Any]]) -> list[str]:
    ceil = res.get("ceiling")
    lines = ["", "## The ceiling: Redis itself (redis-benchmark)", ""]
    if not ceil or not ceil.get("rows"):
        lines.append(f"Not measured in this run: {ceil.get('error') if ceil else 'skipped'}.")
        return lines
    lines += [
        f"`redis-benchmark` ({ceil.get('version', '?')}) against the same Redis, "
        f"{ceil['requests']} requests per test. "
        "The step script is four calls (ZPOPMIN a ready id, ZADD a lease, HSET the job): "
        "the shape of one fetch/complete script.",
        "",
    ]
    configs: list[str] = []
    tests: list[str] = []
    table: dict[tuple[str, str], float] = {}
    for r in ceil["rows"]:
        if r["config"] not in configs:
            configs.append(r["config"])
        if r["test"] not in tests:
            tests.append(r["test"])
        table[(r["test"], r["config"])] = r["rps"]
    rows = [[t] + [fmt(table.get((t, c)), "{:,.0f}") for c in configs] for t in tests]
    lines += _table(["command (requests/s)", *configs], rows)
    paced = ceil.get("paced")
    if paced:
        lines += [
            "",
            f"A lone round trip, as the latency run sees it (PING at {paced['rate']:.0f}/s on one "
            f"connection, {paced['n']:.0f} samples): p50 {paced['p50_ms']:.3f} ms, p99 "
            f"{paced['p99_ms']:.3f} ms. Back-to-back PINGs cost "
            + fmt(
                1000 / table[("PING", "1 conn")] if ("PING", "1 conn") in table else None, "{:.3f}"
            )
            + " ms each: between paced requests both processes sleep and pay the wake-up.",
        ]
    ours = (systems.get("ours", {}).get("summary") or {}) if "ours" in systems else {}
    mix: dict[str, float] = ours.get("commands") or {}
    r_ours = ours.get("redis_reads_per_job")
    j1 = ours.get("jobs_per_s_1")
    lines += ["", "### The upper bound this implies for ours", ""]
    if not mix or r_ours is None:
        lines.append("- Ours was not measured in this run, so its cost per job is unknown.")
        return lines
    lines += [
        f"Measured cost of one of our jobs (1-process drain): {r_ours:.2f} Redis reads (round "
        "trips"
        + ("; under one per job, so several jobs share a call" if r_ours < 1 else "")
        + ") and these commands, script-internal calls included: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))
        + ".",
        "",
        "Model: per job, Redis pays each round trip at the PING cost of the given connection "
        "setup (network, parsing, event loop) plus each command at its pipelined cost (per-"
        "request overhead amortised, close to the cost of a call inside a script); "
        "bound = 1 / that time.",
        "",
    ]
    for config, what in (
        ("10 conns", "Redis-bound (a busy server, many connections)"),
        ("1 conn", "One connection, one request in flight at a time"),
    ):
        b, unmapped = ceiling_mod.job_bound(ceil["rows"], mix, r_ours, config)
        if b is None:
            continue
        extra = f" (no close stand-in for {', '.join(unmapped)})" if unmapped else ""
        frac = f"; ours' 1-process throughput is {j1 / b:.0%} of it" if j1 else ""
        lines.append(f"- {what}: ≤ {b:,.0f} jobs/s{extra}{frac}.")
    rcpu = ours.get("redis_cpu_us_per_job")
    if rcpu:
        lines.append(
            f"- Redis CPU per job for ours: {rcpu:.1f} µs ⇒ one Redis core saturates at about "
            f"{1e6 / rcpu:,.0f} jobs/s"
            + (f"; ours' 1-process throughput is {j1 * rcpu / 1e6:.0%} of it." if j1 else ".")
        )
    return lines


def _profile(res: dict[str, Any]) -> list[str]:
    prof = res.get("profile")
    if not prof:
        return []
    lines = ["", "## Where our worker spends its time (py-spy)", ""]
    if prof.get("error"):
        return [*lines, f"Not profiled: {str(prof['error']).splitlines()[0][:300]}"]
    lines += [
        f"py-spy {prof.get('py_spy', '')} "
        "`record --nonblocking --subprocesses --function --rate 200` on an extra one-process "
        f"drain of {prof['jobs']} jobs (not used for the numbers above; "
        f"{prof['samples']} samples, idle threads excluded). Raw stacks: "
        f"`{Path(prof['raw_file']).name}` under bench/results/.",
        "",
        "Own time by category (share of samples):",
        "",
    ]
    lines += _table(["category", "share"], [[c, f"{v:.1%}"] for c, v in prof.get("categories", [])])
    lines += ["", "Top frames by own time:", ""]
    lines += _table(["frame", "share"], [[f"`{f}`", f"{v:.1%}"] for f, v in prof["self_top"][:12]])
    lines += ["", "Our functions including callees (below the CLI):", ""]
    lines += _table(
        ["frame", "share"], [[f"`{f}`", f"{v:.1%}"] for f, v in prof["inclusive_top"][:12]]
    )
    return lines


def _targets(
    systems: dict[str, dict[str, Any]],
    label_of: Callable[[str], str],
    paced: dict[str, float] | None = None,
) -> list[str]:
    """Our worker's performance targets, measured against this run."""
    ours = (systems.get("ours") or {}).get("summary") or {}
    lines = ["", "### Our performance targets against this run", ""]
    if not ours:
        return [*lines, "Ours was not measured in this run."]
    bull = (systems.get("bullmq") or {}).get("summary") or {}
    floor = (systems.get("floor") or {}).get("summary") or {}

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "**not met**")

    def versus(key: str, goal: float) -> list[str]:
        mine, theirs = ours.get(key), bull.get(key)
        ratio = mine / theirs if mine and theirs else None
        return [
            f"{fmt(mine, '{:,.0f}')} vs {fmt(theirs, '{:,.0f}')} jobs/s: " + fmt(ratio, "{:.2f}×"),
            verdict(ratio >= goal if ratio is not None else None),
        ]

    def at_most(key: str, goal: float, spec: str, unit: str) -> list[str]:
        mine = ours.get(key)
        return [f"{fmt(mine, spec)} {unit}", verdict(mine <= goal if mine is not None else None)]

    p50, p99 = ours.get("p50_ms"), ours.get("p99_ms")
    hand_off = []
    if floor.get("p50_ms") is not None:
        hand_off.append(
            f"the bare list hand-off: {floor['p50_ms']:.2f} / {fmt(floor.get('p99_ms'), '{:.2f}')}"
        )
    if paced:
        hand_off.append(f"a lone round trip: {paced['p50_ms']:.2f} / {paced['p99_ms']:.2f}")
    rows = [
        ["1 worker process ≥ 1.0× BullMQ (no-op, concurrency 10)", *versus("jobs_per_s_1", 1.0)],
        ["2 worker processes ≥ 1.5× BullMQ with two", *versus("jobs_per_s_2", 1.5)],
        ["worker CPU ≤ 60 µs per job", *at_most("worker_cpu_us_per_job", 60, "{:.0f}", "µs")],
        ["Redis CPU ≤ 30 µs per job", *at_most("redis_cpu_us_per_job", 30, "{:.1f}", "µs")],
        [
            "≤ 3 Redis round trips per job (steady state)",
            *at_most("redis_reads_per_job", 3, "{:.2f}", "reads/job"),
        ],
        [
            "start latency p50 ≤ 0.5 ms and p99 ≤ 1 ms at 100 jobs/s",
            f"{fmt(p50, '{:.2f}')} / {fmt(p99, '{:.2f}')} ms"
            + (f" (here, p50 / p99 of {'; of '.join(hand_off)} ms)" if hand_off else ""),
            verdict(p50 <= 0.5 and p99 <= 1.0 if p50 is not None and p99 is not None else None),
        ],
    ]
    return lines + _table(["target", "measured", "verdict"], rows)
