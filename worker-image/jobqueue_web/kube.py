"""The ONLY module of the web UI that talks to Kubernetes: it lists JobQueues, read-only.

Optional: without a kubeconfig or in-cluster credentials the Scaling page says so
and every other page works.

In a Pod it needs no Kubernetes client: one authenticated GET with the Pod's
service-account token (re-read every time: bound tokens rotate) and CA, through
aiohttp, which the worker image has anyway. The worker image must not carry a
Kubernetes client, so this is what the shipped Deployment uses. Outside a
cluster it reads the kubeconfig through kubernetes_asyncio, when installed.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

GROUP, VERSION, PLURAL = "jobqueue.dev", "v1alpha1", "jobqueues"
#: Where Kubernetes mounts a Pod's service-account token and the cluster's CA.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


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


def _target(ref: Any, written: Any) -> str:
    """``Kind/name`` from the live spec (the operator's ``status.target`` lags it).

    ``apiVersion`` and ``kind`` default as the CRD defaults them; a custom
    resource's group is added, since two groups may use the same kind.
    """
    if not isinstance(ref, dict) or not ref.get("name"):
        return str(written or "?")
    kind = ref.get("kind") or "Deployment"
    group = str(ref.get("apiVersion") or "apps/v1").rpartition("/")[0]
    shown = kind if group in ("", "apps") else f"{kind}.{group}"
    return f"{shown}/{ref['name']}"


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
        target=_target(ref, status.get("target")),
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

    def __init__(
        self, namespace: str | None, service_account_dir: Path = SERVICE_ACCOUNT_DIR
    ) -> None:
        self.namespace = namespace
        self.problem: str | None = None
        self._api: Any = None
        self._account = service_account_dir
        self._in_cluster: tuple[str, aiohttp.ClientSession] | None = None

    async def start(self) -> None:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if host:
            await self._start_in_cluster(host, os.environ.get("KUBERNETES_SERVICE_PORT", "443"))
            return
        try:
            from kubernetes_asyncio import client, config
        except ImportError:
            self.problem = (
                "outside a cluster the Scaling page reads the kubeconfig through "
                "kubernetes_asyncio, which is not installed (pip install kubernetes_asyncio)"
            )
            return
        try:
            await config.load_kube_config()
        except Exception as exc:  # no kubeconfig is normal on a laptop
            self.problem = f"no cluster access: {str(exc).splitlines()[0][:200]}"
            return
        self._api = client.CustomObjectsApi(client.ApiClient())

    async def _start_in_cluster(self, host: str, port: str) -> None:
        try:
            tls = ssl.create_default_context(cafile=str(self._account / "ca.crt"))
        except OSError as exc:
            self.problem = f"no cluster access: the service account's CA: {exc}"
            return
        base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(ssl=tls)
        self._in_cluster = (base, aiohttp.ClientSession(timeout=timeout, connector=connector))

    async def close(self) -> None:
        if self._api is not None:
            await self._api.api_client.close()
        if self._in_cluster is not None:
            await self._in_cluster[1].close()

    async def list(self) -> list[JobQueueView]:
        try:
            if self._in_cluster is not None:
                body = await self._get_in_cluster(*self._in_cluster)
            elif self._api is not None:
                body = await self._list_kubeconfig()
            else:
                return []
        except Exception as exc:  # forbidden, unreachable: the page says which
            self.problem = f"cannot list JobQueues: {str(exc).splitlines()[0][:200]}"
            return []
        self.problem = None
        items = [view_of(o) for o in body.get("items", [])]
        return sorted(items, key=lambda v: (v.namespace, v.name))

    async def _list_kubeconfig(self) -> dict[str, Any]:
        if self.namespace:
            body = await self._api.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        else:
            body = await self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return dict(body)

    async def _get_in_cluster(self, base: str, session: aiohttp.ClientSession) -> dict[str, Any]:
        token = (self._account / "token").read_text().strip()
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        url = f"{base}/apis/{GROUP}/{VERSION}{scope}/{PLURAL}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                reason = (await response.text()).strip().replace("\n", " ")[:200]
                raise RuntimeError(f"HTTP {response.status} from the API server: {reason}")
            body: dict[str, Any] = await response.json()
            return body
