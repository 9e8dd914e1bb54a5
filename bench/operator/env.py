"""One benchmark environment: control plane, redis-server and operator, all from the devkit.

Nothing here starts a process or picks a port by itself: the devkit's
``ControlPlane``, ``RedisServer``, ``install_operator_identity`` and
``start_operator`` do, so the benchmark runs the operator exactly as the demo and
the end-to-end test do (the real console script, standalone, under its own
ServiceAccount token with the RBAC from ``manifests/``). This module only wires
them together and guarantees that everything started is stopped again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from kubernetes_asyncio import client, config

from jobqueue_devkit import binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.procs import ManagedProcess
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import (
    LoopSpec,
    install_operator_identity,
    jobqueue_manifest,
    start_operator,
    worker_deployment,
)
from jobqueue_operator.kube import GROUP, PLURAL, VERSION
from jobqueue_protocol import keys
from jobqueue_worker.producer import JobRequest, Producer

OPERATOR_UP_TIMEOUT_S = 90.0
JOB_TYPE = "bench.noop"


@dataclass
class BenchEnv:
    """Handles on everything one measurement needs; built by :func:`bench_env`."""

    plane: ControlPlane
    redis: RedisServer
    workdir: Path
    namespace: str
    operator: ManagedProcess
    metrics_port: int
    api: client.ApiClient
    rclient: aioredis.Redis

    @property
    def apps(self) -> client.AppsV1Api:
        """Admin client for Deployments (the benchmark's own, not the operator's identity)."""
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        """Admin client for JobQueues."""
        return client.CustomObjectsApi(self.api)

    def check_operator(self) -> None:
        """Fail loudly if the operator died: every number after that would be wrong."""
        if not self.operator.alive():
            raise RuntimeError(
                f"the operator exited; log {self.operator.log_path}:\n{self.operator.log_tail()}"
            )

    async def create_loops(self, specs: Iterable[LoopSpec], concurrency: int = 8) -> None:
        """Create each spec's worker Deployment and JobQueue, ``concurrency`` at a time.

        Bounded because 1,000 Deployments at once would queue in the apiserver and
        the controller manager on a 2-core machine and time out instead of finishing.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(spec: LoopSpec) -> None:
            async with gate:
                await self.apps.create_namespaced_deployment(
                    self.namespace,
                    worker_deployment(spec, self.redis.url),  # type: ignore[arg-type]
                )
                await self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, jobqueue_manifest(spec, self.redis)
                )

        async with asyncio.timeout(1800):
            await asyncio.gather(*(one(s) for s in specs))

    async def delete_loops(self, names: Iterable[str]) -> None:
        """Delete each JobQueue and its worker Deployment, and wait until the JobQueues are gone.

        The operator removes its finalizer from a deleted JobQueue; waiting for that
        keeps the next measurement free of loops still winding down.
        """
        names = list(names)
        for name in names:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
            await self.apps.delete_namespaced_deployment(f"{name}-worker", self.namespace)
        async with asyncio.timeout(120):
            # The state is the apiserver's, not this process's: poll it.
            while {j["metadata"]["name"] for j in await self.list_jobqueues()} & set(names):  # noqa: ASYNC110
                await asyncio.sleep(0.5)

    async def patch_jobqueue(self, name: str, spec_patch: dict[str, Any]) -> None:
        """Merge-patch a JobQueue's spec (e.g. its polling interval)."""
        await self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"spec": spec_patch},
            _content_type="application/merge-patch+json",  # type: ignore[call-arg]
        )

    async def list_jobqueues(self, page: int = 500) -> list[dict[str, Any]]:
        """Every JobQueue of the namespace, as dicts, read ``page`` at a time.

        One LIST of 10,000 JobQueues with their statuses outlasts the apiserver's
        request timeout on a loaded 2-core machine (504); pages do not.
        """
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"_continue": token} if token else {}
            found = await self._list_page(page, extra)
            items += found.get("items", [])
            token = (found.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def _list_page(self, page: int, extra: dict[str, Any]) -> dict[str, Any]:
        """One page; a 504 or 429 is retried each second, up to 30 tries.

        With 10,000 objects being written, the apiserver's watch cache can lag the
        resource version a continue token names ("Too large resource version", 504,
        with a Retry-After of 1 s).
        """
        for attempt in range(30):
            try:
                found: dict[str, Any] = await self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, limit=page, **extra
                )
                return found
            except client.ApiException as exc:
                if exc.status not in (429, 504) or attempt == 29:
                    raise
                await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    async def enqueue(self, per_queue: dict[str, int]) -> None:
        """Enqueue ``n`` no-op jobs on each queue with the worker's producer API."""
        reqs = [JobRequest(type=JOB_TYPE, queue=q) for q, n in per_queue.items() for _ in range(n)]
        async with Producer(self.redis.url) as producer:
            for start in range(0, len(reqs), 2000):
                await producer.enqueue_many(reqs[start : start + 2000])

    async def drain(self, queue: str) -> int:
        """Delete every key of ``queue`` (found by the protocol's prefix); returns how many."""
        found = [k async for k in self.rclient.scan_iter(match=f"{keys.queue_prefix(queue)}*")]
        if found:
            await self.rclient.delete(*found)
        return len(found)


def _metrics_answer(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextlib.asynccontextmanager
async def bench_env(workdir: Path, namespace: str) -> AsyncIterator[BenchEnv]:
    """A fresh control plane, Redis and operator watching ``namespace``; all stopped on exit.

    A fresh plane per scale point keeps one point's 1,000 Deployments from loading
    the next point's apiserver, and removes the need to delete objects whose
    finalizers only a running operator would clear.
    """
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    plane: ControlPlane | None = None
    redis_srv: RedisServer | None = None
    operator: ManagedProcess | None = None
    api: client.ApiClient | None = None
    rclient: aioredis.Redis | None = None
    try:
        bins = await asyncio.to_thread(binaries.ensure_binaries)
        plane = ControlPlane(bins, workdir=workdir / "plane")
        await asyncio.to_thread(plane.start)
        redis_srv = RedisServer(workdir=workdir / "redis", appendonly=False)
        await asyncio.to_thread(redis_srv.start)
        plane.kubectl("create", "namespace", namespace)
        kubeconfig = install_operator_identity(plane, [namespace], workdir)
        operator, metrics_port = start_operator(kubeconfig, [namespace], workdir)
        deadline = time.monotonic() + OPERATOR_UP_TIMEOUT_S
        while not await asyncio.to_thread(_metrics_answer, metrics_port):
            if not operator.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"operator not serving /metrics:\n{operator.log_tail()}")
            await asyncio.sleep(0.2)
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=cfg)
        api = client.ApiClient(cfg)
        rclient = aioredis.Redis.from_url(redis_srv.url)
        yield BenchEnv(
            plane=plane,
            redis=redis_srv,
            workdir=workdir,
            namespace=namespace,
            operator=operator,
            metrics_port=metrics_port,
            api=api,
            rclient=rclient,
        )
    finally:
        if rclient is not None:
            await rclient.aclose()
        if api is not None:
            await api.close()
        if operator is not None:
            operator.stop(grace_s=10)
        if redis_srv is not None:
            redis_srv.cleanup()
        if plane is not None:
            await asyncio.to_thread(plane.stop)
