"""Local base images: Debian bookworm from debootstrap, and Python on top of it.

Nothing can be pulled from a registry here, so `local/debian:bookworm` is made
with debootstrap from the machine's own Debian mirror and `docker import`ed.
`local/python:3.11-bookworm` adds Debian's Python and the machine's locally
added CA certificates: HTTPS to the package index is re-signed by a CA only
the host trusts, and pip inside a container fails without it. The project's
Dockerfiles stay clean and take this image as their PYTHON_IMAGE build argument.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from jobqueue_devkit import docker_engine
from jobqueue_devkit.errors import DevkitError

DEBIAN_IMAGE = "local/debian:bookworm"
PYTHON_IMAGE = "local/python:3.11-bookworm"
SUITE = "bookworm"
# Bump when the recipe changes, so a stale cached image is rebuilt.
RECIPE_LABEL = "dev.jobqueue.base-recipe"
RECIPE = "1"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
LEGACY_SOURCES = Path("/etc/apt/sources.list")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
DEBOOTSTRAP_TIMEOUT_S = 15 * 60

PYTHON_DOCKERFILE = f"""\
FROM {DEBIAN_IMAGE}
LABEL {RECIPE_LABEL}={RECIPE}
COPY ca-certificates/ /usr/local/share/ca-certificates/
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-venv python3-pip python-is-python3 ca-certificates \\
 && update-ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
"""


def debian_mirror(sources: Path = SOURCES, legacy: Path = LEGACY_SOURCES) -> str:
    """The host's own Debian mirror, from the deb822 `URIs:` line of the main suite."""
    if sources.exists():
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    raise DevkitError(f"no Debian mirror for {SUITE} in {sources} or {legacy}")


def _debootstrap(rootfs: Path, mirror: str, log: Path) -> None:
    argv = ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror]
    with log.open("ab") as out:
        try:
            proc = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=DEBOOTSTRAP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DevkitError(
                f"debootstrap took longer than {DEBOOTSTRAP_TIMEOUT_S // 60} min"
            ) from exc
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        raise DevkitError(f"debootstrap {SUITE} from {mirror} failed: {' '.join(tail)}; log {log}")


def _import_rootfs(rootfs: Path) -> None:
    """Trim the package caches, give it the host's apt sources, and `docker import` it."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    if SOURCES.exists():
        shutil.copy(SOURCES, rootfs / "etc/apt/sources.list.d" / SOURCES.name)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        docker_engine.docker(
            "import",
            "--change",
            f"LABEL {RECIPE_LABEL}={RECIPE}",
            "-",
            DEBIAN_IMAGE,
            timeout_s=600,
            stdin=tar.stdout,
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait(timeout=60)


def _current(image: str) -> bool:
    return docker_engine.image_label(image, RECIPE_LABEL) == RECIPE


def ensure_debian_image() -> bool:
    """Build local/debian:bookworm unless present; True when it was built now."""
    if _current(DEBIAN_IMAGE):
        return False
    workdir = docker_engine.engine_dir() / "debootstrap"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        _debootstrap(
            workdir / "rootfs", debian_mirror(), docker_engine.engine_dir() / "debootstrap.log"
        )
        _import_rootfs(workdir / "rootfs")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return True


def ensure_python_image(rebuild: bool = False) -> bool:
    """Build local/python:3.11-bookworm unless present; True when it was built now."""
    if not rebuild and _current(PYTHON_IMAGE):
        return False
    with tempfile.TemporaryDirectory(prefix="jq-python-base-") as tmp:
        context = Path(tmp)
        certs = context / "ca-certificates"
        certs.mkdir()
        for crt in sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []:
            shutil.copy(crt, certs / crt.name)
        (context / "Dockerfile").write_text(PYTHON_DOCKERFILE)
        docker_engine.build(PYTHON_IMAGE, context)
    return True


def ensure_base_images() -> list[str]:
    """Both base images, built once under the engine lock; returns the ones built now."""
    built = []
    with docker_engine.engine_lock():
        debian_new = ensure_debian_image()
        if debian_new:
            built.append(DEBIAN_IMAGE)
        if ensure_python_image(rebuild=debian_new):
            built.append(PYTHON_IMAGE)
    return built
