"""``spec.replicas`` of every Deployment in one namespace, kept by a list and a watch.

Reading ``/scale`` on every poll of every JobQueue was one API request per
poll, and with many JobQueues the largest share of the operator's CPU
(BENCHMARKS.md). One watch per namespace costs nothing while nothing changes
and sees a ``kubectl scale`` within milliseconds.

This module is the watch's state machine (list, watch, resume from the last
resourceVersion, list again after a 410, back off after errors); the two API
calls it makes are handed in by ``kube_watches.DeploymentWatches``, which talks to
the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jobqueue_operator.ports import KubeError

if TYPE_CHECKING:
    import aiohttp

#: After a failed list or watch, wait this long before the next try, doubling.
WATCH_RETRY_S = (1.0, 60.0)

log = logging.getLogger(__name__)

#: Lists the namespace's Deployments: (name → replicas, resourceVersion); raises KubeError.
ListReplicas = Callable[[], Awaitable[tuple[dict[str, int], str]]]
#: Opens a watch from a resourceVersion; the raw response streams JSON lines.
OpenWatch = Callable[[str], Awaitable["aiohttp.ClientResponse"]]


class _GoneError(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


def spec_replicas(value: object) -> int:
    """A Deployment's ``spec.replicas``; the API server's default when it is unset."""
    return 1 if value is None else int(value)  # type: ignore[call-overload]


class ReplicaWatch:
    """The replicas of one namespace's Deployments.

    Until it has listed, and from any error until it has listed again,
    :meth:`get` says it does not know and the loop reads ``/scale`` as before,
    so a missing right or a broken watch costs requests, never a wrong count.
    """

    def __init__(self, namespace: str, list_replicas: ListReplicas, open_watch: OpenWatch) -> None:
        self.namespace = namespace
        self._list_replicas = list_replicas
        self._open_watch = open_watch
        self._replicas: dict[str, int] = {}
        self.synced = False
        self._task: asyncio.Task[None] | None = None

    def get(self, name: str) -> int | None:
        """The Deployment's replicas, or ``None`` when the watch cannot say."""
        return self._replicas.get(name) if self.synced else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watch/{self.namespace}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.synced = False

    async def _run(self) -> None:
        delay = WATCH_RETRY_S[0]
        while True:
            try:
                self._replicas, version = await self._list_replicas()
                self.synced = True
                while True:
                    version = await self._watch(version)
                    delay = WATCH_RETRY_S[0]
            except _GoneError:
                # Resumed too late (the history was compacted): list again, after a
                # pause so a server that keeps answering 410 is not hammered.
                self.synced = False
                await asyncio.sleep(WATCH_RETRY_S[0])
            except Exception as exc:  # API errors, dropped connections, bad JSON
                self.synced = False
                log.warning(
                    "watching the Deployments in %s failed (%s); reading /scale per poll "
                    "there, next try in %.0fs",
                    self.namespace,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, WATCH_RETRY_S[1])

    async def _watch(self, version: str) -> str:
        """Apply the events of one watch request; the resourceVersion to resume from."""
        response = await self._open_watch(version)
        try:
            if response.status == 410:
                raise _GoneError
            if response.status != 200:
                raise KubeError(
                    f"could not watch the Deployments in {self.namespace}: "
                    f"HTTP {response.status} {response.reason}"
                )
            async for line in response.content:
                if line.strip():
                    version = self._apply(json.loads(line), version)
        finally:
            response.release()
        return version

    def _apply(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _GoneError
            raise KubeError(f"watch of the Deployments in {self.namespace}: {obj.get('message')}")
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            self._replicas.pop(str(meta.get("name")), None)
        elif kind in ("ADDED", "MODIFIED"):
            self._replicas[meta["name"]] = spec_replicas((obj.get("spec") or {}).get("replicas"))
        return str(meta.get("resourceVersion") or version)
