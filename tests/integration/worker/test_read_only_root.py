"""Isolated job types under a read-only root filesystem, with and without the /tmp volume.

The manifests and the chart run workers with `readOnlyRootFilesystem: true` and an
emptyDir at /tmp. The stand-in here is a private mount namespace (root only) in
which /tmp, /var/tmp and the working directory are read-only bind mounts and
TMPDIR is unset, so no temporary directory is usable: exactly what a container
sees without the volume. A tmpfs mounted over /tmp stands for the emptyDir.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import Producer

pytestmark = pytest.mark.redis

QUEUE = "isolated"


def _mount_namespace_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


needs_mount_namespace = pytest.mark.skipif(
    not _mount_namespace_works(),
    reason="needs root and unshare(1) to build the read-only root stand-in",
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """The worker's working directory: outside /tmp, which the volume would hide."""
    path = Path(tempfile.mkdtemp(prefix="jobqueue-ro-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _read_only_worker(redis_url: str, workdir: Path, *, tmp_volume: bool) -> subprocess.Popen[str]:
    """`jobqueue worker` in a mount namespace where no temporary directory is writable."""
    steps = [
        f"mount --bind {d} {d} && mount -o remount,bind,ro {d}"
        for d in ("/tmp", "/var/tmp", shlex.quote(str(workdir)))
    ]
    steps.append(f"cd {shlex.quote(str(workdir))}")
    if tmp_volume:
        steps.append("mount -t tmpfs -o size=16m,mode=1777 tmpfs /tmp")
    worker = shlex.join([sys.executable, "-m", "jobqueue_worker", "worker"])
    script = " && ".join([*steps, f"exec {worker}"])
    env = {k: v for k, v in os.environ.items() if k not in {"TMPDIR", "TEMP", "TMP", "PYTHONPATH"}}
    env.update(
        JQW_REDIS_URL=redis_url,
        JQW_HANDLERS="jobqueue_worker.examples",
        JQW_QUEUES=QUEUE,
        JQW_HTTP_PORT="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@needs_mount_namespace
def test_without_a_tmp_volume_the_worker_refuses_to_start_and_says_why(
    redis_url: str, workdir: Path
) -> None:
    proc = _read_only_worker(redis_url, workdir, tmp_volume=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "need a writable temporary directory" in lines[0]
    assert "spin_isolated" in lines[0]
    assert "emptyDir at /tmp" in lines[0]


@needs_mount_namespace
async def test_with_the_tmp_volume_an_isolated_job_runs(redis_url: str, workdir: Path) -> None:
    proc = _read_only_worker(redis_url, workdir, tmp_volume=True)
    try:
        async with Producer(redis_url, default_queue=QUEUE) as producer:
            job_id = await producer.enqueue("spin_isolated", {"seconds": 0.05})
            record = None
            for _ in range(600):
                record = await producer.status(job_id)
                if record is not None and record.status is JobStatus.COMPLETED:
                    break
                assert proc.poll() is None, proc.communicate(timeout=5)
                await asyncio.sleep(0.05)
        assert record is not None
        assert record.status is JobStatus.COMPLETED, (record.status, record.error)
        assert int(record.result) > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
