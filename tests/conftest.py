"""Shared fixtures: a real Redis server and a real local Kubernetes control plane.

Both are started once per test run. Every test gets an empty Redis
(`redis_url` flushes it) and, if it asks, a fresh namespace. Under `CI=true`
a service that cannot start fails the run; locally the affected tests are
skipped with the reason, so a laptop without Go can still run the unit tests.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from jobqueue_devkit import base_images, binaries, docker_engine, node_binaries, realnode
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.redis_server import RedisServer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parent.parent


# Tests that share one machine-wide thing run on one xdist worker, one after
# another: the Docker engine and its image builds with the real node's bridge and
# kubelet; real KEDA (its operator and adapter listen on fixed ports). Every other
# test may run beside them, each worker with its own Redis and control plane.
_GROUP_BY_FIXTURE = {
    "docker_base_image": "machine-wide",
    "real_node": "machine-wide",
    "project_images": "machine-wide",
    "real_keda": "keda",
}
_GROUP_BY_MARK = {"docker": "machine-wide", "realnode": "machine-wide", "keda": "keda"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        groups = {
            _GROUP_BY_FIXTURE[f]
            for f in getattr(item, "fixturenames", ())
            if f in _GROUP_BY_FIXTURE
        }
        groups |= {_GROUP_BY_MARK[m.name] for m in item.iter_markers() if m.name in _GROUP_BY_MARK}
        if groups:
            # A test needing both kinds of thing joins the machine-wide group.
            item.add_marker(pytest.mark.xdist_group(min(groups, key=lambda g: g != "machine-wide")))


def _unavailable(service: str, exc: Exception) -> None:
    message = f"{service} unavailable: {exc}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run, AOF on, noeviction, loopback only."""
    server = RedisServer()
    try:
        server.start()
    except DevkitError as exc:
        _unavailable("Redis", exc)
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, emptied first so no test sees another's keys.

    A chaos test may have stopped the server; bring it back before flushing.
    """
    if redis_server.process is None or not redis_server.process.alive():
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager, with crds/ installed."""
    try:
        plane = ControlPlane(binaries.ensure_binaries()).start(REPO_ROOT / "crds")
    except DevkitError as exc:
        _unavailable("the local Kubernetes control plane", exc)
    yield plane
    plane.stop()


@pytest.fixture
def kubeconfig(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The admin kubeconfig, also exported as KUBECONFIG for kubectl and clients."""
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    return control_plane.kubeconfig


@pytest.fixture
def namespace(control_plane: ControlPlane, kubeconfig: Path) -> Iterator[str]:
    """A fresh namespace per test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def docker_base_image() -> Iterator[str]:
    """A Docker engine with the local Python base image; its name.

    Machines without a usable engine skip the image tests with the reason,
    also under CI: the engine is an optional tier. An engine this fixture
    started is stopped at the end; one that was already running stays.
    """
    try:
        how = docker_engine.start()
        base_images.ensure_base_images()
    except DevkitError as exc:
        pytest.skip(f"docker engine unavailable: {exc}")
    yield base_images.PYTHON_IMAGE
    if how == "started":
        docker_engine.stop()


@pytest.fixture(scope="session")
def real_node(docker_base_image: str) -> Iterator[realnode.RealNode]:
    """A second control plane with a real node: kubelet, containerd, a Pod bridge.

    Separate from `control_plane`, so the tests that never ask for it keep their
    plane (and its timing) exactly as before. A machine that cannot run a node
    (not root, no engine) skips with the reason; a node that fails to start
    fails the run under CI like the other services.
    """
    why = realnode.node_available()
    if why is not None:
        pytest.skip(f"real node unavailable: {why}")
    try:
        node = realnode.RealNode(binaries.ensure_binaries(), node_binaries.ensure_node_binaries())
        node.start(owner_pid=os.getpid(), crds_dir=REPO_ROOT / "crds")
    except DevkitError as exc:
        _unavailable("the real node", exc)
    yield node
    node.stop()


@dataclass(frozen=True)
class ProjectImages:
    """The project's two images, built by `make images` on the local base."""

    worker: str
    operator: str


@pytest.fixture(scope="session")
def project_images(
    docker_base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> ProjectImages:
    """Both images, built exactly as `make images` builds them (the layer cache keeps a
    rebuild of unchanged sources to seconds). A failed build fails the tests that need it."""
    version = tomllib.loads((REPO_ROOT / "operator" / "pyproject.toml").read_text())["project"][
        "version"
    ]
    log = tmp_path_factory.mktemp("images") / "make-images.log"
    with log.open("wb") as out:
        built = subprocess.run(
            ["make", "--no-print-directory", "images", f"PYTHON_IMAGE={docker_base_image}"],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    if built.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        pytest.fail(f"`make images` failed (exit {built.returncode}):\n{tail}", pytrace=False)
    return ProjectImages(
        worker=f"jobqueue-worker:{version}", operator=f"jobqueue-operator:{version}"
    )
