"""Redis in the shapes production runs it: TLS with client certificates, and Sentinel."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.fault_proxy import FaultProxy
from jobqueue_devkit.redis_cluster import RedisClusterNodes
from jobqueue_devkit.redis_sentinel import SentinelTopology
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.redis_tls import TlsFiles, make_certs
from jobqueue_devkit.worker_process import WorkerProcess, spawn_worker_process


@pytest.fixture(scope="module")
def tls_files() -> TlsFiles:
    return make_certs(Path(tempfile.mkdtemp(prefix="jq-redis-certs-")))


@pytest.fixture(scope="module")
def tls_redis(tls_files: TlsFiles) -> Iterator[RedisServer]:
    """A TLS-only redis-server (no plaintext port) that requires client certificates."""
    server = RedisServer(tls=tls_files)
    try:
        server.start()
    except DevkitError as exc:
        pytest.fail(f"TLS redis-server did not start: {exc}", pytrace=False)
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def sentinel(request: pytest.FixtureRequest) -> Iterator[SentinelTopology]:
    """1 master + 2 replicas + 3 sentinels (Debian's redis-server and redis-sentinel).

    A test module may set ``SENTINEL_DOWN_AFTER_MS`` (the devkit's default is 1 s).
    """
    down_after_ms = getattr(
        request.module, "SENTINEL_DOWN_AFTER_MS", SentinelTopology.down_after_ms
    )
    topology = SentinelTopology(down_after_ms=down_after_ms)
    try:
        topology.start()
    except DevkitError as exc:
        topology.cleanup()
        pytest.fail(f"Sentinel topology did not start: {exc}", pytrace=False)
    yield topology
    topology.cleanup()


@pytest.fixture
def settled(sentinel: SentinelTopology) -> SentinelTopology:
    """The topology with every server up again (a test may have killed the master), emptied."""
    for server in sentinel.servers:
        if server.process is None:
            server.start()
    port = sentinel.wait_settled(60)
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()
    return sentinel


SpawnWorker = Callable[..., WorkerProcess]


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[SpawnWorker]:
    procs: list[WorkerProcess] = []

    def spawn(redis_url: str, pod: str, **settings: Any) -> WorkerProcess:
        spawned = spawn_worker_process(redis_url, pod, tmp_path / f"{pod}.log", settings)
        procs.append(spawned)
        return spawned

    yield spawn
    for s in procs:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
    for s in procs:
        try:
            s.proc.wait(20)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(10)


@pytest.fixture
def fault_proxy(redis_server: RedisServer, redis_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared (emptied) test Redis."""
    proxy = FaultProxy(redis_server.host, redis_server.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    """A Redis Cluster: 3 masters, 3 replicas (redis-cli --cluster create)."""
    nodes = RedisClusterNodes()
    try:
        nodes.start()
    except DevkitError as exc:
        nodes.cleanup()
        pytest.fail(f"Redis Cluster did not start: {exc}", pytrace=False)
    yield nodes
    nodes.cleanup()
