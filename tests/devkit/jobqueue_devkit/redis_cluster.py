"""A Redis Cluster on loopback: 3 masters and 3 replicas, made with ``redis-cli --cluster create``.

Debian's ``redis-server`` (cluster mode) and ``redis-cli``. Nodes time out after
``node_timeout_ms``, so a SIGKILLed master's replica takes over within a few
seconds. The cluster can say which node serves a key's slot and kill it.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.ports import is_listening
from jobqueue_devkit.redis_server import RedisServer, find_redis_binary

START_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 20


def find_cli_binary() -> Path:
    found = shutil.which("redis-cli")
    if found:
        return Path(found)
    raise DevkitError("no redis-cli found: install Debian's redis-tools (comes with redis-server)")


@dataclass
class RedisClusterNodes:
    """``masters`` masters, each with ``replicas_per_master`` replicas."""

    masters: int = 3
    replicas_per_master: int = 1
    node_timeout_ms: int = 1500
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-cluster-")))
    servers: list[RedisServer] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[:3])
        return f"redis+cluster://{seeds}"

    def start(self) -> RedisClusterNodes:
        binary = find_redis_binary()
        rng = random.Random()
        for i in range(self.masters * (1 + self.replicas_per_master)):
            self.servers.append(self._start_node(i, binary, rng))
        create = subprocess.run(
            [
                str(find_cli_binary()),
                "--cluster", "create",
                *(f"127.0.0.1:{s.port}" for s in self.servers),
                "--cluster-replicas", str(self.replicas_per_master),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        if create.returncode != 0:
            raise DevkitError(f"redis-cli --cluster create failed: {create.stdout[-2000:]}")
        self.wait_healthy(START_TIMEOUT_S)
        self.wait_replicas_synced(START_TIMEOUT_S)
        return self

    def _start_node(self, index: int, binary: Path, rng: random.Random) -> RedisServer:
        """A cluster node on a port whose bus port (+10000) is free too (both <= 65535)."""
        for _ in range(PORT_ATTEMPTS):
            port = rng.randrange(20000, 45000)
            if is_listening(port) or is_listening(port + 10000):
                continue
            node = RedisServer(
                workdir=self.workdir / f"n{index}",
                binary=binary,
                port=port,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # A shard whose master and replica are both gone must not stop the others.
                    "--cluster-require-full-coverage", "no",
                ),
            )  # fmt: skip
            try:
                return node.start()
            except DevkitError:
                continue
        raise DevkitError(f"no free cluster port pair after {PORT_ATTEMPTS} attempts")

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def wait_healthy(self, timeout_s: float) -> None:
        """Until every live node reports cluster_state:ok and all slots served."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                states = []
                for s in self.servers:
                    if s.process is None:
                        continue
                    client = self._client(s.port)
                    try:
                        raw = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                    finally:
                        client.close()
                    info = dict(line.split(":", 1) for line in str(raw).splitlines() if ":" in line)
                    states.append(
                        info.get("cluster_state") == "ok"
                        and int(info.get("cluster_slots_ok", 0)) == 16384
                    )
                if states and all(states):
                    return
                last = f"{states}"
            except (redis.RedisError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise DevkitError(f"Redis Cluster not healthy within {timeout_s:.0f} s: {last}")

    def master_port_for(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        slot = key_slot(key.encode())
        for s in self.servers:
            if s.process is None:
                continue
            client = self._client(s.port)
            try:
                shards = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
            for entry in shards:
                if int(entry[0]) <= slot <= int(entry[1]):
                    return int(entry[2][1])
        raise DevkitError(f"no live node serves slot {slot}")

    def master_ports(self) -> set[int]:
        ports = set()
        for s in self.servers:
            if s.process is None:
                continue
            client = self._client(s.port)
            try:
                if client.info("replication").get("role") == "master":
                    ports.add(s.port)
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        return ports

    def kill(self, port: int) -> RedisServer:
        for s in self.servers:
            if s.port == port:
                s.kill()
                return s
        raise DevkitError(f"no node of this cluster on port {port}")

    def revive(self, timeout_s: float = 60.0) -> None:
        """Restart killed nodes (they rejoin as replicas) until every master has a replica."""
        for s in self.servers:
            if s.process is None:
                s.start()
        self.wait_healthy(timeout_s)
        self.wait_replicas_synced(timeout_s)

    def wait_replicas_synced(self, timeout_s: float) -> None:
        """Until every master has a replica online: one that never synced cannot take over."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            synced = []
            for port in self.master_ports():
                client = self._client(port)
                try:
                    repl = client.info("replication")
                finally:
                    client.close()
                synced.append(
                    any(
                        isinstance(v, dict) and v.get("state") == "online"
                        for k, v in repl.items()
                        if k.startswith("slave")
                    )
                )
            if len(synced) == self.masters and all(synced):
                return
            time.sleep(0.2)
        raise DevkitError(f"cluster masters without a synced replica after {timeout_s:.0f} s")

    def stop(self) -> None:
        for s in self.servers:
            s.stop(grace_s=2)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
