"""The development pod runner makes Pods real processes with real readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from jobqueue_devkit.podrunner import NODE_NAME, RUN_LABEL, PodRunner
from jobqueue_devkit.waiting import eventually

pytestmark = pytest.mark.k8s

# A process that serves readiness on the port the runner hands it, and logs SIGTERM.
SERVER = (
    "import http.server,os,signal,sys\n"
    "def bye(*_):\n"
    "    print('got SIGTERM', flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['JQW_HTTP_PORT'])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)


def deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "probe", RUN_LABEL: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.invalid/worker:1",
                            "command": ["python", "-c", SERVER],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


async def test_pods_run_become_ready_and_stop_on_scale_down(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    await config.load_kube_config(config_file=str(kubeconfig))
    stop = asyncio.Event()
    runner = PodRunner(namespace, tmp_path)
    task = asyncio.create_task(runner.run(kubeconfig, stop))
    try:
        async with client.ApiClient() as api:
            apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
            await apps.create_namespaced_deployment(namespace, deployment(2))

            async def ready_replicas() -> int:
                dep = await apps.read_namespaced_deployment("probe", namespace)
                return int(dep.status.ready_replicas or 0) if dep.status.ready_replicas == 2 else 0

            assert await eventually(ready_replicas, timeout_s=60) == 2
            pods = (await core.list_namespaced_pod(namespace, label_selector="app=probe")).items
            assert {p.spec.node_name for p in pods} == {NODE_NAME}
            assert {p.status.phase for p in pods} == {"Running"}
            names = {p.metadata.name for p in pods}
            assert set(runner.pods) == names

            await apps.patch_namespaced_deployment_scale(
                "probe", namespace, {"spec": {"replicas": 1}}
            )

            async def one_left() -> list[str]:
                items = (
                    await core.list_namespaced_pod(namespace, label_selector="app=probe")
                ).items
                return [p.metadata.name for p in items] if len(items) == 1 else []

            (survivor,) = await eventually(one_left, timeout_s=60)
            (gone,) = names - {survivor}
            assert runner.stopped == [gone]
            assert "got SIGTERM" in (tmp_path / f"{gone}.log").read_text()
            assert set(runner.pods) == {survivor}
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert runner.pods == {}


def bare_pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {RUN_LABEL: "true"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.invalid/x:1",
                    "command": ["python", "-c", SERVER],
                }
            ],
            **spec,
        },
    }


async def test_a_pod_gets_its_service_accounts_token_and_no_other_credentials(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    await config.load_kube_config(config_file=str(kubeconfig))
    stop = asyncio.Event()
    runner = PodRunner(namespace, tmp_path)
    task = asyncio.create_task(runner.run(kubeconfig, stop))
    try:
        async with client.ApiClient() as api:
            core = client.CoreV1Api(api)
            await core.create_namespaced_service_account(
                namespace, {"metadata": {"name": "reader"}}
            )
            await core.create_namespaced_pod(
                namespace, bare_pod("with-sa", serviceAccountName="reader")
            )
            await core.create_namespaced_pod(
                namespace,
                bare_pod(
                    "opted-out", serviceAccountName="reader", automountServiceAccountToken=False
                ),
            )
            await core.create_namespaced_pod(namespace, bare_pod("no-sa"))

            async def started() -> bool:
                return {"with-sa", "opted-out", "no-sa"} <= set(runner.pods)

            assert await eventually(started, timeout_s=60)
            env = {name: runner.pods[name].env for name in ("with-sa", "opted-out", "no-sa")}
            # The runner's own KUBECONFIG (the admin's) reaches no Pod.
            assert "KUBECONFIG" not in env["opted-out"]
            assert "KUBECONFIG" not in env["no-sa"]
            whoami = await asyncio.create_subprocess_exec(
                "kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                env={
                    "KUBECONFIG": env["with-sa"]["KUBECONFIG"],
                    "PATH": "/usr/bin:/bin",
                    "HOME": str(tmp_path),  # kubectl keeps its discovery cache under HOME
                },
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await whoami.communicate()
            assert out.decode() == f"system:serviceaccount:{namespace}:reader", err.decode()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
