"""The operator's Kubernetes API client (kubernetes_asyncio), one of the two modules
that talk to the API; the other, ``kube_watches``, keeps the Deployment watches.

What the two do, and so what RBAC the operator needs (``manifests/rbac``):

* read and merge-patch the target's ``/scale`` (``<plural>/scale`` get, patch),
  for any kind that has one: the ``apps/v1`` workloads by their known plural,
  anything else by its group/version's discovery document (read once and cached,
  ``targets.DiscoveryCache``); the absolute count is written, never an increment,
  so a repeated write is harmless;
* list and watch the Deployments of each namespace that has JobQueues, to know
  their replicas without a request per poll (deployments list, watch;
  ``kube_watches``);
* ``get`` the target itself for its Pod template's requests, only when a CPU or
  memory trigger is on;
* ``get`` one Secret key by name for the Redis password (never list or watch);
* ``get`` the operator's defaults ConfigMap (configmaps get, one name);
* read, create and replace the leader-election Lease (leases get, create, update);
* list HorizontalPodAutoscalers of the namespace to refuse a target that
  something else already scales;
* list the target's Pods (by the selector ``/scale`` reports) and merge-patch
  their ``controller.kubernetes.io/pod-deletion-cost`` annotation, once, right
  before a scale-down and to remove it afterwards (pods get, list, patch);
* merge-patch ``jobqueues/status``;
* create Events.

Every write carries the field manager ``jobqueue-operator`` so managedFields say
who changed a replica count.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from jobqueue_operator.http_session import skip_netrc_lookups
from jobqueue_operator.kube_watches import DeploymentWatches
from jobqueue_operator.ports import (
    KubeError,
    LeaseView,
    NoPodSelectorError,
    ObjectRef,
    SecretError,
    TargetKindError,
)
from jobqueue_operator.quantity import template_requests
from jobqueue_operator.targets import (
    DiscoveryCache,
    ScaleResource,
    TargetRef,
    builtin_resource,
    ref_from,
)
from jobqueue_operator.victims import PodView, pod_view

GROUP = "jobqueue.dev"
VERSION = "v1alpha1"
PLURAL = "jobqueues"
FIELD_MANAGER = "jobqueue-operator"
MERGE_PATCH = "application/merge-patch+json"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


async def load_configuration() -> client.Configuration:
    """In a pod: its ServiceAccount. Elsewhere: ``KUBECONFIG`` (or ~/.kube/config)."""
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(client_configuration=cfg)
    return cfg


class Kube:
    """A thin, typed facade over the calls the operator makes."""

    def __init__(self, api: client.ApiClient, watch_api: client.ApiClient | None = None) -> None:
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._hpa = client.AutoscalingV2Api(api)
        self._leases = client.CoordinationV1Api(api)
        self._instance = socket.gethostname()
        #: Without a session of their own for the watches, every read goes to /scale.
        self._deployments = None if watch_api is None else DeploymentWatches(watch_api)
        self._discovery = DiscoveryCache()

    @classmethod
    async def connect(cls) -> Kube:
        """A client with the process's credentials (see :func:`load_configuration`)."""
        api = client.ApiClient(await load_configuration())
        skip_netrc_lookups(api)
        watch_config = await load_configuration()
        watch_config.connection_pool_maxsize = None  # type: ignore[assignment]  # no limit
        watch_api = client.ApiClient(watch_config)
        skip_netrc_lookups(watch_api)
        return cls(api, watch_api)

    async def close(self) -> None:
        """Stop the watches, close the HTTP sessions."""
        if self._deployments is not None:
            await self._deployments.close()
        await self._api.close()

    def watched_replicas(self, namespace: str, target: TargetRef) -> int | None:
        """A Deployment's replicas from its namespace's watch (started on first use).

        ``None`` when the watch does not know (not listed yet, failing, no such
        Deployment, or a target of another kind): read ``/scale`` with
        :meth:`get_replicas` instead.
        """
        if self._deployments is None or not target.is_deployment:
            return None
        return self._deployments.replicas(namespace, target.name)

    async def _resource(self, target: TargetRef) -> ScaleResource:
        """Where the target's ``/scale`` is; :class:`TargetKindError` when it has none."""
        known = builtin_resource(target)
        if known is not None:
            return known
        now = time.monotonic()
        if target.group and self._discovery.due(target, now):
            try:
                found = await self._custom.get_api_resources(target.group, target.version)
                listing = tuple((r.name, r.kind) for r in found.resources or [])
            except ApiException as exc:
                if exc.status != 404:
                    raise KubeError(_describe("discover", target.api_version, exc)) from exc
                listing = None  # the group/version is not served
            self._discovery.store(target.api_version, listing, now)
        resolved = self._discovery.resolve(target)
        if isinstance(resolved, str):
            raise TargetKindError(resolved)
        return resolved

    async def _read_scale(self, namespace: str, target: TargetRef) -> dict[str, Any] | None:
        """The target's Scale object (a dict); ``None`` when the target does not exist."""
        res = await self._resource(target)
        try:
            scale: dict[str, Any] = await self._custom.get_namespaced_custom_object_scale(
                res.group, res.version, namespace, res.plural, target.name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(_describe_target("read the scale of", target, res, exc)) from exc
        return scale

    async def get_replicas(self, namespace: str, target: TargetRef) -> int | None:
        """``spec.replicas`` of the target via ``/scale``; ``None`` if it does not exist."""
        scale = await self._read_scale(namespace, target)
        return None if scale is None else int((scale.get("spec") or {}).get("replicas") or 0)

    async def set_replicas(self, namespace: str, target: TargetRef, replicas: int) -> None:
        """Write the absolute count through ``/scale`` (idempotent, no resourceVersion)."""
        res = await self._resource(target)
        try:
            await self._custom.patch_namespaced_custom_object_scale(
                res.group,
                res.version,
                namespace,
                res.plural,
                target.name,
                {"spec": {"replicas": replicas}},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        except ApiException as exc:
            raise KubeError(_describe_target("scale", target, res, exc)) from exc

    async def list_target_pods(self, namespace: str, target: TargetRef) -> list[PodView]:
        """The Pods the selector in the target's ``/scale`` status matches.

        Deployments, StatefulSets and well-formed CRDs (``labelSelectorPath``) fill
        it in; without one, :class:`NoPodSelectorError`. Readiness, a deletion
        timestamp, the controlling owner and a StatefulSet ordinal are what the
        victim choice needs; nothing else of the Pod is kept.
        """
        scale = await self._read_scale(namespace, target)
        selector = ((scale or {}).get("status") or {}).get("selector")
        if not selector:
            raise NoPodSelectorError(
                f"{target.describe()} reports no Pod selector in its /scale status "
                "(status.selector), so its Pods cannot be chosen: plain scaling"
            )
        try:
            pods = await self._core.list_namespaced_pod(namespace, label_selector=selector)
        except ApiException as exc:
            raise KubeError(_describe("list the Pods of", target.describe(), exc)) from exc
        return [pod_view(pod) for pod in pods.items]

    async def get_worker_requests(
        self, namespace: str, target: TargetRef
    ) -> tuple[float | None, float | None]:
        """The CPU (cores) and memory (bytes) request of the first container of the target.

        What the CPU and memory triggers count utilisation against, as the HPA
        does; a limit stands in for a missing request. ``None`` where neither is
        set, or where the target has no Pod template at ``spec.template`` (a custom
        resource may keep it elsewhere).
        """
        res = await self._resource(target)
        try:
            obj = await self._custom.get_namespaced_custom_object(
                res.group, res.version, namespace, res.plural, target.name
            )
        except ApiException as exc:
            raise KubeError(_describe_target("read", target, res, exc)) from exc
        return template_requests(obj)

    async def set_deletion_cost(self, namespace: str, pod: str, cost: int | None) -> None:
        """Write (or with ``None`` remove) a Pod's deletion cost; a vanished Pod is fine."""
        value = None if cost is None else str(cost)
        try:
            await self._core.patch_namespaced_pod(
                pod,
                namespace,
                {"metadata": {"annotations": {DELETION_COST: value}}},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise KubeError(_describe("annotate Pod", pod, exc)) from exc

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """One key of one Secret in ``namespace`` (``get`` only)."""
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            raise SecretError(_describe("read Secret", name, exc)) from exc
        data = secret.data or {}
        if key not in data:
            raise SecretError(f"Secret {name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()

    async def read_lease(self, namespace: str, name: str) -> LeaseView | None:
        """The leader-election Lease (coordination.k8s.io/v1); ``None`` if there is none."""
        try:
            lease = await self._leases.read_namespaced_lease(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(_describe("read Lease", name, exc)) from exc
        spec = lease.spec
        return LeaseView(
            holder=spec.holder_identity or "",
            duration_s=int(spec.lease_duration_seconds or 0),
            renewed=str(spec.renew_time or ""),
            transitions=int(spec.lease_transitions or 0),
            version=str(lease.metadata.resource_version),
        )

    async def write_lease(
        self, namespace: str, name: str, lease: LeaseView, *, acquired: datetime | None
    ) -> bool:
        """Create the Lease (``version`` empty) or replace it at ``version``.

        ``False`` when another replica wrote it first (409): the optimistic lock is
        what makes one leader out of two replicas that both saw it expire.
        """
        body = lease.manifest(namespace, name, datetime.now(UTC), acquired)
        try:
            if not lease.version:
                await self._leases.create_namespaced_lease(namespace, body)  # type: ignore[arg-type]
            else:
                await self._leases.replace_namespaced_lease(name, namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status in (409, 422) or (exc.status == 404 and lease.version):
                return False
            raise KubeError(_describe("write Lease", name, exc)) from exc
        return True

    async def read_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ``data`` of one ConfigMap (``get`` only); ``None`` if it does not exist."""
        try:
            found = await self._core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(_describe("read ConfigMap", name, exc)) from exc
        return dict(found.data or {})

    async def hpa_targets(self, namespace: str) -> list[tuple[str, TargetRef]]:
        """(HPA name, its target) for every HPA in ``namespace``."""
        try:
            hpas = await self._hpa.list_namespaced_horizontal_pod_autoscaler(namespace)
        except ApiException as exc:
            raise KubeError(
                _describe("list the HorizontalPodAutoscalers in", namespace, exc)
            ) from exc
        found = []
        for hpa in hpas.items:
            ref = hpa.spec.scale_target_ref
            target = ref_from({"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name})
            if target is not None:
                found.append((hpa.metadata.name, target))
        return found

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch ``status`` through the status subresource."""
        try:
            # The reply (the whole JobQueue) is read but not decoded: nothing uses
            # it, and kopf's watch delivers the same object anyway.
            reply = await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": status},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
                _preload_content=False,
            )
            await reply.read()
            if not 200 <= reply.status <= 299:  # unread, the client raises nothing
                raise ApiException(status=reply.status, reason=reply.reason)
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile; the daemon is about to stop
            raise KubeError(_describe("patch the status of JobQueue", name, exc)) from exc

    async def post_event(self, ref: ObjectRef, reason: str, message: str, *, warning: bool) -> None:
        """A core/v1 Event on the JobQueue; failures are swallowed (Events are best effort)."""
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{ref.name}.", namespace=ref.namespace),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind="JobQueue",
                name=ref.name,
                namespace=ref.namespace,
                uid=ref.uid,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=FIELD_MANAGER),
            reporting_component=f"{GROUP}/operator",
            reporting_instance=self._instance,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            await self._core.create_namespaced_event(ref.namespace, body)
        except ApiException:
            return


def _describe(what: str, name: str, exc: ApiException) -> str:
    return f"could not {what} {name}: HTTP {exc.status} {exc.reason}"


def _describe_target(what: str, target: TargetRef, res: ScaleResource, exc: ApiException) -> str:
    """As :func:`_describe`; a 403 says which right is missing (a custom resource's)."""
    text = _describe(what, target.describe(), exc)
    if exc.status == 403:
        text += f" (grant the operator get and patch on {res.describe()}; docs/operator.md)"
    return text
