"""API credentials for a ServiceAccount, as a kubeconfig a local process can load.

A kubelet mounts a Pod's ServiceAccount token at a fixed path; a process run by
the development pod runner (or the demo's operator) has no such mount, so it
gets a kubeconfig with the same cluster entry as the admin's and a token of
the ServiceAccount instead. The process then holds exactly the rights RBAC
gives that account, never the admin's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("jobqueue.podrunner")

#: A bound token's lifetime. Nothing refreshes it (a kubelet would); a demo or a
#: test ends long before.
TOKEN_TTL_S = 6 * 3600


def token_kubeconfig(admin_kubeconfig: Path, user: str, token: str) -> dict[str, Any]:
    """The admin kubeconfig's cluster (server and CA) with `token` as the only user."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": user,
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


async def pod_token(core: client.CoreV1Api, pod: Any) -> str:
    """A TokenRequest for the Pod's ServiceAccount, bound to the Pod (void once it is gone)."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[],
            expiration_seconds=TOKEN_TTL_S,
            bound_object_ref=client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
            ),
        )
    )
    answer = await core.create_namespaced_service_account_token(
        pod.spec.service_account_name, pod.metadata.namespace, request
    )
    token: str = answer.status.token
    return token


def wants_credentials(pod: Any) -> bool:
    """A Pod gets API credentials when it names a ServiceAccount and does not opt out."""
    return bool(pod.spec.service_account_name) and (
        pod.spec.automount_service_account_token is not False
    )


async def pod_credentials(
    core: client.CoreV1Api, pod: Any, admin_kubeconfig: Path, directory: Path
) -> dict[str, str]:
    """`KUBECONFIG` for the Pod's own ServiceAccount, or nothing when it gets none.

    A missing ServiceAccount leaves the Pod without credentials (logged), as a Pod
    with no token: its process then fails on its first API call, visibly.
    """
    if not wants_credentials(pod):
        return {}
    account = pod.spec.service_account_name
    try:
        token = await pod_token(core, pod)
    except ApiException as exc:
        log.warning(
            "no token for ServiceAccount %s of Pod %s (HTTP %s); it runs without credentials",
            account,
            pod.metadata.name,
            exc.status,
        )
        return {}
    path = write_kubeconfig(
        directory / f"{pod.metadata.name}.kubeconfig",
        token_kubeconfig(admin_kubeconfig, account, token),
    )
    return {"KUBECONFIG": str(path)}
