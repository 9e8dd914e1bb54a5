"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

This is what controller-runtime's envtest does, plus the controller manager so
Deployments get ReplicaSets and Pods. There is no scheduler and no kubelet: Pods
stay Pending unless the development pod runner binds and runs them.

The plane writes everything it owns (certificates, etcd data, logs, the admin
kubeconfig, a state file with the pids) under one work directory, so
`stop()` — or `cluster down` from another process — can remove every trace.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from jobqueue_devkit.aggregation_pki import FRONT_PROXY_CLIENT, make_front_proxy_pki
from jobqueue_devkit.binaries import ControlPlaneBinaries, kubernetes_version
from jobqueue_devkit.certs import Pki, make_pki
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.procs import ManagedProcess, pid_alive, terminate_group

HOST = "127.0.0.1"
CONTEXT = "jobqueue-local"
START_TIMEOUT_S = 90.0
CRD_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "garbage-collector-controller",
    "namespace-controller",
)
# A real node also needs Nodes marked Ready (and its taint lifted), the `default`
# ServiceAccount in every namespace, and Pod tokens with the cluster CA beside them.
NODE_CONTROLLERS = (
    "node-lifecycle-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)
# With the aggregation layer (real KEDA beside us): the HPA controller too, syncing
# every 5 s instead of 15 s so a test sees its decisions in seconds.
AGGREGATION_CONTROLLERS = ("horizontal-pod-autoscaler-controller",)
HPA_SYNC_PERIOD_S = 5
REPO_ROOT = Path(__file__).resolve().parents[3]
CRDS_DIR = REPO_ROOT / "crds"


def _get(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s, context=context) as resp:
        body: bytes = resp.read()
        return body


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class NodeAccess:
    """What a real node beside the plane needs from it.

    Pods cannot reach the host's loopback, so the API server binds on the
    address the host holds on the Pods' bridge instead, and a scheduler runs.
    """

    address: str
    scheduler: Path


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager owned by this object."""

    binaries: ControlPlaneBinaries
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-k8s-")))
    processes: list[ManagedProcess] = field(default_factory=list)
    apiserver_port: int = 0
    pki: Pki | None = None
    node_access: NodeAccess | None = None
    #: Serve aggregated APIs (external.metrics.k8s.io from KEDA's adapter) and run
    #: the HPA controller. Off by default: every other test keeps HPAs inert.
    aggregation: bool = False
    #: The HPA controller's sync period (aggregation only); Kubernetes' default is 15 s.
    hpa_sync_period_s: int = HPA_SYNC_PERIOD_S

    @property
    def host(self) -> str:
        return self.node_access.address if self.node_access else HOST

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    # ------------------------------------------------------------------ start
    def start(self, crds_dir: Path | None = CRDS_DIR) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            hosts = (HOST, "localhost") + ((self.host,) if self.node_access else ())
            self.pki = make_pki(self.workdir / "pki", hosts)
            etcd_url = self._start_with_retries(self._start_etcd)
            self._start_with_retries(lambda: self._start_apiserver(etcd_url))
            self._write_kubeconfig()
            self._start_with_retries(self._start_controller_manager)
            if self.node_access is not None:
                self._start_with_retries(self._start_scheduler)
            self._write_state()
            if crds_dir is not None:
                self.install_crds(crds_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_with_retries(self, starter: Callable[[], str]) -> str:
        """Retry a start on a port clash: a free port can be taken before we bind it."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                return starter()
            except DevkitError:
                proc = self.processes.pop()
                proc.stop(grace_s=2)
                if not proc.port_clash() or attempt == PORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log", env=env)
        proc.start()
        self.processes.append(proc)
        return proc

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://{HOST}:{client}", f"http://{HOST}:{peer}"
        proc = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=jobqueue",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=jobqueue={peer_url}",
                # Test data is disposable; fsync would only slow every write.
                "--unsafe-no-fsync=true",
                "--auto-compaction-retention=1",
                "--log-level=warn",
            ],
        )
        proc.wait_ready(lambda: b"true" in _get(f"{client_url}/health"), START_TIMEOUT_S, "healthy")
        return client_url

    def _start_apiserver(self, etcd_url: str) -> str:
        assert self.pki is not None
        self.apiserver_port = free_port(self.host)
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={self.pki.serving_cert}",
                f"--tls-private-key-file={self.pki.serving_key}",
                f"--cert-dir={self.workdir / 'apiserver'}",
                f"--client-ca-file={self.pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.server}/",
                f"--service-account-key-file={self.pki.sa_pub}",
                f"--service-account-signing-key-file={self.pki.sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                # A loopback address is not a valid Endpoints address; nothing needs it.
                "--endpoint-reconciler-type=none",
                *self._apiserver_node_flags(),
                *self._aggregation_flags(),
            ],
        )
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        proc.wait_ready(
            lambda: _get(f"{self.server}/readyz", ctx) == b"ok", START_TIMEOUT_S, "ready (/readyz)"
        )
        return self.server

    def _apiserver_node_flags(self) -> list[str]:
        assert self.pki is not None
        if self.node_access is None:
            # No controller creates `default` ServiceAccounts (as in envtest).
            return ["--disable-admission-plugins=ServiceAccount"]
        return [
            f"--kubelet-client-certificate={self.pki.kubelet_client_cert}",
            f"--kubelet-client-key={self.pki.kubelet_client_key}",
            # There is no DNS for node names here.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def _aggregation_flags(self) -> list[str]:
        """The front proxy: the API server's identity towards aggregated API servers.

        Aggregator routing stays off, so an APIService backed by an ExternalName
        Service to localhost reaches a host process (Endpoints may not hold loopback).
        """
        if not self.aggregation:
            return []
        pki = make_front_proxy_pki(self.workdir / "pki" / "front-proxy")
        return [
            f"--requestheader-client-ca-file={pki.ca_cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={pki.client_cert}",
            f"--proxy-client-key-file={pki.client_key}",
            "--enable-aggregator-routing=false",
        ]

    def _start_scheduler(self) -> str:
        assert self.node_access is not None
        port = free_port()
        kubeconfig = str(self.kubeconfig)
        proc = self._spawn(
            "kube-scheduler",
            [
                str(self.node_access.scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--bind-address={HOST}",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'scheduler'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez",
            ],
        )
        url = f"https://{HOST}:{port}/healthz"
        proc.wait_ready(lambda: _get(url, _insecure()) == b"ok", START_TIMEOUT_S, "healthy")
        return url

    def _start_controller_manager(self) -> str:
        port = free_port()
        kubeconfig = str(self.kubeconfig)
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                *self._controller_flags(),
                "--leader-elect=false",
                f"--bind-address={HOST}",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'controller-manager'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez",
                "--use-service-account-credentials=false",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
            ],
        )
        url = f"https://{HOST}:{port}/healthz"
        proc.wait_ready(lambda: _get(url, _insecure()) == b"ok", START_TIMEOUT_S, "healthy")
        return url

    def _controller_flags(self) -> list[str]:
        assert self.pki is not None
        controllers: tuple[str, ...] = CONTROLLERS
        hpa: list[str] = []
        if self.aggregation:
            controllers += AGGREGATION_CONTROLLERS
            hpa = [f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync_period_s}s"]
        if self.node_access is None:
            return [f"--controllers={','.join(controllers)}", *hpa]
        return [
            *hpa,
            f"--controllers={','.join(controllers + NODE_CONTROLLERS)}",
            f"--service-account-private-key-file={self.pki.sa_key}",
            f"--root-ca-file={self.pki.ca_cert}",
        ]

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(self.pki.admin_cert),
                        "client-key-data": b64(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
            "current-context": CONTEXT,
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _write_state(self) -> None:
        state = {
            "kubernetes": kubernetes_version(),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "pids": {p.name: p.pid for p in self.processes},
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    # ------------------------------------------------------------------ CRDs
    def kubectl(self, *args: str, timeout_s: float = 60.0) -> str:
        try:
            out = subprocess.run(
                ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except FileNotFoundError as exc:
            raise DevkitError("kubectl not found on PATH: install kubectl 1.30 or newer") from exc
        except subprocess.TimeoutExpired as exc:
            raise DevkitError(f"kubectl {' '.join(args)} hung for {timeout_s:.0f}s") from exc
        if out.returncode != 0:
            raise DevkitError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def install_crds(self, crds_dir: Path = CRDS_DIR) -> None:
        """Apply every CRD and wait until each is Established and discoverable."""
        files = sorted(p for p in crds_dir.glob("*.yaml") if p.name != "kustomization.yaml")
        if not files:
            return
        for path in files:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        self.wait_crds_established()
        names = [n for n in self.kubectl("get", "crd", "-o", "name").split() if n]
        plurals = [n.split("/", 1)[1] for n in names]
        deadline = time.monotonic() + CRD_TIMEOUT_S
        while True:
            resources = set(self.kubectl("api-resources", "-o", "name").split())
            if all(p in resources for p in plurals):
                return
            if time.monotonic() > deadline:
                missing = [p for p in plurals if p not in resources]
                raise DevkitError(f"CRDs not discoverable after {CRD_TIMEOUT_S:.0f}s: {missing}")
            time.sleep(0.2)

    def wait_crds_established(self, timeout_s: float = CRD_TIMEOUT_S) -> None:
        """Until every CRD reports Established.

        Not ``kubectl wait``: it fails at once, instead of waiting, on a CRD that has
        no status yet, which one applied a moment before can have on a busy machine.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            # JSON, not a jsonpath filter: the filter errors out on a CRD without status.
            items = json.loads(self.kubectl("get", "crd", "-o", "json")).get("items", [])
            pending = [
                str(item.get("metadata", {}).get("name"))
                for item in items
                if not any(
                    c.get("type") == "Established" and c.get("status") == "True"
                    for c in (item.get("status") or {}).get("conditions") or []
                )
            ]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise DevkitError(f"CRDs not Established within {timeout_s:.0f}s: {pending}")
            time.sleep(0.2)

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Stop in reverse order (controllers first, etcd last), then delete the work dir."""
        for proc in reversed(self.processes):
            proc.stop(grace_s=10)
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def stop_from_state(workdir: Path) -> list[str]:
    """`cluster down` from another process: kill what state.json names, remove the dir."""
    state_file = workdir / "state.json"
    stopped: list[str] = []
    if state_file.exists():
        pids: dict[str, int] = json.loads(state_file.read_text()).get("pids", {})
        for name, pid in reversed(list(pids.items())):
            if pid_alive(pid):
                terminate_group(pid, grace_s=10)
                stopped.append(name)
    shutil.rmtree(workdir, ignore_errors=True)
    return stopped


def running_state(workdir: Path) -> dict[str, object] | None:
    """The state of a control plane started earlier in `workdir`, if all of it still runs."""
    state_file = workdir / "state.json"
    if not state_file.exists():
        return None
    state: dict[str, object] = json.loads(state_file.read_text())
    pids = state.get("pids")
    if isinstance(pids, dict) and pids and all(pid_alive(int(p)) for p in pids.values()):
        return state
    return None
