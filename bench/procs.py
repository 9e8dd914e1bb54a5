"""Subprocesses the harness starts: each in its own process group, always cleaned up.

Every started process is registered; :func:`cleanup_all` (run at exit, on SIGINT/SIGTERM and
after each measurement) sends SIGTERM to each group, waits a bounded time, then SIGKILLs it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

STOP_GRACE_S = 5.0

_live: list[subprocess.Popen[bytes]] = []


def _stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Stragglers left in the group (e.g. a forked child) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """Stop one process group started by :func:`spawn` (idempotent)."""
    _stop(proc, grace)
    if proc in _live:
        _live.remove(proc)


def cleanup_all() -> None:
    """Stop everything this harness started, newest first."""
    for proc in reversed(list(_live)):
        stop(proc, grace=2.0)


def cleanup_all_except(keep: subprocess.Popen[bytes] | None) -> None:
    """Stop everything but ``keep`` (the shared redis-server between systems)."""
    for proc in reversed(list(_live)):
        if proc is not keep:
            stop(proc, grace=2.0)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    cleanup_all()
    raise KeyboardInterrupt(f"signal {signum}")


def install_handlers() -> None:
    atexit.register(cleanup_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGKILL if the harness dies without cleaning up (kill -9)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(
    cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session (own process group), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the harness runs no threads
        )
    _live.append(proc)
    return proc


@contextlib.contextmanager
def running(
    cmds: Sequence[Sequence[str]],
    *,
    envs: Sequence[Mapping[str, str]],
    cwd: Path,
    logs: Sequence[Path],
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [spawn(c, env=e, cwd=cwd, log=lg) for c, e, lg in zip(cmds, envs, logs, strict=True)]
    try:
        yield procs
    finally:
        signal_groups(procs, signal.SIGCONT)  # a stopped group could not act on SIGTERM
        for p in procs:
            stop(p)


def signal_groups(procs: Sequence[subprocess.Popen[bytes]], sig: int) -> None:
    """Send ``sig`` to each process group (SIGSTOP/SIGCONT freeze and thaw whole workers)."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)


@dataclass
class CommandResult:
    returncode: int
    payload: dict[str, object]
    output: str


def run_json(
    cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float, log: Path
) -> CommandResult:
    """Run an adapter command to completion (bounded), parse its last stdout line as JSON."""
    proc = spawn(cmd, env=env, cwd=cwd, log=log)
    # stdout goes to the log too; re-read it afterwards.
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        return CommandResult(-1, {}, f"timed out after {timeout:.0f}s")
    stop(proc)
    text = log.read_text(errors="replace")
    payload: dict[str, object] = {}
    for raw in reversed(text.splitlines()):
        line = raw.strip()
        if line.startswith("{") and line.endswith("}"):
            with contextlib.suppress(json.JSONDecodeError):
                payload = json.loads(line)
                break
    return CommandResult(proc.returncode or 0, payload, text[-2000:])


def _threads_cpu_ns(pid: int) -> int | None:
    """On-CPU time of a process's live threads from /proc/<pid>/task/*/schedstat (ns)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of each process tree: its live threads (schedstat, ns resolution; falls back
    to user+system ticks), plus reaped children's user+system (RQ's forked work-horses)."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                ns = _threads_cpu_ns(p.pid)
                own = ns / 1e9 if ns is not None else t.user + t.system
                total += own + t.children_user + t.children_system
    return total


def wait_until(pred: object, timeout: float, interval: float = 0.005) -> bool:
    """Poll ``pred()`` until true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False
