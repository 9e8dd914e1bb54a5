"""The Redis password comes from a Secret, and a read-only ACL user is enough.

A second redis-server, started here, has the default user switched off and one
user that may only run the commands the stats read needs (no writes, no Lua).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from operator_harness import Kubectl, OperatorProcess, deployment, wait_for

from jobqueue_devkit.ports import free_port
from jobqueue_protocol import keys

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

READ_ONLY = "+time +zcard +zrange +zcount +hgetall +ping"


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    acl = tmp_path / "users.acl"
    acl.write_text(
        "user default off\n"
        "user admin on >admin-pw ~* &* +@all\n"
        f"user operator on >op-pw ~jq:* resetchannels -@all {READ_ONLY}\n"
    )
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--aclfile", str(acl), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    admin = redis.Redis(port=port, username="admin", password="admin-pw")
    wait_for(lambda: _pings(admin), 10, "the ACL redis-server")
    yield port
    admin.close()
    proc.terminate()
    proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _secret(name: str, namespace: str, password: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def _jobqueue(name: str, namespace: str, spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_password_from_a_secret_and_a_read_only_user(
    kubectl: Kubectl,
    namespace: str,
    acl_redis: int,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    operator_user = redis.Redis(port=acl_redis, username="operator", password="op-pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        operator_user.zadd(keys.ready_key("mail", 5), {"x": 1})  # the user really is read-only
    with pytest.raises(redis.exceptions.NoPermissionError):
        operator_user.eval("return 1", 0)
    operator_user.close()

    def spec(secret: str, target: str) -> dict[str, object]:
        return {
            "scaleTargetRef": {"name": target},
            "redis": {"host": "127.0.0.1", "port": acl_redis, "username": "operator",
                      "passwordSecretRef": {"name": secret}},
            "queues": ["mail"],
            "pollingIntervalSeconds": 1,
            "scaleUp": {"queueDepth": 10, "cooldownSeconds": 0},
            "scaleDown": {"queueDepth": 2},
        }  # fmt: skip

    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        deployment("other", namespace, replicas=1),
        _secret("redis-auth", namespace, "op-pw"),
        _jobqueue("mail", namespace, spec("redis-auth", "worker")),
        _jobqueue("nosecret", namespace, spec("missing", "other")),
    )
    op = start_operator()
    wait_for(
        lambda: kubectl.condition("mail", namespace, "Ready").get("status") == "True",
        30,
        "Ready with the Secret's password and the read-only user",
    )
    admin = redis.Redis(port=acl_redis, username="admin", password="admin-pw")
    now_ms = int(time.time() * 1000)
    admin.zadd(keys.ready_key("mail", 5), {f"j{i}": now_ms for i in range(15)})
    admin.close()
    wait_for(lambda: kubectl.replicas("worker", namespace) > 1, 10, "a scale-up")

    missing = kubectl.condition("nosecret", namespace, "Ready")
    assert (missing["status"], missing["reason"]) == ("False", "SecretNotFound")
    assert "missing" in missing["message"]
    # The password never shows up anywhere the operator writes.
    for where in (
        kubectl("get", "jobqueues", "-n", namespace, "-o", "yaml"),
        kubectl("get", "events", "-n", namespace, "-o", "yaml"),
        op.output(),
    ):
        assert "op-pw" not in where
