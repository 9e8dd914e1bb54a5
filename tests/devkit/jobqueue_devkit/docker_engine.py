"""A Docker engine for image builds, started on demand and stopped only if we started it.

No image registry is reachable from our machines, so nothing can be pulled:
the engine is Debian's `docker.io`, and the Debian base image is made locally
with debootstrap and `docker import`. Its data root lives in the devkit cache,
so images built once survive between runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from jobqueue_devkit.binaries import cache_root
from jobqueue_devkit.debian_packages import ensure_packages
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.procs import pid_alive, terminate_group

SOCKET = Path("/var/run/docker.sock")
ENGINE_PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0


def engine_dir() -> Path:
    return cache_root() / "docker"


def pidfile() -> Path:
    return engine_dir() / "dockerd.pid"


def log_path() -> Path:
    return engine_dir() / "dockerd.log"


@contextlib.contextmanager
def engine_lock() -> Iterator[None]:
    """Serialise starts and base-image builds between concurrent callers."""
    engine_dir().mkdir(parents=True, exist_ok=True)
    with (engine_dir() / ".engine.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def docker(
    *args: str, timeout_s: float = 60.0, stdin: IO[bytes] | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run the docker client; a failure raises one line naming the command.

    `stdin` is a stream (say, a tar pipe), so large inputs are never held in memory.
    """
    exe = shutil.which("docker")
    if exe is None:
        raise DevkitError(
            "the docker client is not on PATH: install docker.io (`make docker-engine`)"
        )
    try:
        out = subprocess.run(
            [exe, *args], stdin=stdin, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DevkitError(f"`docker {' '.join(args[:3])}` hung for {timeout_s:.0f}s") from exc
    if check and out.returncode != 0:
        message = out.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise DevkitError(f"`docker {' '.join(args[:3])}` failed: {' '.join(message)}")
    return out


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    with contextlib.suppress(DevkitError):
        return (
            docker("info", "--format", "{{.ServerVersion}}", timeout_s=15, check=False).returncode
            == 0
        )
    return False


def _our_pid() -> int | None:
    """The pid of the dockerd this devkit started, if it still runs."""
    try:
        pid = int(pidfile().read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    with contextlib.suppress(OSError):
        if b"dockerd" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


def _dockerd_argv() -> list[str]:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DevkitError("dockerd is not installed: install docker.io (`make docker-engine`)")
    return [
        dockerd,
        f"--host=unix://{SOCKET}",
        "--storage-driver=overlay2",
        f"--data-root={engine_dir() / 'data'}",
        f"--pidfile={pidfile()}",
    ]


def _log_tail(lines: int = 5) -> str:
    try:
        text = log_path().read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text.splitlines()[-lines:])


def start() -> str:
    """Make sure an engine answers on the socket; return how (found or started)."""
    ensure_packages(ENGINE_PACKAGES)
    with engine_lock():
        if engine_answers():
            return "found" if _our_pid() is None else "ours"
        if os.geteuid() != 0:
            raise DevkitError("no Docker engine answers and only root can start dockerd")
        log_path().parent.mkdir(parents=True, exist_ok=True)
        with log_path().open("ab") as log:
            # A session of its own: the engine must outlive this command (`make docker-engine`).
            proc = subprocess.Popen(
                _dockerd_argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DevkitError(
                    f"dockerd exited with code {proc.returncode}; log {log_path()}: {_log_tail()}"
                )
            if engine_answers():
                return "started"
            time.sleep(0.5)
        terminate_group(proc.pid, grace_s=5)
        raise DevkitError(
            f"dockerd did not answer within {START_TIMEOUT_S:.0f}s; log {log_path()}: {_log_tail()}"
        )


def stop() -> str:
    """Stop the engine if this devkit started it; leave anyone else's running."""
    with engine_lock():
        pid = _our_pid()
        if pid is None:
            return "left running (not started by the devkit)" if engine_answers() else "not running"
        terminate_group(pid, grace_s=STOP_GRACE_S)
        pidfile().unlink(missing_ok=True)
        return "stopped"


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, timeout_s=30, check=False).returncode == 0


def image_label(name: str, label: str) -> str | None:
    out = docker(
        "image",
        "inspect",
        "--format",
        f'{{{{index .Config.Labels "{label}"}}}}',
        name,
        timeout_s=30,
        check=False,
    )
    value = out.stdout.decode().strip()
    return value if out.returncode == 0 and value not in ("", "<no value>") else None


def build(tag: str, context: Path, build_args: Sequence[str] = (), timeout_s: float = 900) -> None:
    """`docker build` with the legacy builder.

    There is no buildx here, and a BuildKit frontend would have to be pulled.
    """
    args = ["build", "-t", tag]
    for arg in build_args:
        args += ["--build-arg", arg]
    exe = shutil.which("docker")
    assert exe is not None
    try:
        out = subprocess.run(
            [exe, *args, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DevkitError(f"docker build of {tag} took longer than {timeout_s:.0f}s") from exc
    if out.returncode != 0:
        tail = out.stdout.decode(errors="replace").strip().splitlines()[-3:]
        err = out.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise DevkitError(f"docker build of {tag} failed: {' | '.join(tail + err)}")
