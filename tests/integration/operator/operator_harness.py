"""Helpers for the operator's integration tests: kubectl as admin, the operator process,
objects, and filling or draining a queue through the worker's own API and key layout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_protocol import keys
from jobqueue_worker.producer import JobRequest, SyncProducer


class Kubectl:
    """kubectl as the admin (the test's own hands), with JSON in and out."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        out = subprocess.run(
            ["kubectl", f"--kubeconfig={self.plane.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout if out.returncode == 0 else out.stdout + out.stderr

    def apply(self, *docs: dict[str, Any]) -> None:
        self("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return json.loads(self("get", kind, name, "-n", namespace, "-o", "json"))  # type: ignore[no-any-return]

    def replicas(self, deployment: str, namespace: str) -> int:
        scale = json.loads(
            self(
                "get",
                f"deployment/{deployment}",
                "-n",
                namespace,
                "--subresource=scale",
                "-o",
                "json",
            )
        )
        return int(scale["spec"].get("replicas", 0))

    def scaled_to(
        self, deployment: str, jobqueue: str, namespace: str, replicas: int
    ) -> dict[str, Any]:
        """The JobQueue's status once ``/scale`` *and* the status say ``replicas``, else ``{}``.

        The operator lowers or raises ``/scale`` first and records the decision in
        the status PATCH that ends the same tick, so a test that reads the status
        right after seeing the new count can fall between the two writes.
        """
        if self.replicas(deployment, namespace) != replicas:
            return {}
        status = self.status(jobqueue, namespace)
        return status if status.get("desiredReplicas") == replicas else {}

    def status(self, jobqueue: str, namespace: str) -> dict[str, Any]:
        return self.get("jobqueue", jobqueue, namespace).get("status") or {}  # type: ignore[no-any-return]

    def condition(self, jobqueue: str, namespace: str, ctype: str) -> dict[str, Any]:
        for cond in self.status(jobqueue, namespace).get("conditions", []):
            if cond["type"] == ctype:
                return cond  # type: ignore[no-any-return]
        return {}


@dataclass
class OperatorProcess:
    """One ``jobqueue-operator`` subprocess."""

    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    health_port: int

    def kill(self) -> None:
        """SIGKILL: no cleanup, like a node dying."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def loops(self) -> int | None:
        """How many JobQueue loops this process runs (its probe), None if not answering."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as resp:
                return int(json.loads(resp.read()).get("jobqueues", 0))
        except (OSError, ValueError):
            return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def deployment(name: str, namespace: str, replicas: int = 1) -> dict[str, Any]:
    """A worker Deployment; its Pods stay Pending (no kubelet), only spec.replicas matters."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "jobqueue-worker:test"}]},
            },
        },
    }


def jobqueue(name: str, namespace: str, target: str, redis_url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "jobqueue.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": target},
            "redis": {"url": redis_url},
            "queues": [f"{name}:jobs"],
            **spec,
        },
    }


def fill(redis_url: str, queue: str, count: int) -> None:
    """Enqueue ``count`` jobs with the worker's producer API (one round trip)."""
    producer = SyncProducer(redis_url, default_queue=queue)
    try:
        producer.enqueue_many([JobRequest(type="noop", queue=queue) for _ in range(count)])
    finally:
        producer.close()


def drain(redis_url: str, queue: str) -> None:
    """Empty the ready sets of ``queue`` (what finished workers would leave behind)."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(*keys.ready_keys(queue))
    finally:
        client.close()


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)
