"""The local control plane is a real one: controllers act, /scale works, RBAC is on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.waiting import eventually

pytestmark = pytest.mark.k8s

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
        },
    },
}


async def test_deployment_gets_replicaset_and_pods_and_follows_scale(
    kubeconfig: Path, namespace: str
) -> None:
    await config.load_kube_config(config_file=str(kubeconfig))
    async with client.ApiClient() as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        await apps.create_namespaced_deployment(namespace, DEPLOYMENT)

        async def replicasets() -> list[Any]:
            found = await apps.list_namespaced_replica_set(namespace, label_selector="app=web")
            return list(found.items)

        (rs,) = await eventually(replicasets)
        assert rs.metadata.owner_references[0].kind == "Deployment"
        assert rs.metadata.owner_references[0].name == "web"

        async def pods(count: int) -> list[Any]:
            found = await core.list_namespaced_pod(namespace, label_selector="app=web")
            items = [p for p in found.items if p.metadata.deletion_timestamp is None]
            return items if len(items) == count else []

        created = await eventually(lambda: pods(2))
        # No scheduler and no kubelet: the Pods exist but nobody runs them.
        assert {p.status.phase for p in created} == {"Pending"}
        assert all(p.metadata.owner_references[0].name == rs.metadata.name for p in created)

        scale = await apps.patch_namespaced_deployment_scale(
            "web", namespace, {"spec": {"replicas": 5}}
        )
        assert scale.spec.replicas == 5

        async def rs_replicas() -> int | None:
            current = await apps.read_namespaced_replica_set(rs.metadata.name, namespace)
            return current.spec.replicas if current.spec.replicas == 5 else None

        assert await eventually(rs_replicas) == 5
        assert len(await eventually(lambda: pods(5))) == 5

        await apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
        assert len(await eventually(lambda: pods(1))) == 1


def test_jobqueue_crd_is_served(control_plane: ControlPlane, namespace: str) -> None:
    out = control_plane.kubectl("get", "jobqueues", "-n", namespace)
    assert out == ""  # served, and empty in a fresh namespace
    resources = control_plane.kubectl("api-resources", "--api-group=jobqueue.dev", "-o", "name")
    assert "jobqueues.jobqueue.dev" in resources.split()


def test_rbac_is_enforced_for_identities_without_roles(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Authorization is RBAC, not AlwaysAllow: a bare ServiceAccount can do nothing."""
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    who = f"system:serviceaccount:{namespace}:nobody"
    result = subprocess.run(
        [
            "kubectl",
            f"--kubeconfig={control_plane.kubeconfig}",
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            namespace,
            f"--as={who}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.strip() == "no"
    admin = control_plane.kubectl("auth", "can-i", "delete", "deployments", "-n", namespace)
    assert admin.strip() == "yes"
    token = control_plane.kubectl("create", "token", "nobody", "-n", namespace).strip()
    assert token.count(".") == 2  # a signed JWT from the TokenRequest API
