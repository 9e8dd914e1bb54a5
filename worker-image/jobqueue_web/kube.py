"""The ONLY module of the web UI that talks to Kubernetes: it lists JobQueues, read-only.

Optional: without a kubeconfig or in-cluster credentials the Scaling page says so
and every other page works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

GROUP, VERSION, PLURAL = "jobqueue.dev", "v1alpha1", "jobqueues"


@dataclass(frozen=True)
class JobQueueView:
    namespace: str
    name: str
    queues: tuple[str, ...]
    target: str
    min_replicas: int | None
    max_replicas: int | None
    current: int | None
    desired: int | None
    scale_up_depth: float | None
    scale_down_depth: float | None
    conditions: tuple[dict[str, Any], ...] = field(default=())
    decisions: tuple[dict[str, Any], ...] = field(default=())
    #: Pods drained before removal: in ``current``, taking no new job until idle.
    draining: tuple[str, ...] = field(default=())


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    n = _num(value)
    return None if n is None else int(n)


def view_of(obj: dict[str, Any]) -> JobQueueView:
    """The fields the Scaling page shows, from one JobQueue object (pure)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    up = spec.get("scaleUp") or {}
    down = spec.get("scaleDown") or {}
    queues = spec.get("queues") or []
    return JobQueueView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        queues=tuple(str(q.get("name", q)) if isinstance(q, dict) else str(q) for q in queues),
        target=str(
            status.get("target") or f"{ref.get('kind', 'Deployment')}/{ref.get('name', '?')}"
        ),
        min_replicas=_int(spec.get("minReplicas")),
        max_replicas=_int(spec.get("maxReplicas")),
        current=_int(status.get("currentReplicas")),
        desired=_int(status.get("desiredReplicas")),
        scale_up_depth=_num(up.get("queueDepth")),
        scale_down_depth=_num(down.get("queueDepth")),
        conditions=tuple(c for c in status.get("conditions") or [] if isinstance(c, dict)),
        decisions=tuple(
            reversed([d for d in status.get("decisions") or [] if isinstance(d, dict)])
        ),
        draining=tuple(str(p) for p in status.get("drainingPods") or [] if isinstance(p, str)),
    )


class Cluster:
    """Lists JobQueues; ``problem`` says why it cannot (then ``list`` returns nothing)."""

    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace
        self.problem: str | None = None
        self._api: Any = None

    async def start(self) -> None:
        try:
            from kubernetes_asyncio import client, config
        except ImportError:
            self.problem = "the Kubernetes client is not installed (pip install kubernetes_asyncio)"
            return
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            else:
                await config.load_kube_config()
        except Exception as exc:  # no kubeconfig is normal on a laptop
            self.problem = f"no cluster access: {str(exc).splitlines()[0][:200]}"
            return
        self._api = client.CustomObjectsApi(client.ApiClient())

    async def close(self) -> None:
        if self._api is not None:
            await self._api.api_client.close()

    async def list(self) -> list[JobQueueView]:
        if self._api is None:
            return []
        try:
            if self.namespace:
                body = await self._api.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL
                )
            else:
                body = await self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except Exception as exc:  # forbidden, unreachable: the page says which
            self.problem = f"cannot list JobQueues: {str(exc).splitlines()[0][:200]}"
            return []
        self.problem = None
        items = [view_of(o) for o in body.get("items", [])]
        return sorted(items, key=lambda v: (v.namespace, v.name))
