"""The Pod sandbox image, made here: no registry (registry.k8s.io included) is reachable.

A static C program that waits for SIGTERM and reaps orphans, which is all the
upstream pause container does; it is packed into a one-file image with
`docker import` and then imported into the node's containerd.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from jobqueue_devkit import docker_engine
from jobqueue_devkit.errors import DevkitError

SOURCE = Path(__file__).resolve().parent.parent / "pause" / "pause.c"
PAUSE_IMAGE = "local/pause:3.10"
# containerd names images from `docker save` with Docker's default registry.
PAUSE_REF = f"docker.io/{PAUSE_IMAGE}"
SOURCE_LABEL = "dev.jobqueue.pause-source"


def _source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def ensure_pause_image() -> bool:
    """Build local/pause:3.10 unless the engine has it from this source; True if built now."""
    digest = _source_digest()
    if docker_engine.image_label(PAUSE_IMAGE, SOURCE_LABEL) == digest:
        return False
    gcc = shutil.which("gcc")
    if gcc is None:
        raise DevkitError("gcc is missing: install gcc and libc6-dev to build the pause image")
    with tempfile.TemporaryDirectory(prefix="jq-pause-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        out = subprocess.run(
            [gcc, "-static", "-Os", "-s", "-o", str(rootfs / "pause"), str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            last = out.stderr.strip().splitlines()[-1:]
            raise DevkitError(f"gcc -static could not build {SOURCE.name}: {' '.join(last)}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            docker_engine.docker(
                "import",
                "--change",
                'ENTRYPOINT ["/pause"]',
                "--change",
                f"LABEL {SOURCE_LABEL}={digest}",
                "-",
                PAUSE_IMAGE,
                stdin=tar.stdout,
                timeout_s=120,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait(timeout=60)
    return True
