"""TLS towards a real redis-server: CA bundle, client certificate, server name.

The server listens on TLS only and requires a client certificate signed by the
test CA, so every path below proves the option was really used: without it the
handshake fails.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.redis_tls import SERVER_NAME, TlsFiles
from jobqueue_operator.observe import RedisPools, read
from jobqueue_operator.redis_endpoint import endpoint_for
from jobqueue_operator.redis_spec import RedisConnection, secret_refs
from jobqueue_worker.broker import Broker
from jobqueue_worker.producer import Producer, SyncProducer

pytestmark = pytest.mark.redis


def _url(server: RedisServer, tls: TlsFiles, **extra: str) -> str:
    params = {
        "ssl_ca_certs": str(tls.ca),
        "ssl_certfile": str(tls.client_cert),
        "ssl_keyfile": str(tls.client_key),
        **extra,
    }
    return f"rediss://127.0.0.1:{server.port}/0?{urlencode(params)}"


async def test_producer_and_broker_over_mutual_tls(
    tls_redis: RedisServer, tls_files: TlsFiles
) -> None:
    url = _url(tls_redis, tls_files)
    async with Producer(url, default_queue="tls") as producer:
        job_id = await producer.enqueue("noop", {"n": 1})
        record = await producer.status(job_id)
    assert record is not None
    sync = SyncProducer(url, default_queue="tls")
    try:
        assert sync.status(job_id) is not None
    finally:
        sync.close()


async def test_server_name_is_checked(tls_redis: RedisServer, tls_files: TlsFiles) -> None:
    named = Broker(_url(tls_redis, tls_files, ssl_server_name=SERVER_NAME))
    try:
        assert await named.ping()
    finally:
        await named.close()
    wrong = Broker(_url(tls_redis, tls_files, ssl_server_name="not-redis.test"))
    try:
        with pytest.raises(RedisConnectionError, match="certificate"):
            await wrong.ping()
    finally:
        await wrong.close()


@pytest.mark.parametrize(
    ("drop", "why"),
    [("ssl_certfile", "no client certificate"), ("ssl_ca_certs", "server CA not trusted")],
)
async def test_missing_tls_material_is_refused(
    tls_redis: RedisServer, tls_files: TlsFiles, drop: str, why: str
) -> None:
    params = {
        "ssl_ca_certs": str(tls_files.ca),
        "ssl_certfile": str(tls_files.client_cert),
        "ssl_keyfile": str(tls_files.client_key),
    }
    params.pop(drop)
    if drop == "ssl_certfile":
        params.pop("ssl_keyfile")
    broker = Broker(f"rediss://127.0.0.1:{tls_redis.port}/0?{urlencode(params)}")
    try:
        with pytest.raises(RedisConnectionError):
            await broker.ping()
    finally:
        await broker.close()


async def test_operator_reads_over_tls_with_pem_from_secrets(
    tls_redis: RedisServer, tls_files: TlsFiles
) -> None:
    """The spec names Secrets; their PEM text (as the operator reads it) opens the connection."""
    conn = RedisConnection.model_validate(
        {
            "host": "127.0.0.1",
            "port": tls_redis.port,
            "tls": {
                "enabled": True,
                "caSecretRef": {"name": "redis-ca"},
                "clientCertSecretRef": {"name": "redis-client"},
                "serverName": SERVER_NAME,
            },
        }
    )
    assert secret_refs(conn) == {
        "ca": ("redis-ca", "ca.crt"),
        "cert": ("redis-client", "tls.crt"),
        "key": ("redis-client", "tls.key"),
    }
    secrets = {
        "ca": tls_files.ca.read_text(),
        "cert": tls_files.client_cert.read_text(),
        "key": tls_files.client_key.read_text(),
    }
    async with Producer(_url(tls_redis, tls_files), default_queue="tls-op") as producer:
        for i in range(3):
            await producer.enqueue("noop", {"i": i})
    pools = RedisPools()
    try:
        client = pools.client("ns/jq", endpoint_for(conn, None, secrets))
        observation, _ = await read(client, ["tls-op"], display="tls", timeout_s=5.0)
        assert observation.depth == 3
        no_client_cert = {k: v for k, v in secrets.items() if k == "ca"}
        bare = pools.client("ns/other", endpoint_for(conn, None, no_client_cert))
        with pytest.raises(Exception, match=r"(?i)redis|connection|ssl|certificate"):
            await read(bare, ["tls-op"], display="tls", timeout_s=5.0)
    finally:
        await pools.close()
