"""The whole loop on one machine: operator, worker Deployment, JobQueue, pod runner.

Shared by `make demo` and the end-to-end test, so what the demo shows is what
the test proves. The operator runs as a local process under its own
ServiceAccount token with the RBAC from `manifests/` — not as cluster admin —
so the demo also exercises the least-privilege install.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from jobqueue_devkit.controlplane import REPO_ROOT, ControlPlane
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.identity import token_kubeconfig, write_kubeconfig
from jobqueue_devkit.podrunner import RUN_LABEL, PodRunner
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.procs import ManagedProcess
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.waiting import NotReachedError
from jobqueue_protocol.stats import QueueStats, queue_stats

OPERATOR_NAMESPACE = "jobqueue-system"
OPERATOR_ACCOUNT = "jobqueue-operator"
RBAC_FILES = (
    "manifests/namespace.yaml",
    "manifests/rbac/service_account.yaml",
    "manifests/rbac/clusterrole_framework.yaml",
    "manifests/rbac/clusterrole_jobqueues.yaml",
    "manifests/rbac/clusterrolebinding_framework.yaml",
)


@dataclass(frozen=True)
class LoopSpec:
    """What to run: one worker Deployment and the JobQueue that scales it."""

    namespace: str = "demo"
    name: str = "demo"
    queue: str = "demo"
    min_replicas: int = 1
    max_replicas: int = 8
    polling_interval_s: int = 2
    scale_up_depth: int = 100
    scale_up_latency_s: float = 30.0
    scale_up_cooldown_s: int = 5
    scale_up_max_step: int = 3
    scale_down_depth: int = 10
    scale_down_latency_s: float = 5.0
    scale_down_cooldown_s: int = 20
    scale_down_step: int = 1
    # False (the default) keeps busy workers; True lets scale-down remove them
    # and trusts the workers' graceful shutdown (finish or hand back).
    scale_down_allow_disruption: bool = False
    # False: lower /scale in the tick that chooses (no drain-first), so a busy
    # worker can be removed mid-job and its graceful shutdown is what is tested.
    scale_down_drain_first: bool = True
    worker_concurrency: int = 4
    worker_lease_s: float = 10.0
    worker_grace_s: float = 10.0
    handlers: str = "jobqueue_worker.examples"
    worker_env: dict[str, str] = field(default_factory=dict)
    # Extra top-level JobQueue spec fields (e.g. paused, slo), merged over the above.
    jobqueue_extra: dict[str, Any] = field(default_factory=dict)
    # The workers' kind: Deployment, or StatefulSet (Parallel Pod management, so
    # its Pods start together as a Deployment's do; it still removes the highest
    # ordinals first).
    kind: str = "Deployment"


def worker_deployment(spec: LoopSpec, redis_url: str) -> dict[str, Any]:
    """The worker Deployment (or StatefulSet), shaped like `manifests/examples/workers.yaml`."""
    labels = {"app.kubernetes.io/name": f"{spec.name}-worker", RUN_LABEL: "true"}
    env = {
        "JQW_REDIS_URL": redis_url,
        "JQW_QUEUES": spec.queue,
        "JQW_CONCURRENCY": str(spec.worker_concurrency),
        "JQW_HANDLERS": spec.handlers,
        "JQW_LEASE_S": str(spec.worker_lease_s),
        "JQW_GRACE_PERIOD_S": str(spec.worker_grace_s),
        "JQW_HEARTBEAT_INTERVAL_S": "1",
        **spec.worker_env,
    }
    workload: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": spec.kind,
        "metadata": {"name": f"{spec.name}-worker", "namespace": spec.namespace},
        "spec": {
            "replicas": spec.min_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": int(spec.worker_grace_s) + 5,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "jobqueue-worker:dev",
                            "command": ["jobqueue", "worker"],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    if spec.kind == "StatefulSet":
        workload["spec"]["serviceName"] = f"{spec.name}-worker"
        workload["spec"]["podManagementPolicy"] = "Parallel"
    return workload


def jobqueue_manifest(spec: LoopSpec, redis: RedisServer) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "spec": {
            "scaleTargetRef": {"kind": spec.kind, "name": f"{spec.name}-worker"},
            "redis": {"host": redis.host, "port": redis.port},
            "queues": [spec.queue],
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "pollingIntervalSeconds": spec.polling_interval_s,
            "scaleUp": {
                "queueDepth": spec.scale_up_depth,
                "queueLatencySeconds": spec.scale_up_latency_s,
                "cooldownSeconds": spec.scale_up_cooldown_s,
                "maxStep": spec.scale_up_max_step,
            },
            "scaleDown": {
                "queueDepth": spec.scale_down_depth,
                "queueLatencySeconds": spec.scale_down_latency_s,
                "cooldownSeconds": spec.scale_down_cooldown_s,
                "step": spec.scale_down_step,
                "allowDisruption": spec.scale_down_allow_disruption,
                "drainChosenPods": spec.scale_down_drain_first,
            },
            **spec.jobqueue_extra,
        },
    }


def _apply(
    plane: ControlPlane, manifest: dict[str, Any] | list[dict[str, Any]], workdir: Path
) -> None:
    docs = manifest if isinstance(manifest, list) else [manifest]
    path = workdir / f"apply-{abs(hash(json.dumps(docs, sort_keys=True)))}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))


def install_operator_identity(plane: ControlPlane, watched: list[str], workdir: Path) -> Path:
    """Apply the operator's RBAC, bind it in each watched namespace, return a token kubeconfig."""
    for rel in RBAC_FILES:
        plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / rel))
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": OPERATOR_ACCOUNT, "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR_ACCOUNT,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": OPERATOR_ACCOUNT,
                    "namespace": OPERATOR_NAMESPACE,
                }
            ],
        }
        for ns in watched
    ]
    _apply(plane, bindings, workdir)
    token = plane.kubectl(
        "create", "token", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=24h"
    ).strip()
    return write_kubeconfig(
        workdir / "operator.kubeconfig", token_kubeconfig(plane.kubeconfig, OPERATOR_ACCOUNT, token)
    )


def start_operator(
    kubeconfig: Path, namespaces: list[str], workdir: Path
) -> tuple[ManagedProcess, int]:
    """The real `jobqueue-operator` console script, standalone, with its own identity."""
    exe = Path(sys.executable).parent / "jobqueue-operator"
    metrics_port, probe_port = free_port(), free_port()
    argv = [str(exe), "--standalone", f"--liveness=http://127.0.0.1:{probe_port}/healthz"]
    for ns in namespaces:
        argv += ["--namespace", ns]
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "KUBECONFIG": str(kubeconfig),
        "JQO_METRICS_PORT": str(metrics_port),
        "JQO_PROBE_PORT": str(probe_port),
        "HOME": str(workdir),
    }
    proc = ManagedProcess("jobqueue-operator", argv, workdir / "operator.log", env=env)
    proc.start()
    return proc, metrics_port


@dataclass
class Snapshot:
    """One look at the loop, for the demo's live table and the e2e assertions."""

    stats: QueueStats
    spec_replicas: int
    ready_replicas: int
    pods: int
    jobqueue_status: dict[str, Any]

    @property
    def desired(self) -> int | None:
        value = self.jobqueue_status.get("desiredReplicas")
        return int(value) if value is not None else None


class LocalLoop:
    """Start everything for one LoopSpec on an existing plane and Redis; stop it all.

    ``jobqueue=False`` leaves out the operator and the JobQueue: the worker
    Deployment and its pod runner only, for another autoscaler (KEDA) to scale.
    """

    def __init__(
        self,
        plane: ControlPlane,
        redis_server: RedisServer,
        spec: LoopSpec,
        workdir: Path,
        *,
        jobqueue: bool = True,
    ):
        self.plane, self.redis_server, self.spec, self.workdir = plane, redis_server, spec, workdir
        self.jobqueue = jobqueue
        self.operator: ManagedProcess | None = None
        self.runner: PodRunner | None = None
        self._runner_task: asyncio.Task[None] | None = None
        self._runner_stop = asyncio.Event()
        self._api: client.ApiClient | None = None
        self._redis: aioredis.Redis | None = None

    async def __aenter__(self) -> LocalLoop:
        self.workdir.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        with contextlib.suppress(DevkitError):
            self.plane.kubectl("create", "namespace", spec.namespace)
        if self.jobqueue:
            kubeconfig = install_operator_identity(self.plane, [spec.namespace], self.workdir)
            self.operator, _ = start_operator(kubeconfig, [spec.namespace], self.workdir)
        self.runner = PodRunner(spec.namespace, self.workdir / "pods")
        self._runner_task = asyncio.create_task(
            self.runner.run(self.plane.kubeconfig, self._runner_stop)
        )
        _apply(self.plane, worker_deployment(spec, self.redis_server.url), self.workdir)
        if self.jobqueue:
            _apply(self.plane, jobqueue_manifest(spec, self.redis_server), self.workdir)
        await config.load_kube_config(config_file=str(self.plane.kubeconfig))
        self._api = client.ApiClient()
        self._redis = aioredis.Redis.from_url(self.redis_server.url)
        return self

    async def __aexit__(self, *_: object) -> None:
        with contextlib.suppress(DevkitError):
            if self.jobqueue:
                self.plane.kubectl(
                    "delete",
                    "jobqueue",
                    self.spec.name,
                    "-n",
                    self.spec.namespace,
                    "--ignore-not-found",
                    "--wait=false",
                )
        if self.operator is not None:
            self.operator.stop(grace_s=10)
        self._runner_stop.set()
        if self._runner_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner_task, self.spec.worker_grace_s + 15)
        if self._api is not None:
            await self._api.close()
        if self._redis is not None:
            await self._redis.aclose()

    def check_alive(self) -> None:
        if self.operator is not None and not self.operator.alive():
            raise DevkitError(
                f"the operator exited; log {self.operator.log_path}:\n{self.operator.log_tail()}"
            )

    async def snapshot(self) -> Snapshot:
        assert self._api is not None
        assert self._redis is not None
        self.check_alive()
        spec = self.spec
        stats = (await queue_stats(self._redis, [spec.queue]))[spec.queue]
        apps = client.AppsV1Api(self._api)
        read = (
            apps.read_namespaced_stateful_set
            if spec.kind == "StatefulSet"
            else apps.read_namespaced_deployment
        )
        dep = await read(f"{spec.name}-worker", spec.namespace)
        custom = client.CustomObjectsApi(self._api)
        try:
            jq = await custom.get_namespaced_custom_object(
                "jobqueue.dev", "v1alpha1", spec.namespace, "jobqueues", spec.name
            )
        except ApiException:
            jq = {}
        return Snapshot(
            stats=stats,
            spec_replicas=int(dep.spec.replicas or 0),
            ready_replicas=int(dep.status.ready_replicas or 0),
            pods=len(self.runner.pods) if self.runner else 0,
            jobqueue_status=dict(jq.get("status") or {}),
        )

    async def wait_for(
        self,
        done: Callable[[Snapshot], bool],
        timeout_s: float,
        what: str,
        observe: Callable[[Snapshot], None] | None = None,
    ) -> Snapshot:
        """Snapshot every 0.25 s until `done`; `observe` sees every snapshot on the way."""
        deadline = time.monotonic() + timeout_s
        while True:
            snap = await self.snapshot()
            if observe is not None:
                observe(snap)
            if done(snap):
                return snap
            if time.monotonic() > deadline:
                raise NotReachedError(f"{what} not reached within {timeout_s:.0f}s; last: {snap}")
            await asyncio.sleep(0.25)

    def removed_pods_logging(self, marker: str) -> list[str]:
        """Pods the runner sent SIGTERM whose worker logged `marker` on the way out.

        The worker's own log is the evidence of what it held at SIGTERM
        ("Draining in-flight jobs", "Handing back unfinished jobs"); heartbeats
        are a second late and miss a job picked up just before the signal. The
        runner records a Pod when it signals it, not when the process has exited,
        which may be many seconds later while the worker finishes its job.
        """
        assert self.runner is not None
        found = []
        for name in self.runner.signalled:
            log = self.runner.log_dir / f"{name}.log"
            if log.exists() and marker in log.read_text():
                found.append(name)
        return found


def ledger_runs(path: Path) -> Counter[str]:
    """How often each job id ran, from the ledger the `record` example job type appends to."""
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line.strip())
