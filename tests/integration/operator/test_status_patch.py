"""The status write on the real API server, with the operator's own credentials.

The reply to the PATCH is read but not decoded, so the client raises nothing
for an error status by itself: these tests keep the errors visible.
"""

from __future__ import annotations

import pytest
from operator_harness import Kubectl, deployment, jobqueue

from jobqueue_operator.kube import Kube
from jobqueue_operator.ports import KubeError

pytestmark = [pytest.mark.k8s]


async def test_the_status_is_merged_into_the_jobqueue(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("web", namespace))
    kubectl.apply(jobqueue("orders", namespace, "web", "redis://127.0.0.1:1/0"))
    await kube.patch_status(namespace, "orders", {"desiredReplicas": 3, "lastMessage": "first"})
    await kube.patch_status(namespace, "orders", {"currentReplicas": 2})
    status = kubectl.get("jobqueue", "orders", namespace)["status"]
    assert (status["desiredReplicas"], status["currentReplicas"]) == (3, 2)
    assert status["lastMessage"] == "first"


async def test_a_status_the_schema_refuses_is_an_error_naming_the_jobqueue(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("web", namespace))
    kubectl.apply(jobqueue("orders", namespace, "web", "redis://127.0.0.1:1/0"))
    with pytest.raises(KubeError, match=r"patch the status of JobQueue orders: HTTP 422"):
        await kube.patch_status(namespace, "orders", {"desiredReplicas": "three"})
    assert "desiredReplicas" not in kubectl.get("jobqueue", "orders", namespace).get("status", {})


async def test_a_jobqueue_deleted_meanwhile_is_not_an_error(kube: Kube, namespace: str) -> None:
    await kube.patch_status(namespace, "gone", {"desiredReplicas": 1})


async def test_a_namespace_without_the_right_is_an_error(kube: Kube, kubectl: Kubectl) -> None:
    """The Role is bound in the test's namespace only: elsewhere the write is refused."""
    with pytest.raises(KubeError, match=r"HTTP 403"):
        await kube.patch_status("default", "orders", {"desiredReplicas": 1})
