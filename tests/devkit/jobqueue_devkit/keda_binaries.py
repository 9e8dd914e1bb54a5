"""Build the real KEDA operator and metrics adapter from the Go module, once.

KEDA's go.mod carries `replace` directives, so `go install module@version`
refuses it; the build runs inside a writable copy of the downloaded module
instead. Built like the control plane (`binaries.py`): a cache outside the
clone keyed by (KEDA version, Go version), a lock against concurrent builds, a
staging directory renamed into place only when every binary is there. The
CRDs and the external-scaler .proto are copied next to the binaries, because
the running cluster needs the exact CRDs of the release that was built.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jobqueue_devkit.binaries import (
    BUILD_TIMEOUT_S,
    DOWNLOAD_TIMEOUT_S,
    build_lock,
    cache_root,
    go_env,
    go_version,
    run_go,
)
from jobqueue_devkit.errors import DevkitError

KEDA_MODULE = "github.com/kedacore/keda/v2"
#: v2.21.1 needs a newer Go than the approved toolchain; v2.21.0 builds with Go 1.26.
KEDA_VERSION = "v2.21.0"
VERSION_PACKAGE = f"{KEDA_MODULE}/version"


@dataclass(frozen=True)
class KedaBinaries:
    """The operator, the metrics adapter and the release's CRDs, in one directory."""

    directory: Path

    @property
    def operator(self) -> Path:
        return self.directory / "keda"

    @property
    def adapter(self) -> Path:
        return self.directory / "keda-adapter"

    @property
    def crds(self) -> Path:
        return self.directory / "crds"

    def complete(self) -> bool:
        binaries_ok = all(
            p.is_file() and os.access(p, os.X_OK) for p in (self.operator, self.adapter)
        )
        return binaries_ok and any(self.crds.glob("*.yaml"))


def keda_dir() -> Path:
    return cache_root() / "keda" / f"keda-{KEDA_VERSION}_{go_version()}" / "bin"


def cached_keda() -> KedaBinaries | None:
    """The cached KEDA build ($JOBQUEUE_KEDA_BIN wins), or None when not built yet."""
    override = os.environ.get("JOBQUEUE_KEDA_BIN")
    if override:
        bins = KedaBinaries(Path(override))
        if not bins.complete():
            raise DevkitError(f"JOBQUEUE_KEDA_BIN={override} lacks keda, keda-adapter or crds/")
        return bins
    bins = KedaBinaries(keda_dir())
    return bins if bins.complete() else None


def _download_module(workdir: Path, log: Path) -> Path:
    """Download the module through the proxy; return its (read-only) directory."""
    # Fails in seconds when the proxy is unreachable, before the long build.
    run_go(
        ["mod", "download", f"{KEDA_MODULE}@{KEDA_VERSION}"],
        workdir,
        DOWNLOAD_TIMEOUT_S,
        "download the KEDA module",
        log,
    )
    go = shutil.which("go")
    assert go is not None  # go_version() checked it
    out = subprocess.run(
        [go, "mod", "download", "-json", f"{KEDA_MODULE}@{KEDA_VERSION}"],
        cwd=workdir,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=DOWNLOAD_TIMEOUT_S,
        check=False,
    )
    try:
        directory = Path(json.loads(out.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        message = f"`go mod download -json` gave no module directory: {out.stderr}"
        raise DevkitError(message) from exc
    return directory


def _writable_copy(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for name in (*dirs, *files):
            path = Path(root) / name
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    dest.chmod(dest.stat().st_mode | stat.S_IWUSR)


def build_keda() -> KedaBinaries:
    """Build keda and keda-adapter unless the cache already has them."""
    target = keda_dir()
    bins = KedaBinaries(target)
    if bins.complete():
        return bins
    with build_lock(target.parent):
        if bins.complete():  # another process built them while we waited
            return bins
        staging = target.parent / "bin.partial"
        source = target.parent / "src"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)
        staging.mkdir(parents=True)
        log = target.parent / "build.log"
        print(
            f"==> building KEDA {KEDA_VERSION} (operator + metrics adapter) with {go_version()}"
            f" (cold: ~10-20 min on 2 cores; log {log})",
            flush=True,
        )
        _writable_copy(_download_module(target.parent, log), source)
        ldflags = f"-s -w -X={VERSION_PACKAGE}.Version={KEDA_VERSION.lstrip('v')}"
        for package, name in (("./cmd/operator", "keda"), ("./cmd/adapter", "keda-adapter")):
            run_go(
                ["build", "-trimpath", "-ldflags", ldflags, "-o", str(staging / name), package],
                source,
                BUILD_TIMEOUT_S,
                f"build {name}",
                log,
            )
        shutil.copytree(source / "config" / "crd" / "bases", staging / "crds")
        shutil.copy2(
            source / "pkg" / "scalers" / "externalscaler" / "externalscaler.proto", staging
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        shutil.rmtree(source, ignore_errors=True)
    if not bins.complete():
        raise DevkitError(f"the KEDA build finished but {target} lacks a binary; log {log}")
    return bins


def ensure_keda() -> KedaBinaries:
    """The cached KEDA build, building it first when missing."""
    return cached_keda() or build_keda()
