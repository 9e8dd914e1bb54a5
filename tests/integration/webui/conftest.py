"""The web UI's test harness: a real ``jobqueue web`` process, a real worker process
(with ``webui_handlers``) and Debian's chromium driven by Playwright.

Chromium is found at /usr/bin/chromium (``make chromium`` installs it); when it
cannot start, the browser tests are skipped with the one-line reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "admin-token-0123456789abcdef"
READONLY_TOKEN = "readonly-token-0123456789abcdef"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _env(redis_url: str, fixed_file: Path) -> dict[str, str]:
    return {
        **os.environ,
        "JQW_REDIS_URL": redis_url,
        "WEBUI_FIXED_FILE": str(fixed_file),
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "worker-image"), str(REPO / "worker-image/protocol"), str(HERE)]
        ),
    }


def _screenshots(tmp_path: Path) -> Path:
    """docs/ when refreshing the README's pictures (`make webui-screenshots`), else a
    temporary folder: a test run must not rewrite tracked files."""
    wanted = os.environ.get("JOBQUEUE_WEBUI_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    docs: Path  # where screenshots go
    admin_token: str = ADMIN_TOKEN
    readonly_token: str = READONLY_TOKEN

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def fixed_file(tmp_path: Path) -> Path:
    """Creating this file "fixes" the ``flaky`` handler."""
    return tmp_path / "handler-fixed"


StartWeb = Callable[..., WebServer]


@pytest.fixture
def start_web(redis_url: str, tmp_path: Path, fixed_file: Path) -> Iterator[StartWeb]:
    """Starts ``jobqueue web`` with an admin and a read-only token; ``*extra`` options."""
    servers: list[WebServer] = []
    (tmp_path / "admin").write_text(ADMIN_TOKEN + "\n")
    (tmp_path / "readonly").write_text(READONLY_TOKEN + "\n")

    def start(*extra: str) -> WebServer:
        port = _free_port()
        log = tmp_path / f"web-{len(servers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from jobqueue_cli import main; main()",
                    "web",
                    "--port",
                    str(port),
                    "--admin-token-file",
                    str(tmp_path / "admin"),
                    "--readonly-token-file",
                    str(tmp_path / "readonly"),
                    "--sample-interval",
                    "0.5",
                    *extra,
                ],
                env=_env(redis_url, fixed_file),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = WebServer(f"http://127.0.0.1:{port}", proc, log, _screenshots(tmp_path))
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return server
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"jobqueue web did not start:\n{server.output()[-3000:]}")
                time.sleep(0.1)

    yield start
    for server in servers:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)


@pytest.fixture
def web_server(start_web: StartWeb) -> WebServer:
    """``jobqueue web`` with cluster access off."""
    return start_web("--no-kube")


@pytest.fixture
def worker_process(
    redis_url: str, tmp_path: Path, fixed_file: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **_env(redis_url, fixed_file),
            "JQW_HANDLERS": "webui_handlers",
            "JQW_HTTP_PORT": "0",
            "JQW_HEARTBEAT_INTERVAL_S": "0.5",
            "JQW_IDLE_BLOCK_S": "0.5",
            "POD_NAME": "webui-worker-0",
        }
        log = tmp_path / f"worker-{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobqueue_worker", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright; the tests skip with the reason if it cannot start.

    Per module, not per session: while sync Playwright runs, its event loop counts as
    running in the main thread, and every async test after it would fail to start.
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed: {exc}")
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (make chromium)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    except Error as exc:
        pw.stop()
        pytest.skip(f"chromium cannot start: {str(exc).splitlines()[0]}")
    yield b
    b.close()
    pw.stop()
