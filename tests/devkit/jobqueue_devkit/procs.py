"""Child processes that are always cleaned up.

Every server runs in its own process group (so its children die with it),
writes its output to a log file (so a failure can quote it), and every wait
has a deadline: nothing here can hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue_devkit.errors import DevkitError

ADDRESS_IN_USE_MARKERS = ("address already in use", "bind: address already in use")


@dataclass
class ManagedProcess:
    """A named server process with a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not Path(self.argv[0]).exists():
            raise DevkitError(f"{self.name}: binary not found at {self.argv[0]}")
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise DevkitError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def port_clash(self) -> bool:
        tail = self.log_tail(60).lower()
        return any(marker in tail for marker in ADDRESS_IN_USE_MARKERS)

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `probe` until it is true; fail fast if the process dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise DevkitError(
                    f"{self.name} exited with code {code} before it was {what}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if probe():
                    return
            time.sleep(0.1)
        raise DevkitError(
            f"{self.name} was not {what} within {timeout_s:.0f}s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        if self.popen is None:
            return
        terminate_group(self.popen.pid, grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def terminate_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return
            time.sleep(0.05)
