"""Build kube-apiserver, kube-controller-manager and etcd from Go modules, once.

The versions live in the wrapper modules' go.mod files under `tests/devkit/go/`
(the single source of truth). Binaries go to a cache outside the clone keyed by
(Kubernetes version, etcd version, Go version), so a second build is skipped and
nothing built ever enters git. A lock file keeps two concurrent builds (say, a
test run and `make cluster-up`) from racing on the same cache directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jobqueue_devkit.errors import DevkitError

GO_DIR = Path(__file__).resolve().parent.parent / "go"
KUBE_MODULE = GO_DIR / "kube"
ETCD_MODULE = GO_DIR / "etcd"
BUILD_TIMEOUT_S = 50 * 60
DOWNLOAD_TIMEOUT_S = 15 * 60
PROXY_ERRORS = (
    "dial tcp",
    "no such host",
    "i/o timeout",
    "connection refused",
    "proxyconnect",
    "tls handshake timeout",
    "server response: 4",
    "server response: 5",
)


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """Paths to the three servers of the local control plane."""

    directory: Path

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.directory / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.directory / "kube-controller-manager"

    def complete(self) -> bool:
        return all(
            p.is_file() and os.access(p, os.X_OK)
            for p in (self.etcd, self.kube_apiserver, self.kube_controller_manager)
        )


def cache_root() -> Path:
    """Where built binaries live: $JOBQUEUE_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("JOBQUEUE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "jobqueue-operator"


def required_version(go_mod: Path, module: str) -> str:
    """The version of `module` that a wrapper go.mod requires."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    if not match:
        raise DevkitError(f"{go_mod} does not require {module}; the wrapper module is broken")
    return match.group(1)


def kubernetes_version() -> str:
    return required_version(KUBE_MODULE / "go.mod", "k8s.io/kubernetes")


def etcd_version() -> str:
    return required_version(ETCD_MODULE / "go.mod", "go.etcd.io/etcd/server/v3")


def go_env() -> dict[str, str]:
    """The environment every go command runs with.

    GOTOOLCHAIN=local makes a too-new module fail at once instead of silently
    downloading another toolchain; CGO is off because upstream builds these
    binaries statically.
    """
    env = dict(os.environ)
    env.update({"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"})
    return env


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise DevkitError(
            "Go toolchain not found on PATH: install Go 1.26 or newer "
            "(Debian: the golang package from backports, or the tarball from go.dev) "
            "and run `make controlplane` again"
        )
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"],
            check=False,
            env=go_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        raise DevkitError("`go env GOVERSION` hung for 60s; is the Go install broken?") from exc
    version = out.stdout.strip()
    if out.returncode != 0 or not version.startswith("go"):
        raise DevkitError(f"`go env GOVERSION` failed: {out.stderr.strip() or out.stdout.strip()}")
    return version


def binaries_dir() -> Path:
    key = f"k8s-{kubernetes_version()}_etcd-{etcd_version()}_{go_version()}"
    return cache_root() / "controlplane" / key / "bin"


def cached_binaries() -> ControlPlaneBinaries | None:
    """The cached binaries for the pinned versions, or None if not built yet."""
    override = os.environ.get("JOBQUEUE_CONTROLPLANE_BIN")
    if override:
        bins = ControlPlaneBinaries(Path(override))
        if not bins.complete():
            raise DevkitError(
                f"JOBQUEUE_CONTROLPLANE_BIN={override} lacks etcd, kube-apiserver "
                "or kube-controller-manager"
            )
        return bins
    bins = ControlPlaneBinaries(binaries_dir())
    return bins if bins.complete() else None


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_go(args: list[str], cwd: Path, timeout_s: float, what: str, log: Path) -> None:
    go = shutil.which("go")
    assert go is not None  # go_version() checked it
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ (cd {cwd} && go {' '.join(args)})\n")
        out.flush()
        try:
            proc = subprocess.run(
                [go, *args],
                cwd=cwd,
                env=go_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DevkitError(
                f"{what} took longer than {timeout_s / 60:.0f} min; log {log}"
            ) from exc
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        lowered = tail.lower()
        if any(marker in lowered for marker in PROXY_ERRORS):
            proxy = go_env().get("GOPROXY") or "https://proxy.golang.org (default)"
            raise DevkitError(
                f"{what} failed: cannot reach the Go module proxy (GOPROXY={proxy}); "
                f"check the network or set GOPROXY; log {log}\n{tail}"
            )
        if "requires go >=" in lowered:
            raise DevkitError(
                f"{what} failed: the installed Go is too old for these modules; "
                f"install the Go version named below; log {log}\n{tail}"
            )
        raise DevkitError(f"{what} failed (exit {proc.returncode}); log {log}\n{tail}")
    print(f"    {what}: {time.monotonic() - started:.0f}s", flush=True)


def _version_ldflags(version: str) -> str:
    """Stamp the binaries as upstream does, so /version reports the real release."""
    major, minor = version.lstrip("v").split(".")[:2]
    pairs = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [f"-X '{package}.{key}={value}'" for key, value in pairs.items()]
    return " ".join(flags)


def build() -> ControlPlaneBinaries:
    """Build the three binaries unless the cache already has them."""
    target = binaries_dir()
    bins = ControlPlaneBinaries(target)
    if bins.complete():
        return bins
    with build_lock(target.parent):
        if bins.complete():  # another process built them while we waited
            return bins
        staging = target.parent / "bin.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = target.parent / "build.log"
        k8s = kubernetes_version()
        print(
            f"==> building kube-apiserver, kube-controller-manager {k8s} and etcd "
            f"{etcd_version()} with {go_version()} (cold: ~6-10 min on 2 cores; log {log})",
            flush=True,
        )
        # One small download first, so an unreachable proxy fails in seconds, not mid-build.
        run_go(
            ["mod", "download", "k8s.io/kubernetes"],
            KUBE_MODULE,
            DOWNLOAD_TIMEOUT_S,
            "reach the Go module proxy",
            log,
        )
        run_go(
            [
                "build",
                "-trimpath",
                "-ldflags",
                _version_ldflags(k8s),
                "-o",
                f"{staging}/",
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
            ],
            KUBE_MODULE,
            BUILD_TIMEOUT_S,
            "build kube-apiserver and kube-controller-manager",
            log,
        )
        run_go(
            [
                "build",
                "-trimpath",
                "-ldflags",
                "-s -w",
                "-o",
                str(staging / "etcd"),
                "go.etcd.io/etcd/server/v3",
            ],
            ETCD_MODULE,
            BUILD_TIMEOUT_S,
            "build etcd",
            log,
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    if not bins.complete():
        raise DevkitError(f"the build finished but {target} lacks a binary; log {log}")
    return bins


def ensure_binaries() -> ControlPlaneBinaries:
    """Cached binaries, building them first when missing."""
    return cached_binaries() or build()
