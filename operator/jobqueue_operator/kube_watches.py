"""The Deployment watches behind ``kube.Kube.watched_replicas``: one per namespace.

``replica_watch.ReplicaWatch`` is each watch's list/resume loop and makes no API
call itself; this module makes the two it needs (the list, and the watch read as
raw JSON lines) and owns the HTTP session they run on. That session is apart from
the one of the loops' requests because every watch holds a connection for as long
as it runs, and the request session's pool (100) must stay free for the loops.
"""

from __future__ import annotations

import functools

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from jobqueue_operator.ports import KubeError
from jobqueue_operator.replica_watch import ReplicaWatch, spec_replicas

#: The API server ends each Deployment watch after this long and the operator
#: resumes it from the last resourceVersion; the client gives up WATCH_GRACE_S
#: later, so a connection that died silently is noticed within about a minute.
WATCH_S = 60
WATCH_GRACE_S = 15


class DeploymentWatches:
    """The replicas of the Deployments of every namespace asked about, from its watch."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._watches: dict[str, ReplicaWatch] = {}

    def replicas(self, namespace: str, name: str) -> int | None:
        """The Deployment's replicas; ``None`` when the watch does not know.

        The namespace's watch starts on the first question about it; until it has
        listed, and while it fails, it does not know.
        """
        watch = self._watches.get(namespace)
        if watch is None:
            watch = self._watches[namespace] = ReplicaWatch(
                namespace,
                functools.partial(_list_replicas, self._apps, namespace),
                functools.partial(_open_watch, self._apps, namespace),
            )
            watch.start()
        return watch.get(name)

    async def close(self) -> None:
        """Stop every watch, then close the session they ran on."""
        for watch in self._watches.values():
            await watch.stop()
        self._watches.clear()
        await self._api.close()


async def _list_replicas(apps: client.AppsV1Api, namespace: str) -> tuple[dict[str, int], str]:
    """Every Deployment's replicas in ``namespace`` and the list's resourceVersion."""
    try:
        listing = await apps.list_namespaced_deployment(namespace, _request_timeout=WATCH_S)
    except ApiException as exc:
        raise KubeError(
            f"could not list the Deployments in {namespace}: HTTP {exc.status} {exc.reason}"
        ) from exc
    replicas = {item.metadata.name: spec_replicas(item.spec.replicas) for item in listing.items}
    return replicas, str(listing.metadata.resource_version)


async def _open_watch(
    apps: client.AppsV1Api, namespace: str, version: str
) -> aiohttp.ClientResponse:
    """A watch from ``version`` as raw JSON lines: a V1Deployment model per event costs more."""
    response: aiohttp.ClientResponse = await apps.list_namespaced_deployment(  # type: ignore[assignment]
        namespace,
        watch=True,
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=WATCH_S,
        _preload_content=False,
        _request_timeout=WATCH_S + WATCH_GRACE_S,
    )
    return response
