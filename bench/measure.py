"""The worker measurements, identical for every system.

Drain (1 and 2 worker processes): FLUSHALL, start the worker process(es) and warm each one up
with a few jobs (imports, connections, consumer groups, JIT), freeze them (SIGSTOP to each
process group), bulk-enqueue N jobs with the adapter (timed inside the adapter: the bulk enqueue
figure, with the workers frozen so nothing competes), thaw them (SIGCONT) and wait for the N-th
job. Throughput comes from the jobs' own start times ((N-1) / (last-first)); worker CPU, Redis
commands, Redis reads and Redis CPU are deltas from just before the thaw to the N-th record,
divided by N.

Latency: one worker, idle; a warm-up job; then the adapter enqueues M jobs at a fixed rate
(default 100/s), each stamped with its enqueue time; latency = job start - enqueue stamp.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.envs import ADAPTERS_DIR, PeerEnv, cache_dir
from bench.peers import Peer
from bench.redis_server import RedisServer, RedisSnapshot, delta

RECORD_SIZE = 44
STALL_S = 10.0
SAMPLE_S = 0.25
WARMUP_ROUNDS = 8
POLL_S = 0.005
STARTUP_TIMEOUT_S = 60.0


class MeasureError(RuntimeError):
    pass


@dataclass
class DrainResult:
    workers: int
    jobs: int
    jobs_seen: int
    jobs_per_s: float | None
    enqueue_jobs_per_s: float | None
    enqueue_method: str
    worker_cpu_us_per_job: float | None
    redis_cmds_per_job: float | None
    redis_reads_per_job: float | None
    redis_cpu_us_per_job: float | None
    commands: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    ended: str = "done"  # done | stalled (no new job for STALL_S) | timeout
    duplicates: int = 0
    warmed_workers: list[str] = field(default_factory=list)
    first_start_after_thaw_s: float | None = None
    span_s: float | None = None
    jobs_by_worker: dict[str, int] = field(default_factory=dict)


@dataclass
class LatencyResult:
    rate: float
    jobs: int
    jobs_seen: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    timed_out: bool = False


def count_records(out: Path) -> int:
    try:
        return out.stat().st_size // RECORD_SIZE
    except FileNotFoundError:
        return 0


def records(out: Path) -> list[tuple[float, float, str]]:
    """(start, enqueue stamp, worker tag) per finished job."""
    rows: list[tuple[float, float, str]] = []
    if not out.exists():
        return rows
    data = out.read_bytes()
    for i in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        chunk = data[i : i + RECORD_SIZE]
        try:
            rows.append((float(chunk[:20]), float(chunk[20:39]), chunk[39:43].decode().strip()))
        except ValueError:
            continue
    return rows


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


class Runner:
    """Runs one system's adapter and workers against the shared Redis."""

    def __init__(self, peer: Peer, env: PeerEnv, server: RedisServer, run_dir: Path) -> None:
        self.peer = peer
        self.env = env
        self.server = server
        self.run_dir = run_dir
        self.out = run_dir / f"{peer.key}.records"
        self.logs = cache_dir() / "logs" / run_dir.name
        self.logs.mkdir(parents=True, exist_ok=True)
        self.queue = "benchq"

    # ---------------------------------------------------------------- commands
    def _env(self, worker: str = "-") -> dict[str, str]:
        env = {
            "BENCH_WORKER": worker,
            "PATH": f"{self.env.executable.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ADAPTERS_DIR),
            "PYTHONDONTWRITEBYTECODE": "1",
            "BENCH_REDIS_URL": self.server.url,
            "BENCH_OUT": str(self.out),
            "BENCH_QUEUE": self.queue,
            "BENCH_VARIANT": self.peer.variant,
            "NODE_PATH": str(cache_dir() / "node" / "node_modules"),
        }
        if self.peer.key == "ours":
            from bench.envs import REPO_ROOT

            env["PYTHONPATH"] = os.pathsep.join(
                [
                    str(ADAPTERS_DIR),
                    str(REPO_ROOT / "worker-image"),
                    str(REPO_ROOT / "worker-image/protocol"),
                ]
            )
        env.update(self.peer.extra_env)
        return env

    def _fmt(self, part: str, name: str) -> str:
        return part.format(
            bin=self.env.executable.parent,
            python=self.env.executable,
            adapters=ADAPTERS_DIR,
            node_dir=cache_dir() / "node",
            url=self.server.url,
            queue=self.queue,
            name=name,
        )

    def worker_cmd(self, name: str) -> list[str]:
        return [self._fmt(p, name) for p in self.peer.worker]

    def adapter_cmd(self, *args: str) -> list[str]:
        if self.peer.env == "bullmq":
            script = cache_dir() / "node" / self.peer.adapter
        else:
            script = ADAPTERS_DIR / self.peer.adapter
        return [str(self.env.executable), str(script), *args]

    def _adapter(self, tag: str, timeout: float, *args: str) -> dict[str, Any]:
        res = procs.run_json(
            self.adapter_cmd(*args),
            env=self._env(),
            cwd=ADAPTERS_DIR,
            timeout=timeout,
            log=self.logs / f"{self.peer.key}-{tag}.log",
        )
        if res.returncode != 0 or not res.payload:
            raise MeasureError(f"{tag} failed (rc={res.returncode}):\n{res.output[-1200:]}")
        return res.payload

    def _reset(self) -> None:
        self.server.flush()
        self.out.unlink(missing_ok=True)
        self.out.touch()

    # ---------------------------------------------------------------- drain
    def _warm(self, running: list[Any], workers: int, log: Path) -> list[str]:
        """Run rounds of jobs until every worker process has run one (or rounds run out)."""
        total = 0
        tags: set[str] = set()
        for _ in range(WARMUP_ROUNDS):
            k = 10 * workers
            self._adapter("warmup", 60, "enqueue", "--n", str(k))
            total += k

            def done(target: int = total) -> bool:
                if any(p.poll() is not None for p in running):
                    raise MeasureError(f"worker exited early; see {log}")
                return count_records(self.out) >= target

            if not procs.wait_until(done, STARTUP_TIMEOUT_S, POLL_S):
                raise MeasureError(f"warm-up jobs did not finish in {STARTUP_TIMEOUT_S:.0f}s")
            tags = {r[2] for r in records(self.out)}
            if len(tags) >= workers:
                break
        time.sleep(0.2)  # let the last acks land before freezing
        return sorted(tags)

    def _follow(
        self, jobs: int, timeout: float, pids: list[int]
    ) -> tuple[int, float, RedisSnapshot, int, str]:
        """Wait for the N-th record; end early if no job finishes for STALL_S.

        Samples (count, worker CPU, Redis) every SAMPLE_S so that, when the run ends on a
        stall or a timeout, the window can close at the first sample after the last job
        instead of including the idle wait. Returns count, CPU, snapshot, the number of INFO
        reads the harness made inside the window, and how the wait ended.
        """
        end = time.monotonic() + timeout
        last_count, last_change, last_sample = -1, time.monotonic(), 0.0
        samples: list[tuple[int, float, RedisSnapshot, int]] = []
        ended = "done"
        while True:
            count = count_records(self.out)
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            if count >= jobs:
                break
            if now - last_change > STALL_S:
                ended = "stalled"
                break
            if now > end:
                ended = "timeout"
                break
            if now - last_sample >= SAMPLE_S:
                last_sample = now
                samples.append(
                    (count, procs.tree_cpu_seconds(pids), self.server.snapshot(), len(samples) + 1)
                )
            time.sleep(POLL_S)
        c1 = count_records(self.out)
        final = (c1, procs.tree_cpu_seconds(pids), self.server.snapshot(), len(samples) + 1)
        if ended != "done":
            final = next((smp for smp in samples if smp[0] >= c1), final)
        return final[0], final[1], final[2], final[3] - 1, ended

    def drain(self, workers: int, jobs: int, timeout: float) -> DrainResult:
        self._reset()
        names = [f"w{i + 1}" for i in range(workers)]
        cmds = [self.worker_cmd(n) for n in names]
        envs = [self._env(n) for n in names]
        logs = [self.logs / f"{self.peer.key}-worker{workers}-{n}.log" for n in names]
        with procs.running(cmds, envs=envs, cwd=ADAPTERS_DIR, logs=logs) as running:
            pids = [p.pid for p in running]
            warmed = self._warm(running, workers, logs[0])
            procs.signal_groups(running, signal.SIGSTOP)
            try:
                os.truncate(self.out, 0)
                enq = self._adapter(f"enqueue-{workers}", timeout, "enqueue", "--n", str(jobs))
                s0 = self.server.snapshot()
                cpu0 = procs.tree_cpu_seconds(pids)
                t_thaw = time.time()
            finally:
                procs.signal_groups(running, signal.SIGCONT)
            c1, cpu1, s1, harness_reads, ended = self._follow(jobs, timeout, pids)
        enq_s = float(enq["seconds"])
        rows = records(self.out)
        starts = sorted(r[0] for r in rows)
        cmd_delta, reads, redis_cpu = delta(s0, s1, harness_reads)
        rate = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else None

        def per(x: float) -> float | None:
            return x / c1 if c1 > 0 else None

        by_worker = {t: sum(1 for r in rows if r[2] == t) for t in names}
        return DrainResult(
            workers=workers,
            jobs=jobs,
            jobs_seen=len(rows),
            jobs_per_s=rate,
            enqueue_jobs_per_s=jobs / enq_s if enq_s > 0 else None,
            enqueue_method=str(enq.get("method", "")),
            worker_cpu_us_per_job=_scale(per(cpu1 - cpu0), 1e6),
            redis_cmds_per_job=per(sum(cmd_delta.values())),
            redis_reads_per_job=per(reads),
            redis_cpu_us_per_job=_scale(per(redis_cpu), 1e6),
            commands={k: v / c1 for k, v in sorted(cmd_delta.items())} if c1 > 0 else {},
            timed_out=ended != "done",
            ended=ended,
            duplicates=max(0, len(rows) - jobs),
            warmed_workers=warmed,
            first_start_after_thaw_s=starts[0] - t_thaw if starts else None,
            span_s=starts[-1] - starts[0] if starts else None,
            jobs_by_worker=by_worker,
        )

    # ---------------------------------------------------------------- latency
    def latency(self, jobs: int, rate: float, timeout: float) -> LatencyResult:
        self._reset()
        log = self.logs / f"{self.peer.key}-latency-worker.log"
        with procs.running(
            [self.worker_cmd("w1")], envs=[self._env("w1")], cwd=ADAPTERS_DIR, logs=[log]
        ):
            # Warm-up: one job through the idle worker (imports, connections, consumer groups).
            self._adapter("warmup", 60, "produce", "--n", "1", "--rate", str(rate))
            if not procs.wait_until(
                lambda: count_records(self.out) >= 1, STARTUP_TIMEOUT_S, POLL_S
            ):
                raise MeasureError(f"warm-up job never ran; see {log}")
            time.sleep(0.5)
            os.truncate(self.out, 0)
            deadline = jobs / rate * 3 + 30
            self._adapter(
                "produce",
                deadline + 30,
                "produce",
                "--n",
                str(jobs),
                "--rate",
                str(rate),
                "--deadline",
                str(deadline),
            )
            ok = procs.wait_until(lambda: count_records(self.out) >= jobs, timeout, POLL_S)
        rows = records(self.out)
        lat = [(start - enq) * 1000 for start, enq, _ in rows]
        return LatencyResult(
            rate=rate,
            jobs=jobs,
            jobs_seen=len(rows),
            p50_ms=percentile(lat, 50) if lat else None,
            p99_ms=percentile(lat, 99) if lat else None,
            max_ms=max(lat) if lat else None,
            timed_out=not ok,
        )


def _scale(v: float | None, k: float) -> float | None:
    return None if v is None else v * k


def median_of(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def as_dict(obj: object) -> dict[str, Any]:
    return asdict(obj)  # type: ignore[call-overload,no-any-return]


Progress = Callable[[str], None]


@dataclass
class ProfileResult:
    samples: int
    jobs: int
    self_top: list[tuple[str, float]]
    inclusive_top: list[tuple[str, float]]
    categories: list[tuple[str, float]]
    raw_file: str


# Own-time categories, first match wins (matched against "function (file:line)").
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("waiting in epoll (idle or waiting for Redis)", ("EpollSelector", "selectors.py")),
    # uvloop's loop is C: its epoll wait and its own work show as the Python frame
    # that started it.
    ("uvloop's loop in C (epoll wait included)", ("Runner.run (asyncio/runners.py",)),
    (
        "socket writes (asyncio transport write: the send syscall)",
        ("_SelectorSocketTransport.write", "StreamWriter.writelines"),
    ),
    ("the benchmark job itself (one write)", ("common.py", "ours_app.py")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("redis-py / hiredis client", ("redis/", "hiredis")),
    ("pydantic (validation, JSON)", ("pydantic",)),
    ("json module", ("json/",)),
    ("jobqueue_worker / jobqueue_protocol code", ("jobqueue_worker/", "jobqueue_protocol/")),
    ("asyncio event loop and transports", ("asyncio/",)),
    ("threads (renewal, pools)", ("threading.py", "concurrent/")),
)


def _category(frame: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in frame for n in needles):
            return name
    return "other"


def summarize_raw(
    path: Path, top: int = 15
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]], list[tuple[str, float]]]:
    """py-spy raw (collapsed) stacks -> samples, top own-time frames, top inclusive frames of
    our code (jobqueue_worker, below the CLI), own time by category; as shares of samples."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    cat_counts: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        cat = _category(frames[-1])
        cat_counts[cat] = cat_counts.get(cat, 0) + count
        for f in set(frames):
            if "jobqueue_worker/" in f and "cli.py" not in f and "__main__" not in f:
                incl_counts[f] = incl_counts.get(f, 0) + count
    if total == 0:
        return 0, [], [], []

    def share(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return total, share(self_counts), share(incl_counts), share(cat_counts)


def profile_drain(
    runner: Runner, jobs: int, timeout: float, pyspy: Path, out: Path
) -> ProfileResult:
    """An extra one-process drain with py-spy attached (--nonblocking); not used for numbers."""
    runner._reset()
    env = runner._env("w1")
    log = runner.logs / f"{runner.peer.key}-profile-worker.log"
    with procs.running(
        [runner.worker_cmd("w1")], envs=[env], cwd=ADAPTERS_DIR, logs=[log]
    ) as running:
        runner._warm(running, 1, log)
        procs.signal_groups(running, signal.SIGSTOP)
        try:
            os.truncate(runner.out, 0)
            runner._adapter("profile-enqueue", timeout, "enqueue", "--n", str(jobs))
            spy = procs.spawn(
                [
                    str(pyspy),
                    "record",
                    "--pid",
                    str(running[0].pid),
                    "--nonblocking",
                    "--subprocesses",
                    "--function",
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "-o",
                    str(out),
                ],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                cwd=ADAPTERS_DIR,
                log=runner.logs / "py-spy.log",
            )
            time.sleep(1.0)  # let py-spy attach before the work starts
        finally:
            procs.signal_groups(running, signal.SIGCONT)
        procs.wait_until(lambda: count_records(runner.out) >= jobs, timeout, POLL_S)
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        finally:
            procs.stop(spy)
    if not out.exists():
        raise MeasureError(f"py-spy wrote no profile; see {runner.logs / 'py-spy.log'}")
    total, self_top, incl_top, cats = summarize_raw(out)
    return ProfileResult(total, jobs, self_top, incl_top, cats, str(out))
