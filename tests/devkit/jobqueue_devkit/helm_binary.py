"""Build the `helm` CLI from the `helm.sh/helm/v4` Go module, once.

Built like the control plane (`binaries.py`): the version lives in the wrapper
module `tests/devkit/go/helm/go.mod`, the binary goes to a cache outside the
clone keyed by (helm version, Go version), a lock keeps concurrent builds from
racing, and `GOTOOLCHAIN=local CGO_ENABLED=0` as upstream's release builds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from jobqueue_devkit.binaries import (
    BUILD_TIMEOUT_S,
    DOWNLOAD_TIMEOUT_S,
    GO_DIR,
    build_lock,
    cache_root,
    go_version,
    required_version,
    run_go,
)
from jobqueue_devkit.errors import DevkitError

HELM_MODULE = GO_DIR / "helm"
HELM_PACKAGE = "helm.sh/helm/v4"
#: Where upstream's Makefile stamps the release; without it `helm version` says "v4.3".
VERSION_PACKAGE = f"{HELM_PACKAGE}/internal/version"


def helm_version() -> str:
    return required_version(HELM_MODULE / "go.mod", HELM_PACKAGE)


def helm_path() -> Path:
    key = f"helm-{helm_version()}_{go_version()}"
    return cache_root() / "helm" / key / "bin" / "helm"


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def cached_helm() -> Path | None:
    """The cached helm for the pinned version ($JOBQUEUE_HELM_BIN wins), or None."""
    override = os.environ.get("JOBQUEUE_HELM_BIN")
    if override:
        if not _usable(Path(override)):
            raise DevkitError(f"JOBQUEUE_HELM_BIN={override} is not an executable file")
        return Path(override)
    path = helm_path()
    return path if _usable(path) else None


def version_ldflags(version: str) -> str:
    pairs = {"version": version, "gitTreeState": "clean"}
    return " ".join(["-s", "-w", *(f"-X {VERSION_PACKAGE}.{k}={v}" for k, v in pairs.items())])


def build_helm() -> Path:
    """Build helm unless the cache already has it; return its path."""
    target = helm_path()
    if _usable(target):
        return target
    bin_dir = target.parent
    with build_lock(bin_dir.parent):
        if _usable(target):  # another process built it while we waited
            return target
        staging = bin_dir.parent / "bin.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = bin_dir.parent / "build.log"
        version = helm_version()
        print(
            f"==> building helm {version} with {go_version()}"
            f" (cold: 3-9 min on 2 cores; log {log})",
            flush=True,
        )
        run_go(
            ["mod", "download", HELM_PACKAGE],
            HELM_MODULE,
            DOWNLOAD_TIMEOUT_S,
            "reach the Go module proxy",
            log,
        )
        run_go(
            [
                "build",
                "-trimpath",
                "-ldflags",
                version_ldflags(version),
                "-o",
                str(staging / "helm"),
                f"{HELM_PACKAGE}/cmd/helm",
            ],
            HELM_MODULE,
            BUILD_TIMEOUT_S,
            "build helm",
            log,
        )
        shutil.rmtree(bin_dir, ignore_errors=True)
        staging.rename(bin_dir)
    if not _usable(target):
        raise DevkitError(f"the build finished but {target} is missing; log {log}")
    return target


def ensure_helm() -> Path:
    """The cached helm, building it first when missing."""
    return cached_helm() or build_helm()
