"""The Deployment watch that saves a ``/scale`` read per poll, on the real API server.

It runs with the operator's own credentials (the shipped Role, bound in the
test's namespace only), so the rights it needs are the ones we ship.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from operator_harness import Kubectl, deployment

from jobqueue_devkit.waiting import eventually
from jobqueue_operator import kube_watches
from jobqueue_operator.kube import Kube
from jobqueue_operator.targets import TargetRef

pytestmark = [pytest.mark.k8s]


async def test_the_watch_follows_scale_create_and_delete_across_its_restarts(
    kube: Kube, kubectl: Kubectl, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server ends each watch after 1 s here, so every step below crosses
    # several resumes from the last resourceVersion.
    monkeypatch.setattr(kube_watches, "WATCH_S", 1)
    kubectl.apply(deployment("alpha", namespace, replicas=2))

    def seen(name: str, replicas: int | None) -> bool:
        return kube.watched_replicas(namespace, TargetRef(name)) == replicas

    async def until(name: str, replicas: int | None) -> None:
        await eventually(lambda: asyncio.sleep(0, seen(name, replicas)), 15, 0.05)

    assert kube.watched_replicas(namespace, TargetRef("alpha")) is None, (
        "nothing is known before the list"
    )
    await until("alpha", 2)
    await asyncio.sleep(2.5)
    kubectl("scale", "deployment", "alpha", "-n", namespace, "--replicas=4")
    await until("alpha", 4)
    kubectl.apply(deployment("beta", namespace, replicas=3))
    await until("beta", 3)
    await asyncio.sleep(2.5)
    kubectl("delete", "deployment", "alpha", "-n", namespace)
    await until("alpha", None)
    assert await kube.get_replicas(namespace, TargetRef("alpha")) is None
    assert kube.watched_replicas(namespace, TargetRef("beta")) == 3
    # the watch is of Deployments: a StatefulSet of the same name is read through /scale
    assert kube.watched_replicas(namespace, TargetRef("beta", "StatefulSet")) is None


async def test_without_the_right_to_watch_it_says_it_does_not_know(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    """A namespace the Role is not bound in: the list is refused, nothing is guessed."""
    other = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", other)
    try:
        kubectl.apply(deployment("gamma", other, replicas=2))
        for _ in range(20):
            assert kube.watched_replicas(other, TargetRef("gamma")) is None
            await asyncio.sleep(0.1)
        # ... while the namespace it may watch is served from the watch
        kubectl.apply(deployment("delta", namespace, replicas=1))
        await eventually(
            lambda: asyncio.sleep(0, kube.watched_replicas(namespace, TargetRef("delta")) == 1),
            15,
            0.05,
        )
    finally:
        kubectl("delete", "namespace", other, "--wait=false")
