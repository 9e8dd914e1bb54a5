"""One throwaway ``redis-server`` on a free loopback port, without persistence."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from bench import procs

REDIS_ARGS = ("--save", "", "--appendonly", "no")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisSnapshot:
    """What a measurement window needs from Redis: command counts, reads, server CPU."""

    commands: dict[str, int]
    reads: int
    cpu_s: float


@dataclass
class RedisServer:
    binary: str = "redis-server"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-redis-")))
    _client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def command_line(self) -> list[str]:
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            *REDIS_ARGS,
            "--dir",
            str(self.workdir),
            "--maxmemory-policy",
            "noeviction",
            "--loglevel",
            "warning",
        ]

    def start(self, log: Path) -> None:
        from bench.ceiling import apt_install

        path = shutil.which(self.binary) or apt_install(self.binary, "redis-server")
        if not path:
            raise RuntimeError(f"{self.binary} not found (apt-get install redis-server)")
        self.port = free_port()
        self.proc = procs.spawn(self.command_line, env={}, cwd=self.workdir, log=log)
        self._client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)
        end = time.monotonic() + 10
        while True:
            try:
                self._client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start; see {log}") from None
                time.sleep(0.05)

    @property
    def client(self) -> redis.Redis:
        assert self._client is not None
        return self._client

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def flush(self) -> None:
        self.client.flushall()
        self.client.config_resetstat()

    def snapshot(self) -> RedisSnapshot:
        info: dict[str, Any] = self.client.execute_command(  # type: ignore[no-untyped-call]
            "INFO", "commandstats", "stats", "cpu"
        )
        commands: dict[str, int] = {}
        for key, val in info.items():
            if key.startswith("cmdstat_") and isinstance(val, dict):
                commands[key.removeprefix("cmdstat_")] = int(val["calls"])
        # Redis's own getrusage (µs resolution), not /proc ticks (10 ms).
        cpu = float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))
        return RedisSnapshot(commands=commands, reads=int(info["total_reads_processed"]), cpu_s=cpu)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.proc is not None:
            procs.stop(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Commands the harness itself sends while measuring; excluded from per-job counts.
HARNESS_COMMANDS = frozenset({"info", "config|resetstat", "flushall", "ping"})


def delta(
    a: RedisSnapshot, b: RedisSnapshot, harness_reads: int = 0
) -> tuple[dict[str, int], int, float]:
    """Per-command call deltas (harness commands removed), reads delta, server CPU delta.

    ``harness_reads``: INFO calls the harness made strictly between ``a`` and ``b``.
    """
    cmds = {
        k: b.commands.get(k, 0) - a.commands.get(k, 0)
        for k in b.commands
        if k not in HARNESS_COMMANDS and b.commands.get(k, 0) - a.commands.get(k, 0) > 0
    }
    # The closing INFO's own read is counted in b.
    return cmds, max(0, b.reads - a.reads - 1 - harness_reads), b.cpu_s - a.cpu_s
