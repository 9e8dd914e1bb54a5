"""A worker as a real process (``python -m jobqueue_worker worker``), for kill and fault tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


class WorkerProcess:
    """One spawned worker and its log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, pod: str) -> None:
        self.proc = proc
        self.log = log
        self.pod = pod

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def dump_stacks(self) -> str:
        """For a process that does not exit: its threads' stacks, then its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        return self.output()[-8000:]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def started_or_gone(self) -> bool:
        """The worker logged its start (its signal handlers are in place by then) or
        exited. A SIGTERM sent before that finds Python's default action: killed,
        -15, not a graceful exit. An async predicate, for ``eventually``."""
        return "Started worker" in self.output() or self.proc.poll() is not None


def spawn_worker_process(
    redis_url: str,
    pod: str,
    log: Path,
    settings: Mapping[str, object],
    import_path: Sequence[Path] = (),
) -> WorkerProcess:
    """Start a worker with the example handlers; ``settings`` become ``JQW_<NAME>``.

    ``import_path``: directories put first on the worker's PYTHONPATH, for a test's
    own handlers module (with ``handlers=<module>`` in ``settings``).
    """
    env = {
        **os.environ,
        "JQW_REDIS_URL": redis_url,
        "JQW_HANDLERS": "jobqueue_worker.examples",
        "POD_NAME": pod,
        "PYTHONPATH": os.pathsep.join(
            [
                *map(str, import_path),
                str(REPO / "worker-image"),
                str(REPO / "worker-image/protocol"),
            ]
        ),
        # SIGABRT (dump_stacks) prints every thread's stack to the log.
        "PYTHONFAULTHANDLER": "1",
    }
    for k, v in settings.items():
        env[f"JQW_{k.upper()}"] = str(v)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobqueue_worker", "worker"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(proc, log, pod)
