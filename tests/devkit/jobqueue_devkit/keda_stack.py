"""Real KEDA (operator + metrics adapter) as processes beside a local control plane.

The plane must run with ``aggregation=True`` (front proxy, HPA controller). The
APIService ``v1beta1.external.metrics.k8s.io`` points at an ExternalName Service
to ``localhost`` with the adapter's port: the API server dials the adapter
directly, with no kube-proxy and no Endpoints (which may not hold loopback).
There is one adapter per cluster, since the APIService is cluster-scoped.

KEDA's own certificate rotation stays off (it waits for a kubelet to mount a
Secret); the certificates come from ``aggregation_pki``. Both processes join
the plane's process list, so stopping the plane (or ``cluster down``) stops them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jobqueue_devkit.aggregation_pki import KEDA_NAMESPACE, KedaCerts, make_keda_certs
from jobqueue_devkit.controlplane import HOST, START_TIMEOUT_S, ControlPlane, _get
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.keda_binaries import KedaBinaries
from jobqueue_devkit.ports import free_port, is_listening
from jobqueue_devkit.procs import ManagedProcess

EXTERNAL_METRICS = "/apis/external.metrics.k8s.io/v1beta1"
APISERVICE = "v1beta1.external.metrics.k8s.io"
ADAPTER_SERVICE = "keda-metrics-apiserver"
SCALER_START_TIMEOUT_S = 60.0


@dataclass
class KedaScaler:
    """`jobqueue-operator keda-scaler` on a loopback port, as KEDA's external trigger dials it."""

    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace_s: float = 15.0) -> None:
        self.process.stop(grace_s)


def start_keda_scaler(redis_url: str, log: Path) -> KedaScaler:
    """Our external scaler (gRPC, plaintext on loopback), reading ``redis_url``; ready to dial."""
    port = free_port()
    argv = [sys.executable, "-m", "jobqueue_operator.cli", "keda-scaler",
            "--listen", f"127.0.0.1:{port}", "--redis-url", redis_url]  # fmt: skip
    proc = ManagedProcess("keda-scaler", argv, log)
    proc.start()
    try:
        proc.wait_ready(lambda: is_listening(port), SCALER_START_TIMEOUT_S, "listening")
    except BaseException:
        proc.stop(grace_s=2)
        raise
    return KedaScaler(proc, port)


@dataclass
class KedaStack:
    """KEDA's two processes on ``plane``; ``start()`` returns once metrics are served."""

    plane: ControlPlane
    binaries: KedaBinaries
    certs: KedaCerts | None = None
    grpc_port: int = 0
    adapter_port: int = 0

    @property
    def workdir(self) -> Path:
        return self.plane.workdir / "keda"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.plane.kubeconfig),
            # All namespaces; the namespace of KEDA's own cluster objects and leases.
            "WATCH_NAMESPACE": "",
            "POD_NAMESPACE": KEDA_NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE,
        }

    def start(self) -> KedaStack:
        if not self.plane.aggregation:
            raise DevkitError("KEDA needs a control plane started with aggregation=True")
        started = time.monotonic()
        self.certs = make_keda_certs(self.workdir / "certs")
        self._install_crds()
        self.plane.kubectl("create", "namespace", KEDA_NAMESPACE)
        self.plane._start_with_retries(self._start_operator)
        self.plane._start_with_retries(self._start_adapter)
        self.plane._write_state()
        self._register_apiservice()
        self._wait_for_external_metrics(deadline=started + START_TIMEOUT_S)
        return self

    def _install_crds(self) -> None:
        """KEDA's six CRDs, applied and Established like the plane's own."""
        self.plane.install_crds(self.binaries.crds)

    def _start_operator(self) -> str:
        self.grpc_port, health = free_port(), free_port()
        proc = self.plane._spawn(
            "keda-operator",
            [
                str(self.binaries.operator),
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--cert-dir={self.workdir / 'certs'}",
                "--enable-cert-rotation=false",
                "--leader-elect=false",
                f"--metrics-bind-address={HOST}:{free_port()}",
                f"--health-probe-bind-address={HOST}:{health}",
                f"--metrics-service-bind-address={HOST}:{self.grpc_port}",
                "--zap-encoder=console",
                "--zap-log-level=info",
            ],
            env=self._env(),
        )
        url = f"http://{HOST}:{health}/healthz"
        proc.wait_ready(lambda: _get(url) == b"ok", START_TIMEOUT_S, "healthy")
        return url

    def _start_adapter(self) -> str:
        assert self.certs is not None
        self.adapter_port = free_port()
        kubeconfig = str(self.plane.kubeconfig)
        proc = self.plane._spawn(
            "keda-adapter",
            [
                str(self.binaries.adapter),
                f"--kubeconfig={kubeconfig}",
                f"--lister-kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--secure-port={self.adapter_port}",
                f"--bind-address={HOST}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={self.certs.cert}",
                f"--tls-private-key-file={self.certs.key}",
                f"--metrics-service-address={HOST}:{self.grpc_port}",
                # A plain-HTTP /metrics listener that binds every interface whatever
                # --bind-address says; a free port keeps it out of everyone's way.
                f"--port={free_port()}",
            ],
            env=self._env(),
        )
        proc.wait_ready(lambda: is_listening(self.adapter_port), START_TIMEOUT_S, "listening")
        return str(self.adapter_port)

    def _register_apiservice(self) -> None:
        assert self.certs is not None
        ca = base64.b64encode(self.certs.ca_cert.read_bytes()).decode()
        objects = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": ADAPTER_SERVICE, "namespace": KEDA_NAMESPACE},
                "spec": {"type": "ExternalName", "externalName": "localhost"},
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "caBundle": ca,
                    "service": {
                        "name": ADAPTER_SERVICE,
                        "namespace": KEDA_NAMESPACE,
                        "port": self.adapter_port,
                    },
                },
            },
        ]
        manifest = self.workdir / "apiservice.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        self.plane.kubectl("apply", "-f", str(manifest))

    def _wait_for_external_metrics(self, deadline: float) -> None:
        """Until the aggregator serves the group (the APIService's status lags the adapter)."""
        last = ""
        while time.monotonic() < deadline:
            try:
                if "externalmetrics" in self.plane.kubectl("get", "--raw", EXTERNAL_METRICS):
                    return
            except DevkitError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise DevkitError(
            f"the external metrics API ({APISERVICE}) was not served within "
            f"{START_TIMEOUT_S:.0f}s: {last}; logs in {self.plane.workdir / 'logs'}"
        )
