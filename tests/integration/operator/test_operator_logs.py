"""``jobqueue-operator --log-format json`` (here through JQO_LOG_FORMAT) on the real control plane.

Every line is JSON, kopf's own included; lines written while a JobQueue's loop
runs name the JobQueue and its namespace; the Redis password from the Secret
(right and wrong) never appears.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis
from operator_harness import Kubectl, OperatorProcess, deployment, fill, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "op-log-pw-789"
WRONG = "wrong-pw-000"


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[None]:
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("jqop", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                      channels=["*"], commands=["+@all"])  # fmt: skip
    try:
        yield
    finally:
        admin.acl_deluser("jqop")
        admin.close()


def _secret(name: str, namespace: str, password: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def test_json_logs_name_the_jobqueue_and_hold_no_password(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    acl_user: None,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    port = urlsplit(redis_url).port

    def jq(name: str, secret: str) -> dict[str, object]:
        return {
            "apiVersion": "jobqueue.dev/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"name": name},
                "redis": {"host": "127.0.0.1", "port": port, "username": "jqop",
                          "passwordSecretRef": {"name": secret}},
                "queues": [f"{name}:jobs"],
                "pollingIntervalSeconds": 1,
                "scaleUp": {"queueDepth": 10, "cooldownSeconds": 0},
                "scaleDown": {"queueDepth": 2},
            },
        }  # fmt: skip

    kubectl.apply(
        deployment("mail", namespace, replicas=1),
        deployment("broken", namespace, replicas=1),
        _secret("right", namespace, PASSWORD),
        _secret("wrong", namespace, WRONG),
        jq("mail", "right"),
        jq("broken", "wrong"),
    )
    op = start_operator(JQO_LOG_FORMAT="json")
    fill(redis_url, "mail:jobs", 15)
    wait_for(lambda: kubectl.replicas("mail", namespace) > 1, 60, "a scale-up of mail")
    wait_for(lambda: '"jobqueue": "broken"' in op.output(), 30, "a logged failure of broken")
    op.stop()
    text = op.output()
    assert PASSWORD not in text
    assert WRONG not in text
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{text[-3000:]}") from None
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    scaled = next(r for r in records if r["msg"].startswith("Scaled Deployment mail"))
    assert (scaled["jobqueue"], scaled["namespace"]) == ("mail", namespace)
    assert any(r["logger"].startswith("kopf") for r in records), "kopf's lines go through it too"
    failing = [r for r in records if r.get("jobqueue") == "broken" and r["level"] == "WARNING"]
    assert failing, "the broken JobQueue's warnings name it"
