"""The built images, run with Docker the way the manifests run them.

The worker container runs as its non-root user with a read-only root filesystem,
every capability dropped and the manifests' /tmp volume (a tmpfs of the size the
manifests give the emptyDir), on the host's network so it reaches the test's
Redis on loopback; it must take jobs from that Redis, isolated ones included,
answer its readiness probe, and leave cleanly on `docker stop` (SIGTERM).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobqueue_devkit.ports import free_port
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer

pytestmark = [pytest.mark.docker, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[3]
WORKERS = REPO / "manifests" / "examples" / "workers.yaml"
QUEUE = "images"


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def tmp_volume_size() -> str:
    """The sizeLimit of the emptyDir the example worker manifests mount at /tmp."""
    sizes = set()
    for doc in yaml.safe_load_all(WORKERS.read_text()):
        if not doc or doc.get("kind") != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", [])]
        tmp = [m for m in mounts if m["mountPath"] == "/tmp"]
        assert tmp, f"{doc['metadata']['name']}: no volume at /tmp"
        sizes.add(volumes[tmp[0]["name"]]["emptyDir"]["sizeLimit"])
    assert len(sizes) == 1, sizes
    limit = sizes.pop()
    assert limit.endswith("Mi"), limit
    return f"{int(limit[:-2])}m"


def restricted(image: str, *args: str, tmp: bool = True, name: str | None = None) -> list[str]:
    """`docker run` flags for the manifests' securityContext; then the image and args."""
    flags = ["--network", "host", "--read-only", "--user", "10001:10001", "--cap-drop", "ALL"]
    flags += ["--security-opt", "no-new-privileges"]
    if tmp:
        flags += ["--tmpfs", f"/tmp:rw,size={tmp_volume_size()},mode=1777"]
    if name:
        flags += ["--name", name]
    return [*flags, image, *args]


@pytest.mark.parametrize(
    ("which", "command"),
    [("worker", ()), ("worker", ("worker",)), ("worker", ("dlq",)), ("operator", ())],
)
def test_console_scripts_answer_help_and_version(
    project_images: Any, which: str, command: tuple[str, ...]
) -> None:
    image = getattr(project_images, which)
    helped = docker("run", "--rm", image, *command, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage" in helped.stdout.lower()
    if not command:
        versioned = docker("run", "--rm", image, "--version")
        assert versioned.returncode == 0, versioned.stderr
        assert versioned.stdout.split()[1] == image.rsplit(":", 1)[1]


def test_the_worker_image_names_the_missing_handler_setting(project_images: Any) -> None:
    run = docker("run", "--rm", *restricted(project_images.worker, "worker"))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith(
        "jobqueue: error: JQW_HANDLERS: no job handler module is configured"
    )


def test_without_the_tmp_volume_isolated_types_refuse_to_start(project_images: Any) -> None:
    env = ["-e", "JQW_HANDLERS=jobqueue_worker.examples"]
    run = docker("run", "--rm", *env, *restricted(project_images.worker, "worker", tmp=False))
    assert run.returncode == 2
    assert "need a writable temporary directory" in run.stderr
    assert "emptyDir at /tmp" in run.stderr


@pytest.fixture
def worker_container(project_images: Any, redis_url: str) -> Iterator[tuple[str, int]]:
    name, port = f"jq-worker-{uuid.uuid4().hex[:8]}", free_port()
    env = {
        "JQW_REDIS_URL": redis_url,
        "JQW_HANDLERS": "jobqueue_worker.examples",
        "JQW_QUEUES": QUEUE,
        "JQW_HTTP_PORT": str(port),
        "JQW_HTTP_HOST": "127.0.0.1",
        "POD_NAME": name,
    }
    flags = [part for k, v in env.items() for part in ("-e", f"{k}={v}")]
    started = docker("run", "-d", *flags, *restricted(project_images.worker, name=name))
    assert started.returncode == 0, started.stderr
    try:
        yield name, port
    finally:
        logs = docker("logs", "--tail", "40", name)
        print(f"--- {name} logs\n{logs.stdout}{logs.stderr}")
        docker("rm", "-f", name)


def _ready(port: int, timeout_s: float) -> int:
    deadline, last = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                last = reply.status
                if last == 200:
                    return last
        except OSError:
            pass
        time.sleep(0.2)
    return last


async def test_the_worker_container_runs_jobs_read_only_as_its_user(
    worker_container: tuple[str, int], redis_url: str
) -> None:
    name, port = worker_container
    assert await asyncio.to_thread(_ready, port, 60) == 200
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    wrote = docker("exec", name, "sh", "-c", "echo x > /opt/venv/probe")
    assert wrote.returncode != 0, "the root filesystem must be read-only"
    assert "Read-only file system" in wrote.stderr

    async with Producer(redis_url, default_queue=QUEUE) as producer:
        ids = [await producer.enqueue("noop") for _ in range(20)]
        ids.append(await producer.enqueue("spin_isolated", {"seconds": 0.05}))
        deadline = time.monotonic() + 60
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                record = await producer.status(job_id)
                if record is not None and record.status is JobStatus.COMPLETED:
                    pending.discard(job_id)
            await asyncio.sleep(0.1)
    assert not pending, f"{len(pending)} of {len(ids)} jobs did not complete in the container"

    stopped = docker("stop", "--time", "30", name, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert exit_code == "0", "SIGTERM must end the worker cleanly"
