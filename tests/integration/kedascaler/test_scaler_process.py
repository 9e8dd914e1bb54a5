"""`jobqueue-operator keda-scaler` as a process: mutual TLS, a Redis ACL user, clean logs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from scaler_client import ScalerClient

from jobqueue_devkit.certs import Pki, make_pki
from jobqueue_devkit.ports import free_port
from jobqueue_worker.producer import JobRequest, SyncProducer

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-never-logged"
USER = "keda-scaler-test"
QUEUE = "reports"


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[str]:
    """A password-protected, read-mostly Redis user, as a production scaler would use."""
    client = redis.Redis.from_url(redis_url)
    client.acl_setuser(
        USER,
        enabled=True,
        passwords=[f"+{PASSWORD}"],
        keys=["*"],
        commands=["+@read", "+ping", "+time", "+client", "+hello", "+info", "+config|get"],
    )
    try:
        yield USER
    finally:
        client.acl_deluser(USER)
        client.close()


def _scaler(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JQO_REDIS_PASSWORD": PASSWORD}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobqueue_operator.cli", "keda-scaler", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(
    client: ScalerClient, meta: dict[str, str], proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.metric_spec(meta)
            return
        except grpc.aio.AioRpcError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_mutual_tls_and_acl_password_and_no_secret_in_logs(
    redis_url: str, acl_user: str, tmp_path: Path
) -> None:
    pki: Pki = make_pki(tmp_path / "pki")
    producer = SyncProducer(redis_url, default_queue=QUEUE)
    producer.enqueue_many([JobRequest(type="noop", queue=QUEUE) for _ in range(7)])
    producer.close()
    port = free_port()
    log = tmp_path / "scaler.log"
    proc = _scaler(
        [
            "--listen",
            f"127.0.0.1:{port}",
            "--redis-url",
            redis_url,
            "--redis-username",
            acl_user,
            "--tls-cert",
            str(pki.serving_cert),
            "--tls-key",
            str(pki.serving_key),
            "--tls-client-ca",
            str(pki.ca_cert),
        ],
        log,
    )
    meta = {"queue": QUEUE}
    try:
        creds = grpc.ssl_channel_credentials(
            root_certificates=pki.ca_cert.read_bytes(),
            private_key=pki.admin_key.read_bytes(),
            certificate_chain=pki.admin_cert.read_bytes(),
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
            client = ScalerClient(channel)
            await _wait_ready(client, meta, proc)
            assert await client.metrics(meta, "jobqueue-backlog-reports") == [
                ("jobqueue-backlog-reports", 7.0)
            ]
        # Without a client certificate the handshake is refused.
        anonymous = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", anonymous) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await ScalerClient(channel).is_active(meta)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert "listening on 127.0.0.1" in text
    assert "TLS" in text
    assert PASSWORD not in text


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--tls-cert", "/nonexistent.crt"], "--tls-cert and --tls-key go together"),
        (["--redis-url", "redis://user:pw@localhost/0"], "must not carry credentials"),
        (["--redis-url", "http://localhost"], "must start with redis://"),
        (["--tls-cert", "/no.crt", "--tls-key", "/no.key"], "cannot read the TLS"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, argv: list[str], names: str) -> None:
    log = tmp_path / "scaler.log"
    proc = _scaler(["--listen", f"127.0.0.1:{free_port()}", *argv], log)
    assert proc.wait(timeout=60) == 2
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("jobqueue-operator keda-scaler: error: ")
    assert names in lines[0]
