"""Build the real node's binaries from Go modules, once: kubelet, kube-scheduler,
containerd 2.x (with its runc shim and ctr) and crictl.

Like the control plane, the versions live in wrapper go.mod files under
`tests/devkit/go/` and the binaries in the cache outside the clone, keyed by
version. kubelet and kube-scheduler come from the same pinned k8s.io/kubernetes
module as the API server; containerd and crictl each have a wrapper of their own
so their dependency graphs never move the Kubernetes one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from jobqueue_devkit.binaries import (
    BUILD_TIMEOUT_S,
    GO_DIR,
    KUBE_MODULE,
    _version_ldflags,
    build_lock,
    cache_root,
    go_version,
    kubernetes_version,
    required_version,
    run_go,
)
from jobqueue_devkit.errors import DevkitError

CONTAINERD_MODULE = GO_DIR / "containerd"
CRICTL_MODULE = GO_DIR / "crictl"
# The storage drivers we never use need cgo or kernel headers; leave them out.
CONTAINERD_TAGS = "no_btrfs no_devmapper no_zfs"
KUBE_TOOLS = ("kubelet", "kube-scheduler")
RUNTIME_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "crictl")


def containerd_version() -> str:
    return required_version(CONTAINERD_MODULE / "go.mod", "github.com/containerd/containerd/v2")


def crictl_version() -> str:
    return required_version(CRICTL_MODULE / "go.mod", "sigs.k8s.io/cri-tools")


@dataclass(frozen=True)
class NodeBinaries:
    """Where the node's binaries are: one directory per wrapper, keyed by version."""

    kube_dir: Path
    runtime_dir: Path

    def path(self, name: str) -> Path:
        return (self.kube_dir if name in KUBE_TOOLS else self.runtime_dir) / name

    @property
    def kubelet(self) -> Path:
        return self.path("kubelet")

    @property
    def kube_scheduler(self) -> Path:
        return self.path("kube-scheduler")

    @property
    def containerd(self) -> Path:
        return self.path("containerd")

    @property
    def ctr(self) -> Path:
        return self.path("ctr")

    @property
    def crictl(self) -> Path:
        return self.path("crictl")

    def complete(self, names: tuple[str, ...] = KUBE_TOOLS + RUNTIME_TOOLS) -> bool:
        return all(os.access(self.path(n), os.X_OK) for n in names)


def node_binaries() -> NodeBinaries:
    go = go_version()
    root = cache_root() / "node"
    return NodeBinaries(
        kube_dir=root / f"k8s-{kubernetes_version()}_{go}" / "bin",
        runtime_dir=root
        / f"containerd-{containerd_version()}_crictl-{crictl_version()}_{go}"
        / "bin",
    )


def _build_into(
    target: Path, names: tuple[str, ...], steps: list[tuple[list[str], Path, str]]
) -> None:
    """Run the go commands into a staging dir, then move it into place in one rename."""
    with build_lock(target.parent):
        if all(os.access(target / n, os.X_OK) for n in names):
            return
        staging = target.parent / "bin.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = target.parent / "build.log"
        for args, module, what in steps:
            run_go(
                [a.replace("{out}", str(staging)) for a in args], module, BUILD_TIMEOUT_S, what, log
            )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        if not all(os.access(target / n, os.X_OK) for n in names):
            raise DevkitError(
                f"the build finished but {target} lacks one of {', '.join(names)}; log {log}"
            )


def build() -> NodeBinaries:
    """Build whatever of the node's binaries the cache lacks."""
    bins = node_binaries()
    if not bins.complete(KUBE_TOOLS):
        k8s = kubernetes_version()
        print(
            f"==> building kubelet and kube-scheduler {k8s} (cold: ~5 min on 2 cores)", flush=True
        )
        _build_into(
            bins.kube_dir,
            KUBE_TOOLS,
            [
                (
                    [
                        "build",
                        "-trimpath",
                        "-ldflags",
                        _version_ldflags(k8s),
                        "-o",
                        "{out}/",
                        "k8s.io/kubernetes/cmd/kubelet",
                        "k8s.io/kubernetes/cmd/kube-scheduler",
                    ],
                    KUBE_MODULE,
                    "build kubelet and kube-scheduler",
                ),
            ],
        )
    if not bins.complete(RUNTIME_TOOLS):
        version = containerd_version()
        print(f"==> building containerd {version} and crictl {crictl_version()}", flush=True)
        containerd_flags = f"-s -w -X github.com/containerd/containerd/v2/version.Version={version}"
        crictl_flags = f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={crictl_version()}"
        _build_into(
            bins.runtime_dir,
            RUNTIME_TOOLS,
            [
                (
                    ["mod", "download", "github.com/containerd/containerd/v2"],
                    CONTAINERD_MODULE,
                    "reach the Go module proxy",
                ),
                (
                    [
                        "build",
                        "-trimpath",
                        "-tags",
                        CONTAINERD_TAGS,
                        "-ldflags",
                        containerd_flags,
                        "-o",
                        "{out}/",
                        "github.com/containerd/containerd/v2/cmd/containerd",
                        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                        "github.com/containerd/containerd/v2/cmd/ctr",
                    ],
                    CONTAINERD_MODULE,
                    "build containerd, containerd-shim-runc-v2 and ctr",
                ),
                (
                    [
                        "build",
                        "-trimpath",
                        "-ldflags",
                        crictl_flags,
                        "-o",
                        "{out}/crictl",
                        "sigs.k8s.io/cri-tools/cmd/crictl",
                    ],
                    CRICTL_MODULE,
                    "build crictl",
                ),
            ],
        )
    return bins


def ensure_node_binaries() -> NodeBinaries:
    bins = node_binaries()
    return bins if bins.complete() else build()
