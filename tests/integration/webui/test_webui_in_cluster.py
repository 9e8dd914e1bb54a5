"""The Scaling page's reader as it runs in the shipped Deployment: no Kubernetes client,
the Pod's service-account token and CA, the shipped Role, the real API server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_web.kube import Cluster

pytestmark = [pytest.mark.k8s]

REPO = Path(__file__).resolve().parents[3]
JOBQUEUE = {
    "apiVersion": "jobqueue.dev/v1alpha1",
    "kind": "JobQueue",
    "metadata": {"name": "emails"},
    "spec": {
        "scaleTargetRef": {"name": "email-worker"},
        "redis": {"host": "redis.example.svc"},
        "queues": ["emails"],
        "maxReplicas": 8,
    },
}


def mount_account(plane: ControlPlane, namespace: str, account: str, into: Path) -> Path:
    """What the kubelet mounts for a Pod of ``account``: a bound token and the cluster CA."""
    into.mkdir()
    token = plane.kubectl("create", "token", account, "-n", namespace)
    (into / "token").write_text(token.strip())
    assert plane.pki is not None
    (into / "ca.crt").write_bytes(plane.pki.ca_cert.read_bytes())
    return into


def in_cluster(monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    url = urlsplit(server)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(url.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))


def test_the_shipped_role_lets_the_pods_token_list_jobqueues(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane = control_plane
    for name in ("serviceaccount.yaml", "rbac.yaml"):
        text = (REPO / "manifests" / "webui" / name).read_text()
        text = text.replace("namespace: jobqueue-demo", f"namespace: {namespace}")
        (tmp_path / name).write_text(text)
        plane.kubectl("apply", "-f", str(tmp_path / name))
    (tmp_path / "jq.json").write_text(json.dumps(JOBQUEUE))
    plane.kubectl("apply", "-n", namespace, "-f", str(tmp_path / "jq.json"))
    plane.kubectl("create", "serviceaccount", "stranger", "-n", namespace)
    in_cluster(monkeypatch, plane.server)
    monkeypatch.delenv("KUBECONFIG", raising=False)

    async def read(account: Path) -> tuple[list[str], str | None]:
        cluster = Cluster(namespace, service_account_dir=account)
        await cluster.start()
        try:
            views = await cluster.list()
        finally:
            await cluster.close()
        return [f"{v.namespace}/{v.name} max {v.max_replicas}" for v in views], cluster.problem

    web = mount_account(plane, namespace, "jobqueue-web", tmp_path / "web")
    assert asyncio.run(read(web)) == ([f"{namespace}/emails max 8"], None)
    # A service account without the Role: the page says why instead of failing.
    stranger = mount_account(plane, namespace, "stranger", tmp_path / "stranger")
    views, problem = asyncio.run(read(stranger))
    assert views == []
    assert problem is not None
    assert "HTTP 403" in problem
