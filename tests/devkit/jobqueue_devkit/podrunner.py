"""The local pod runner: a development stand-in for the scheduler and the kubelet.

DEVELOPMENT TOOL ONLY — never part of an image. On a machine with no container
runtime it makes the worker Deployment's Pods real processes, so the whole
loop (queue fills, operator scales, workers drain, scale-down) can be watched
and tested against a real control plane:

- it registers a Node for itself and binds the Pods it is told to run (as the
  scheduler would);
- for each bound Pod it starts one process from the first container's
  `command` + `args` (the image is ignored; commands resolve in this Python's
  bin directory first), with the container's literal `env` (and its
  `metadata.name`/`metadata.namespace` field references), `POD_NAME` and
  `POD_NAMESPACE`, and a free loopback port in the variable the
  `jobqueue.dev/local-port-env` annotation names (default `JQW_HTTP_PORT`);
- it runs the container's httpGet readiness probe against that port and writes
  Running/Ready into the Pod's status, so the ReplicaSet sees real readiness;
- when a Pod is deleted it sends SIGTERM, waits the Pod's grace period, then
  SIGKILL, and removes the Pod (as the kubelet does); a process that exits on its
  own is restarted (restartPolicy Always) and counted in restartCount.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from jobqueue_devkit.identity import pod_credentials
from jobqueue_devkit.ports import free_port

log = logging.getLogger("jobqueue.podrunner")

NODE_NAME = "jobqueue-local-runner"
RUN_LABEL = "jobqueue.dev/local-runner"
PORT_ENV_ANNOTATION = "jobqueue.dev/local-port-env"
DEFAULT_PORT_ENV = "JQW_HTTP_PORT"
PROBE_TIMEOUT_S = 1.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_command(argv: list[str]) -> list[str]:
    """Find the executable next to this Python first (the venv), then on PATH."""
    if not argv:
        raise ValueError("the container has no command; the pod runner cannot guess one")
    exe = argv[0]
    if not os.path.isabs(exe):
        local = Path(sys.executable).parent / exe
        exe = str(local) if local.exists() else (shutil.which(exe) or exe)
    return [exe, *argv[1:]]


@dataclass
class RunningPod:
    """One Pod's process and what the status report needs."""

    namespace: str
    name: str
    uid: str
    argv: list[str]
    env: dict[str, str]
    port: int
    probe_path: str | None
    probe_period_s: float
    grace_s: float
    log_path: Path
    container: str = "worker"
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    ready: bool = False
    started_at: str = field(default_factory=_now)
    deleting: bool = False
    task: asyncio.Task[None] | None = None

    def is_deleting(self) -> bool:
        """A method, not the field, in loops: other tasks flip it across awaits."""
        return self.deleting


class PodRunner:
    """Binds and runs the Pods of the given namespace that carry RUN_LABEL=true."""

    def __init__(self, namespace: str, log_dir: Path, extra_env: Mapping[str, str] | None = None):
        self.namespace = namespace
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.pods: dict[str, RunningPod] = {}
        self.api: client.ApiClient | None = None
        self.core: client.CoreV1Api | None = None
        self.session: aiohttp.ClientSession | None = None
        self.admin_kubeconfig: Path | None = None
        self.stopped: list[str] = []  # names of Pods whose processes ended on deletion
        self.signalled: list[str] = []  # names of Pods sent SIGTERM, in order (set at once)
        self._background: set[asyncio.Task[None]] = set()
        self._supervisors: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- lifecycle
    async def run(self, kubeconfig: Path, stop: asyncio.Event) -> None:
        await config.load_kube_config(config_file=str(kubeconfig))
        self.admin_kubeconfig = kubeconfig
        self.log_dir.mkdir(parents=True, exist_ok=True)
        async with client.ApiClient() as api, aiohttp.ClientSession() as session:
            self.api, self.core, self.session = api, client.CoreV1Api(api), session
            await self._register_node()
            watcher = asyncio.create_task(self._watch_pods(stop))
            await stop.wait()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await asyncio.gather(
                *(self._terminate(p, delete=False) for p in list(self.pods.values()))
            )
            # Let cancelled supervisors and pending deletions finish while the HTTP
            # session and the API client are still open.
            pending = [t for t in self._background if not t.done()]
            await asyncio.gather(*self._supervisors, *pending, return_exceptions=True)

    async def _register_node(self) -> None:
        assert self.core is not None
        body = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=NODE_NAME, labels={"kubernetes.io/hostname": NODE_NAME}
            )
        )
        with contextlib.suppress(ApiException):
            await self.core.create_node(body)
        status = {
            "status": {
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "LocalPodRunner",
                        "message": "development pod runner (not a kubelet)",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            }
        }
        await self.core.patch_node_status(NODE_NAME, status)

    async def _watch_pods(self, stop: asyncio.Event) -> None:
        assert self.core is not None
        selector = f"{RUN_LABEL}=true"
        while not stop.is_set():
            try:
                listing = await self.core.list_namespaced_pod(
                    self.namespace, label_selector=selector
                )
                for pod in listing.items:
                    await self._on_pod(pod)
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                )
                async for event in stream:
                    await self._on_pod(event["object"], deleted=event["type"] == "DELETED")
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped watch is normal; list again
                log.exception("pod watch failed; relisting")
                await asyncio.sleep(1)

    async def _on_pod(self, pod: Any, deleted: bool = False) -> None:
        name = pod.metadata.name
        running = self.pods.get(name)
        if running is not None and running.uid != pod.metadata.uid:
            await self._terminate(running, delete=False)
            running = None
        if deleted:
            if running is not None:
                await self._terminate(running, delete=False)
            return
        if pod.metadata.deletion_timestamp is not None:
            if running is not None and not running.deleting:
                running.deleting = True
                task = asyncio.create_task(self._terminate(running, delete=True))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            elif running is None:
                await self._force_delete(pod.metadata.name)
            return
        if running is None and pod.status.phase in (None, "Pending"):
            if not pod.spec.node_name:
                await self._bind(pod)
            assert self.core is not None
            assert self.admin_kubeconfig is not None
            credentials = await pod_credentials(self.core, pod, self.admin_kubeconfig, self.log_dir)
            self._start(pod, credentials)

    async def _bind(self, pod: Any) -> None:
        assert self.core is not None
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=NODE_NAME),
        )
        with contextlib.suppress(ValueError):  # the generated client chokes on the empty reply
            await self.core.create_namespaced_pod_binding(
                pod.metadata.name, self.namespace, binding, _preload_content=False
            )

    # ---------------------------------------------------------------- processes
    def _start(self, pod: Any, credentials: Mapping[str, str]) -> None:
        container = pod.spec.containers[0]
        annotations = pod.metadata.annotations or {}
        port_env = annotations.get(PORT_ENV_ANNOTATION, DEFAULT_PORT_ENV)
        probe = container.readiness_probe
        probe_path = probe.http_get.path if probe is not None and probe.http_get else None
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env.update(self.extra_env)
        env.update(credentials)
        env.update({e.name: e.value or "" for e in container.env or [] if e.value is not None})
        # The downward API's Pod fields, as the kubelet fills them.
        fields = {"metadata.namespace": self.namespace, "metadata.name": pod.metadata.name}
        for e in container.env or []:
            ref = e.value_from.field_ref if e.value_from is not None else None
            if ref is not None and ref.field_path in fields:
                env[e.name] = fields[ref.field_path]
        env.update(
            {"POD_NAME": pod.metadata.name, "POD_NAMESPACE": self.namespace, port_env: str(port)}
        )
        running = RunningPod(
            namespace=self.namespace,
            name=pod.metadata.name,
            uid=pod.metadata.uid,
            argv=resolve_command([*(container.command or []), *(container.args or [])]),
            env=env,
            port=port,
            probe_path=probe_path,
            probe_period_s=float(probe.period_seconds or 10) if probe is not None else 1.0,
            grace_s=float(pod.spec.termination_grace_period_seconds or 30),
            log_path=self.log_dir / f"{pod.metadata.name}.log",
            container=container.name,
        )
        self.pods[running.name] = running
        running.task = asyncio.create_task(self._supervise(running))
        self._supervisors.add(running.task)
        running.task.add_done_callback(self._supervisors.discard)

    async def _spawn(self, pod: RunningPod) -> None:
        out = pod.log_path.open("ab")
        try:
            pod.process = await asyncio.create_subprocess_exec(
                *pod.argv,
                env=pod.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            out.close()

    async def _supervise(self, pod: RunningPod) -> None:
        """Keep the process running and its readiness reported until the Pod goes away."""
        backoff_s = 1.0
        while not pod.is_deleting():
            await self._spawn(pod)
            await self._report(pod)
            while not pod.is_deleting() and pod.process and pod.process.returncode is None:
                ready = await self._probe(pod)
                if ready != pod.ready:
                    pod.ready = ready
                    await self._report(pod)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(pod.process.wait(), min(pod.probe_period_s, 1.0))
            if pod.is_deleting():
                return
            pod.restarts += 1
            pod.ready = False
            await self._report(pod)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 10.0)

    async def _probe(self, pod: RunningPod) -> bool:
        if pod.probe_path is None:
            return pod.process is not None and pod.process.returncode is None
        assert self.session is not None
        url = f"http://127.0.0.1:{pod.port}{pod.probe_path}"
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            async with self.session.get(url, timeout=timeout) as resp:
                return 200 <= resp.status < 400
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def _report(self, pod: RunningPod) -> None:
        assert self.core is not None
        alive = pod.process is not None and pod.process.returncode is None
        ready = "True" if pod.ready and alive else "False"
        status = {
            "status": {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": pod.started_at,
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "True",
                        "lastTransitionTime": pod.started_at,
                    },
                    {"type": "Initialized", "status": "True", "lastTransitionTime": pod.started_at},
                    {"type": "ContainersReady", "status": ready, "lastTransitionTime": _now()},
                    {"type": "Ready", "status": ready, "lastTransitionTime": _now()},
                ],
                "containerStatuses": [
                    {
                        "name": pod.container,
                        "image": "local-pod-runner",
                        "imageID": "",
                        "ready": ready == "True",
                        "restartCount": pod.restarts,
                        "started": alive,
                        "state": {"running": {"startedAt": pod.started_at}}
                        if alive
                        else {"waiting": {"reason": "CrashLoopBackOff"}},
                    }
                ],
            }
        }
        with contextlib.suppress(ApiException):
            await self.core.patch_namespaced_pod_status(pod.name, pod.namespace, status)

    async def _terminate(self, pod: RunningPod, delete: bool) -> None:
        """SIGTERM, the grace period, SIGKILL; then remove the Pod as the kubelet does."""
        pod.deleting = True
        proc = pod.process
        if proc is not None and proc.returncode is None:
            self.signalled.append(pod.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), pod.grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self.stopped.append(pod.name)
        (self.log_dir / f"{pod.name}.kubeconfig").unlink(missing_ok=True)
        if pod.task is not None and pod.task is not asyncio.current_task():
            pod.task.cancel()
        self.pods.pop(pod.name, None)
        if delete:
            await self._force_delete(pod.name)

    async def _force_delete(self, name: str) -> None:
        assert self.core is not None
        with contextlib.suppress(ApiException):
            await self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)


async def run_pod_runner(
    kubeconfig: Path,
    namespace: str,
    log_dir: Path,
    stop: asyncio.Event,
    extra_env: Mapping[str, str] | None = None,
) -> PodRunner:
    runner = PodRunner(namespace, log_dir, extra_env)
    await runner.run(kubeconfig, stop)
    return runner


def main(argv: list[str] | None = None) -> None:
    """`python -m jobqueue_devkit.podrunner KUBECONFIG NAMESPACE [LOGDIR]`."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 2:
        sys.exit("usage: python -m jobqueue_devkit.podrunner KUBECONFIG NAMESPACE [LOGDIR]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log_dir = Path(args[2]) if len(args) > 2 else Path(f"/tmp/jq-podrunner-{int(time.time())}")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_pod_runner(Path(args[0]), args[1], log_dir, stop)

    asyncio.run(_main())


if __name__ == "__main__":
    main()
