"""The operator on Redis behind Sentinel and on Redis over mutual TLS, from the JobQueue spec.

Sentinel: ``spec.redis.sentinel`` (addresses + master name); the master is
SIGKILLed and the same operator process keeps scaling from the promoted replica.
TLS: a TLS-only redis-server that requires client certificates; the CA and the
client pair come from Secrets named in ``spec.redis.tls``; the server name is checked.
"""

from __future__ import annotations

import base64
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from operator_harness import Kubectl, OperatorProcess, deployment, fill, wait_for
from redis.exceptions import RedisError

from jobqueue_devkit.redis_cluster import RedisClusterNodes
from jobqueue_devkit.redis_sentinel import MASTER_NAME, SentinelTopology
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.redis_tls import SERVER_NAME, TlsFiles, make_certs
from jobqueue_protocol import keys

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def sentinel() -> Iterator[SentinelTopology]:
    topology = SentinelTopology().start()
    yield topology
    topology.cleanup()


@pytest.fixture
def cluster() -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes().start()
    yield nodes
    nodes.cleanup()


@pytest.fixture
def tls() -> Iterator[tuple[RedisServer, TlsFiles]]:
    files = make_certs(Path(tempfile.mkdtemp(prefix="jq-op-certs-")))
    server = RedisServer(tls=files).start()
    yield server, files
    server.cleanup()


def _jobqueue(
    name: str, namespace: str, redis: dict[str, object], queues: list[str] | None = None
) -> dict[str, object]:
    return {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": f"{name}-worker"},
            "redis": redis,
            "queues": queues or [f"{name}:jobs"],
            "pollingIntervalSeconds": 1,
            "minReplicas": 1,
            "maxReplicas": 10,
            "scaleUp": {"queueDepth": 10, "cooldownSeconds": 0, "maxStep": 10},
            "scaleDown": {"queueDepth": 2},
        },
    }


def _secret(name: str, namespace: str, data: dict[str, str], kind: str = "Opaque") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind,
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_operator_scales_through_a_sentinel_failover_without_restart(
    kubectl: Kubectl,
    namespace: str,
    sentinel: SentinelTopology,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    spec = {
        "sentinel": {
            "addresses": [f"127.0.0.1:{p}" for p in sentinel.sentinel_ports],
            "masterName": MASTER_NAME,
        }
    }
    kubectl.apply(deployment("ha-worker", namespace, replicas=1), _jobqueue("ha", namespace, spec))
    operator = start_operator()
    wait_for(
        lambda: kubectl.condition("ha", namespace, "Ready").get("status") == "True", 30, "Ready"
    )
    fill(sentinel.url, "ha:jobs", 30)
    wait_for(lambda: kubectl.replicas("ha-worker", namespace) >= 3, 20, "scale-up to 3")

    old = sentinel.master_port()
    assert old is not None
    sentinel.kill_master()
    sentinel.wait_failover(old, 30)
    # One sentinel announcing the new master does not mean every sentinel agrees
    # yet: a client asking another may still hear "no master" for a moment.
    deadline = time.monotonic() + 30
    while True:
        try:
            fill(sentinel.url, "ha:jobs", 50)  # 80 waiting now, on the promoted replica
            break
        except RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    wait_for(
        lambda: kubectl.replicas("ha-worker", namespace) >= 8, 40, "scale-up after the failover"
    )
    assert operator.proc.poll() is None  # the same process, never restarted


def test_operator_reads_redis_over_mutual_tls_from_secrets(
    kubectl: Kubectl,
    namespace: str,
    tls: tuple[RedisServer, TlsFiles],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    server, files = tls
    spec = {
        "host": "127.0.0.1",
        "port": server.port,
        "tls": {
            "enabled": True,
            "caSecretRef": {"name": "redis-ca"},
            "clientCertSecretRef": {"name": "redis-client"},
            "serverName": SERVER_NAME,
        },
    }
    wrong_name = {**spec, "tls": {**spec["tls"], "serverName": "not-redis.test"}}  # type: ignore[dict-item]
    kubectl.apply(
        deployment("tls-worker", namespace, replicas=1),
        deployment("bad-worker", namespace, replicas=1),
        _secret("redis-ca", namespace, {"ca.crt": files.ca.read_text()}),
        _secret(
            "redis-client",
            namespace,
            {"tls.crt": files.client_cert.read_text(), "tls.key": files.client_key.read_text()},
            "kubernetes.io/tls",
        ),
        _jobqueue("tls", namespace, spec),
        _jobqueue("bad", namespace, wrong_name),
    )
    client_url = (
        f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={files.ca}"
        f"&ssl_certfile={files.client_cert}&ssl_keyfile={files.client_key}"
    )
    fill(client_url, "tls:jobs", 30)
    start_operator()
    wait_for(
        lambda: kubectl.condition("tls", namespace, "Ready").get("status") == "True", 30, "Ready"
    )
    wait_for(lambda: kubectl.replicas("tls-worker", namespace) >= 3, 20, "scale-up over TLS")
    wait_for(
        lambda: kubectl.condition("bad", namespace, "MetricsAvailable").get("status") == "False",
        30,
        "a certificate that does not name serverName is refused",
    )
    assert kubectl.replicas("bad-worker", namespace) == 1


def test_operator_reads_queues_on_every_shard_through_a_shard_failover(
    kubectl: Kubectl,
    namespace: str,
    cluster: RedisClusterNodes,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    shards: dict[int, str] = {}
    for i in range(200):
        shards.setdefault(cluster.master_port_for(keys.queue_prefix(f"op-q{i}")), f"op-q{i}")
    assert len(shards) == 3
    queues = sorted(shards.values())
    kubectl.apply(
        deployment("cl-worker", namespace, replicas=1),
        _jobqueue("cl", namespace, {"url": cluster.url}, queues),
    )
    operator = start_operator()
    wait_for(
        lambda: kubectl.condition("cl", namespace, "Ready").get("status") == "True", 30, "Ready"
    )
    for q in queues:
        fill(cluster.url, q, 4)  # 12 in all, 4 per shard: only the sum is over the threshold
    wait_for(lambda: kubectl.replicas("cl-worker", namespace) > 1, 20, "a scale-up")
    assert kubectl.replicas("cl-worker", namespace) < 10

    victim = next(iter(shards))
    cluster.kill(victim)
    for q in queues:  # the producer retries while the victim's slots move
        deadline = time.monotonic() + 30
        while True:
            try:
                fill(cluster.url, q, 20)
                break
            except RedisError:
                assert time.monotonic() < deadline, "the cluster never took writes again"
                time.sleep(0.2)
    wait_for(
        lambda: kubectl.replicas("cl-worker", namespace) == 10, 40, "scale-up after the failover"
    )
    assert operator.proc.poll() is None
