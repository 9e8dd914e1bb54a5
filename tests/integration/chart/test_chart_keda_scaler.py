"""The chart's KEDA external scaler: off by default; on, a hardened Deployment and its Service."""

from __future__ import annotations

import pytest
from chart_harness import CHART, Helm, one, pod_spec

pytestmark = [pytest.mark.helm]

NAME = "jobqueue-operator-keda-scaler"


def test_off_by_default(helm: Helm) -> None:
    docs = helm.template()
    assert not [d for d in docs if d["metadata"]["name"] == NAME]


def test_on_with_password_and_mutual_tls(helm: Helm) -> None:
    docs = helm.template(
        sets=[
            "kedaScaler.enabled=true",
            "kedaScaler.redis.url=rediss://redis.queues.svc:6380/2",
            "kedaScaler.redis.username=keda",
            "kedaScaler.redis.passwordSecretRef.name=redis-auth",
            "kedaScaler.redis.passwordSecretRef.key=password",
            "kedaScaler.tls.secretName=scaler-tls",
            "kedaScaler.tls.requireClientCert=true",
        ]
    )
    pod = pod_spec(one(docs, "Deployment", NAME))
    (container,) = pod["containers"]
    assert container["args"][0] == "keda-scaler"
    assert "--redis-url=rediss://redis.queues.svc:6380/2" in container["args"]
    assert "--redis-username=keda" in container["args"]
    assert "--tls-client-ca=/tls/ca.crt" in container["args"]
    [password] = container["env"]
    assert password["name"] == "JQO_REDIS_PASSWORD"
    assert password["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "password"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = one(docs, "Service", NAME)
    assert service["spec"]["ports"][0]["port"] == 9090


def test_a_url_with_credentials_is_refused(helm: Helm) -> None:
    result = helm.run(
        "template", "x", str(CHART), "--set", "kedaScaler.redis.url=redis://u:pw@redis:6379/0"
    )
    assert result.returncode != 0
    assert "kedaScaler/redis/url" in result.stderr
