"""Redis behind Sentinel on loopback: one master, two replicas, three sentinels.

Debian's ``redis-server`` and ``redis-sentinel`` on free ports. The sentinels
declare a master down after ``down_after_ms`` and agree with a quorum of 2, so a
``kill -9`` of the master promotes a replica within a few seconds. The topology
can say which server is master now and kill it, which is what chaos tests need.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import cast

import redis

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.procs import ManagedProcess
from jobqueue_devkit.redis_server import RedisServer, find_redis_binary, ping

MASTER_NAME = "jqmaster"
START_TIMEOUT_S = 30.0


def find_sentinel_binary() -> Path:
    found = shutil.which("redis-sentinel")
    if found:
        return Path(found)
    raise DevkitError(
        "no redis-sentinel found: install Debian's redis-sentinel "
        "(`sudo apt-get install redis-sentinel`, done by `make redis`)"
    )


class SentinelEvents:
    """Every event one sentinel publishes (``+sdown``, ``+switch-master``, ...), timed.

    A chaos test needs to know how many failovers really happened: under a loaded
    host a promoted replica can itself be declared down and replaced, and with
    asynchronous replication that second failover discards what the first new
    master acknowledged. Times are ``time.monotonic()`` at receipt.
    """

    def __init__(self, port: int, password: str | None) -> None:
        self._client = redis.Redis(port=port, socket_timeout=5, password=password)
        self._pubsub = self._client.pubsub()
        self._pubsub.psubscribe("*")
        self._pubsub.get_message(timeout=2)  # the psubscribe confirmation: now listening
        self.events: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="sentinel-events", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.2)
            except (redis.RedisError, OSError, ValueError):
                return
            if message and message.get("type") == "pmessage":
                channel, data = message["channel"], message["data"]
                self.events.append(
                    (
                        time.monotonic(),
                        channel.decode() if isinstance(channel, bytes) else str(channel),
                        data.decode() if isinstance(data, bytes) else str(data),
                    )
                )

    def switches(self) -> list[float]:
        """When this sentinel moved to a new master, once per failover."""
        return [at for at, channel, _ in self.events if channel == "+switch-master"]

    def summary(self) -> list[str]:
        """The events that tell a failover's story, in order."""
        wanted = ("+sdown", "+odown", "+switch-master", "+convert-to-slave", "-failover-abort")
        return [f"{c} {d}" for _, c, d in self.events if c.startswith(wanted)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._pubsub.close()
        self._client.close()


@dataclass
class SentinelTopology:
    """1 master + ``replicas`` replicas + ``sentinels`` sentinels, started and stopped together."""

    replicas: int = 2
    sentinels: int = 3
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    #: The data nodes' password (requirepass + masterauth) and the sentinels' own.
    password: str | None = None
    sentinel_password: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-sentinel-")))
    servers: list[RedisServer] = field(default_factory=list, init=False)
    sentinel_ports: list[int] = field(default_factory=list, init=False)
    _sentinel_procs: list[ManagedProcess] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        auth = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{auth}{hosts}/{MASTER_NAME}/0{query}"

    def _auth_args(self) -> tuple[str, ...]:
        if not self.password:
            return ()
        return ("--requirepass", self.password, "--masterauth", self.password)

    def start(self) -> SentinelTopology:
        binary = find_redis_binary()
        master = RedisServer(
            workdir=self.workdir / "r0", binary=binary, extra_args=self._auth_args()
        ).start()
        self.servers.append(master)
        for i in range(1, self.replicas + 1):
            replica = RedisServer(
                workdir=self.workdir / f"r{i}",
                binary=binary,
                extra_args=("--replicaof", "127.0.0.1", str(master.port), *self._auth_args()),
            )
            self.servers.append(replica.start())
        for i in range(self.sentinels):
            self._start_sentinel(i, master.port)
        self.wait_settled(START_TIMEOUT_S)
        return self

    def _start_sentinel(self, index: int, master_port: int) -> None:
        sentinel = find_sentinel_binary()
        for _ in range(5):
            port = free_port()
            conf = self.workdir / f"sentinel{index}.conf"
            conf.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        "bind 127.0.0.1",
                        "protected-mode no",
                        "daemonize no",
                        'logfile ""',
                        f"dir {self.workdir}",
                        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
                        f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                        f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
                        f"sentinel parallel-syncs {MASTER_NAME} 1",
                        *(
                            [f"sentinel auth-pass {MASTER_NAME} {self.password}"]
                            if self.password
                            else []
                        ),
                        # Sentinels authenticate to each other with their own requirepass.
                        *(
                            [f"requirepass {self.sentinel_password}"]
                            if self.sentinel_password
                            else []
                        ),
                        "",
                    ]
                )
            )
            proc = ManagedProcess(
                f"redis-sentinel-{index}",
                [str(sentinel), str(conf)],
                self.workdir / f"s{index}.log",
            )
            proc.start()
            try:
                proc.wait_ready(partial(ping, "127.0.0.1", port), 15.0, "answering PING")
            except DevkitError:
                proc.stop(grace_s=2)
                if proc.port_clash():
                    continue
                raise
            self._sentinel_procs.append(proc)
            self.sentinel_ports.append(port)
            return
        raise DevkitError("redis-sentinel: no free port after 5 attempts")

    def _ask(self, port: int, *command: str) -> object:
        client = redis.Redis(
            port=port, socket_timeout=2, decode_responses=True, password=self.sentinel_password
        )
        try:
            reply: object = client.execute_command(*command)  # type: ignore[no-untyped-call]
            return reply
        finally:
            client.close()

    def watch_events(self) -> SentinelEvents:
        """Start recording the first sentinel's events; call ``stop()`` on the result."""
        return SentinelEvents(self.sentinel_ports[0], self.sentinel_password)

    def master_port(self) -> int | None:
        """The master's port as the first answering sentinel sees it."""
        for port in self.sentinel_ports:
            try:
                reply = self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except redis.RedisError:
                continue
            if isinstance(reply, list) and len(reply) == 2:
                return int(reply[1])
        return None

    def wait_settled(self, timeout_s: float) -> int:
        """Wait until every sentinel names one master that has all replicas in sync."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                ports: set[tuple[str, ...]] = {
                    tuple(
                        cast(
                            list[str],
                            self._ask(p, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME),
                        )
                    )
                    for p in self.sentinel_ports
                }
                if len(ports) == 1:
                    (addr,) = ports
                    port = int(addr[1])
                    info = self.data_client(port)
                    try:
                        repl = info.info("replication")
                    finally:
                        info.close()
                    alive = sum(1 for s in self.servers if s.process is not None) - 1
                    online = sum(
                        1
                        for k, v in repl.items()
                        if k.startswith("slave")
                        and isinstance(v, dict)
                        and v.get("state") == "online"
                    )
                    others = self._ask(self.sentinel_ports[0], "SENTINEL", "SENTINELS", MASTER_NAME)
                    if (
                        repl.get("role") == "master"
                        and online >= alive
                        and isinstance(others, list)
                        and len(others) == len(self.sentinel_ports) - 1
                    ):
                        return port
                last = f"sentinels report {ports}"
            except (redis.RedisError, OSError, TypeError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise DevkitError(f"Sentinel topology did not settle in {timeout_s:.0f} s: {last}")

    def data_client(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, socket_timeout=2, decode_responses=True, password=self.password
        )

    def server_on(self, port: int) -> RedisServer:
        for server in self.servers:
            if server.port == port:
                return server
        raise DevkitError(f"no server of this topology on port {port}")

    def kill_master(self) -> RedisServer:
        """SIGKILL the current master; returns it (restart it later with ``start()``)."""
        port = self.master_port()
        if port is None:
            raise DevkitError("no sentinel names a master")
        server = self.server_on(port)
        server.kill()
        return server

    def wait_failover(self, old_port: int, timeout_s: float) -> int:
        """The new master's port once the sentinels have promoted a replica."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                return port
            time.sleep(0.1)
        raise DevkitError(f"no failover within {timeout_s:.0f} s\n{self.describe()}")

    def describe(self) -> str:
        """What each sentinel believes and last logged: enough to tell why a failover stalled."""
        parts = []
        for port, proc in zip(self.sentinel_ports, self._sentinel_procs, strict=True):
            try:
                view = self._ask(port, "SENTINEL", "MASTER", MASTER_NAME)
                fields = view if isinstance(view, dict) else {}  # redis-py parses it to a dict
                seen = {
                    k: fields.get(k)
                    for k in ("ip", "port", "flags", "num-slaves", "failover-state")
                }
            except redis.RedisError as exc:
                seen = {"error": str(exc)}
            parts.append(f"sentinel :{port} sees {seen}; its log ends:\n{proc.log_tail(25)}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self._sentinel_procs:
            proc.stop(grace_s=2)
        self._sentinel_procs.clear()
        for server in self.servers:
            server.stop(grace_s=2)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
