"""`python -m jobqueue_devkit`: the development commands behind the Makefile.

build         build (or find cached) kube-apiserver, kube-controller-manager, etcd
build-node    install runc and the CNI plugins; build kubelet, kube-scheduler, containerd, crictl
helm          build (or find cached) the helm CLI; prints its path
keda          build (or find cached) the real KEDA operator and metrics adapter
cluster up    start a local control plane in the background; print its kubeconfig
              (--keda: with the aggregation layer, the HPA controller and real KEDA)
              (--node real: with a real node: kubelet, containerd, a Pod bridge)
cluster down  stop it and remove every file it wrote
redis         run a Redis server in the foreground on a free port (Ctrl-C stops it)
docker up     start a Docker engine unless one answers; build the local base images
docker down   stop the engine if `docker up` started it
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jobqueue_devkit import (
    base_images,
    binaries,
    controlplane,
    debian_packages,
    docker_engine,
    helm_binary,
    keda_binaries,
    kubelet,
    node_binaries,
    realnode,
)
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.keda_stack import KedaStack
from jobqueue_devkit.redis_server import RedisServer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
cluster = typer.Typer(add_completion=False, no_args_is_help=True, help="The local control plane.")
app.add_typer(cluster, name="cluster")
docker = typer.Typer(add_completion=False, no_args_is_help=True, help="The Docker engine.")
app.add_typer(docker, name="docker")
console = Console(stderr=True)

DEFAULT_DIR = controlplane.REPO_ROOT / ".cluster"
DirOption = Annotated[Path, typer.Option("--dir", help="Where the plane keeps its files.")]


@app.command()
def build() -> None:
    """Build the control-plane binaries unless they are cached."""
    started = time.monotonic()
    cached = binaries.cached_binaries()
    if cached is not None:
        console.print(f"control-plane binaries cached in {cached.directory}")
        return
    bins = binaries.build()
    console.print(f"built into {bins.directory} in {time.monotonic() - started:.0f}s")


@app.command("build-node")
def build_node(
    optional: Annotated[
        bool, typer.Option(help="Say why in one line and exit 0 when they cannot be had.")
    ] = False,
) -> None:
    """Install runc and the CNI plugins; build the real node's binaries unless cached."""
    try:
        _build_node()
    except DevkitError as exc:
        if not optional:
            raise
        console.print(f"real node unavailable, its tests will be skipped: {exc}")


def _build_node() -> None:
    installed = debian_packages.ensure_packages(NODE_PACKAGES)
    if installed:
        console.print(f"installed {' '.join(installed)}")
    started = time.monotonic()
    bins = node_binaries.node_binaries()
    if bins.complete():
        console.print(f"node binaries cached in {bins.kube_dir.parent.parent}")
        return
    node_binaries.build()
    console.print(f"node binaries built in {time.monotonic() - started:.0f}s")


NODE_PACKAGES = {
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "ip": "iproute2",
    "iptables": "iptables",
    "gcc": "gcc",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
}
NodeOption = Annotated[
    str, typer.Option("--node", help="'real' adds a kubelet, containerd and a Pod bridge.")
]


def _real_node_up(directory: Path) -> None:
    state = controlplane.running_state(directory / "plane")
    if state is not None and (directory / realnode.STATE).exists():
        console.print(f"a local control plane with a real node already runs at {state['server']}")
        print(state["kubeconfig"])
        return
    realnode.stop_from_state(directory)  # leftovers of a crashed node
    why = realnode.node_available()
    if why is not None:
        raise DevkitError(f"a real node cannot start here: {why}")
    started = time.monotonic()
    node = realnode.RealNode(
        binaries.ensure_binaries(), node_binaries.ensure_node_binaries(), workdir=directory
    ).start(crds_dir=controlplane.CRDS_DIR)
    assert node.plane is not None
    console.print(
        f"control plane at {node.plane.server} and node {kubelet.NODE_NAME} Ready in "
        f"{time.monotonic() - started:.1f}s\n"
        f"  export KUBECONFIG={node.kubeconfig}\n"
        f"  Pods reach the host at {node.address} (bind Redis there); images go in with\n"
        "  `docker save IMAGE | ctr --address "
        f"{node.workdir / 'containerd' / 'containerd.sock'} -n k8s.io image import -`\n"
        "stop it with `make cluster-down`"
    )
    print(node.kubeconfig)


@app.command()
def helm() -> None:
    """Build the helm CLI unless it is cached; print its path."""
    started = time.monotonic()
    cached = helm_binary.cached_helm()
    if cached is not None:
        console.print(f"helm cached at {cached}")
    else:
        cached = helm_binary.build_helm()
        console.print(f"built {cached} in {time.monotonic() - started:.0f}s")
    print(cached)


@app.command()
def keda(
    status: Annotated[
        bool, typer.Option("--status", help="Only say in one line whether it is cached.")
    ] = False,
) -> None:
    """Build the real KEDA operator and metrics adapter unless cached; print their directory."""
    cached = keda_binaries.cached_keda()
    if status:
        console.print(
            f"real KEDA {keda_binaries.KEDA_VERSION} cached in {cached.directory}: its tests run"
            if cached is not None
            else f"real KEDA {keda_binaries.KEDA_VERSION} not built, its tests are skipped "
            "(`make keda` builds it: 10-20 min cold; then `make test-keda`)",
            soft_wrap=True,
        )
        return
    started = time.monotonic()
    if cached is None:
        cached = keda_binaries.build_keda()
        console.print(f"built KEDA into {cached.directory} in {time.monotonic() - started:.0f}s")
    print(cached.directory)


KedaOption = Annotated[
    bool, typer.Option("--keda", help="With the aggregation layer, the HPA controller and KEDA.")
]


@cluster.command("up")
def cluster_up(
    directory: DirOption = DEFAULT_DIR, node: NodeOption = "", with_keda: KedaOption = False
) -> None:
    """Start etcd, kube-apiserver and kube-controller-manager on loopback."""
    directory = directory.resolve()
    if node not in ("", "real"):
        raise DevkitError(f"--node {node!r}: the only node kind is 'real'")
    if node == "real":
        if with_keda:
            raise DevkitError("--keda runs on the loopback plane only, not with --node real")
        _real_node_up(directory)
        return
    if (directory / realnode.STATE).exists():
        raise DevkitError(
            f"a real node runs from {directory}: `make cluster-down` first, "
            "or `make cluster-up NODE=real` to reuse it"
        )
    state = controlplane.running_state(directory)
    if state is not None:
        console.print(f"a local control plane already runs at {state['server']}")
        print(state["kubeconfig"])
        return
    controlplane.stop_from_state(directory)  # leftovers of a crashed plane
    started = time.monotonic()
    plane = controlplane.ControlPlane(
        binaries.ensure_binaries(), workdir=directory, aggregation=with_keda
    ).start()
    if with_keda:
        try:
            KedaStack(plane, keda_binaries.ensure_keda()).start()
        except BaseException:
            plane.stop()
            raise
    console.print(
        f"control plane{' with KEDA' if with_keda else ''} up at {plane.server} "
        f"in {time.monotonic() - started:.1f}s\n"
        f"  export KUBECONFIG={plane.kubeconfig}\n"
        f"  kubectl --kubeconfig {plane.kubeconfig} get namespaces\n"
        "stop it with `make cluster-down`"
    )
    print(plane.kubeconfig)


@cluster.command("down")
def cluster_down(directory: DirOption = DEFAULT_DIR) -> None:
    """Stop the local control plane (and a real node) and delete its files."""
    directory = directory.resolve()
    stopped = realnode.stop_from_state(directory) if (directory / realnode.STATE).exists() else []
    stopped += controlplane.stop_from_state(directory)
    console.print(
        f"stopped {', '.join(stopped)}" if stopped else "no local control plane was running"
    )


@app.command()
def demo(
    jobs: Annotated[int, typer.Option(help="How many jobs to enqueue in the burst.")] = 3000,
    node: NodeOption = "",
    operator_image: Annotated[
        str, typer.Option(help="--node real: the operator image (built by `make images`).")
    ] = "",
    worker_image: Annotated[
        str, typer.Option(help="--node real: the worker image (built by `make images`).")
    ] = "",
) -> None:
    """The whole loop, live: queue fills, workers scale up, queue drains, workers scale down."""
    if node not in ("", "real"):
        raise DevkitError(f"--node {node!r}: the only node kind is 'real'")
    if node == "real":
        if not (operator_image and worker_image):
            raise DevkitError("--node real needs --operator-image and --worker-image")
        from jobqueue_devkit.demo_realnode import main as run_real_demo

        raise typer.Exit(run_real_demo(jobs, operator_image, worker_image))
    from jobqueue_devkit.demo import main as run_demo

    raise typer.Exit(run_demo(jobs))


@app.command()
def redis(port: Annotated[int, typer.Option(help="0 picks a free port.")] = 0) -> None:
    """Run a Redis server in the foreground until Ctrl-C."""
    server = RedisServer(port=port).start()
    console.print(f"redis-server at {server.url} (Ctrl-C stops it)")
    print(server.url, flush=True)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        signal.sigwait(stop_signals)
    finally:
        server.cleanup()


@docker.command("up")
def docker_up(
    optional: Annotated[
        bool, typer.Option(help="Say why in one line and exit 0 when no engine can start.")
    ] = False,
) -> None:
    """Start dockerd unless an engine answers, then build the local base images once."""
    started = time.monotonic()
    try:
        how = docker_engine.start()
        built = base_images.ensure_base_images()
    except DevkitError as exc:
        if not optional:
            raise
        console.print(f"docker engine unavailable, image tests will be skipped: {exc}")
        return
    console.print(
        f"docker engine {how} at {docker_engine.SOCKET}; base images "
        + (f"built: {', '.join(built)}" if built else "cached")
        + f" ({time.monotonic() - started:.0f}s)"
    )


@docker.command("down")
def docker_down() -> None:
    """Stop the engine if `docker up` started it; anyone else's engine stays up."""
    console.print(f"docker engine: {docker_engine.stop()}")


def main() -> None:
    try:
        app()
    except DevkitError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
