"""Every set-up failure is one clear line naming the problem and the fix, and exit 2."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.procs import ManagedProcess
from jobqueue_devkit.redis_server import RedisServer, find_redis_binary

REPO = Path(__file__).resolve().parents[3]


def run_devkit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PYTHONPATH": str(REPO / "tests" / "devkit"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [sys.executable, "-m", "jobqueue_devkit", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_go_toolchain_is_named(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    result = run_devkit(["build"], {"PATH": str(bindir), "JOBQUEUE_CACHE_DIR": str(tmp_path / "c")})
    assert result.returncode == 2
    assert "Go toolchain not found on PATH" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")
def test_unreachable_module_proxy_is_named(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    go_dir = str(Path(shutil.which("go") or "").parent)
    result = run_devkit(
        ["build"],
        {
            "PATH": f"{go_dir}:/usr/bin:/bin",
            "JOBQUEUE_CACHE_DIR": str(tmp_path / "cache"),
            "GOMODCACHE": str(tmp_path / "modcache"),
            "GOCACHE": str(tmp_path / "gocache"),
            "GOPROXY": f"http://127.0.0.1:{port}",
            "GOSUMDB": "off",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "cannot reach the Go module proxy" in result.stderr
    assert f"GOPROXY=http://127.0.0.1:{port}" in result.stderr


def test_port_clash_is_named(tmp_path: Path) -> None:
    find_redis_binary()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = RedisServer(workdir=tmp_path, port=port)
        with pytest.raises(DevkitError, match=rf"port {port} is already in use"):
            server.start()
    assert server.process is None


def test_binary_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    script = tmp_path / "broken-server"
    script.write_text("#!/bin/sh\necho 'fatal: bad flag --nope' >&2\nexit 3\n")
    script.chmod(0o755)
    proc = ManagedProcess("broken-server", [str(script)], tmp_path / "broken.log")
    proc.start()
    with pytest.raises(DevkitError) as caught:
        proc.wait_ready(lambda: False, timeout_s=10, what="ready")
    message = str(caught.value)
    assert "broken-server exited with code 3 before it was ready" in message
    assert "fatal: bad flag --nope" in message


def test_a_server_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", ["/bin/sleep", "30"], tmp_path / "sleeper.log")
    proc.start()
    try:
        with pytest.raises(DevkitError, match="sleeper was not ready within 1s"):
            proc.wait_ready(lambda: False, timeout_s=1, what="ready")
    finally:
        proc.stop(grace_s=1)
    assert not proc.alive()


def test_missing_binary_is_named(tmp_path: Path) -> None:
    proc = ManagedProcess("etcd", [str(tmp_path / "nope" / "etcd")], tmp_path / "etcd.log")
    with pytest.raises(DevkitError, match="etcd: binary not found at"):
        proc.start()
