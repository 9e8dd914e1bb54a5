"""Run the real operator, with its own ServiceAccount's credentials, against the real plane.

The operator is the ``jobqueue-operator`` console script in a subprocess (so a
test can SIGKILL it and start another), with a kubeconfig holding a token of the
``jobqueue-operator`` ServiceAccount, bound by manifests/rbac to the test's
namespace only. Nothing here mocks Kubernetes or Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.config import kube_config

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.ports import free_port
from jobqueue_operator.kube import Kube

# pytest runs with --import-mode=importlib, which puts no test folder on sys.path;
# the tests here share operator_harness.py, so this folder goes on it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from operator_harness import Kubectl, OperatorProcess

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "manifests" / "rbac"
SA_NAMESPACE = "jobqueue-system"
SA_NAME = "jobqueue-operator"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
# The console script when the project is installed; the module otherwise (same code).
_SCRIPT = Path(sys.executable).with_name("jobqueue-operator")
OPERATOR_CMD = (
    [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "jobqueue_operator.cli"]
)


@pytest.fixture
def kubectl(control_plane: ControlPlane) -> Kubectl:
    return Kubectl(control_plane)


@pytest.fixture(scope="session")
def operator_rbac(control_plane: ControlPlane) -> None:
    """manifests/rbac as shipped: the ServiceAccount and both ClusterRoles."""
    k = Kubectl(control_plane)
    k("apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))
    k("apply", "-f", str(RBAC))


@pytest.fixture
def operator_kubeconfig(
    control_plane: ControlPlane, operator_rbac: None, namespace: str, tmp_path: Path
) -> Path:
    """A kubeconfig with the ServiceAccount's token; its Role bound in ``namespace`` only."""
    k = Kubectl(control_plane)
    binding = yaml.safe_load((ROOT / "manifests" / "examples" / "rolebinding.yaml").read_text())
    binding["metadata"]["namespace"] = namespace
    k.apply(binding)
    # RBAC is eventually consistent: start the operator only once its rights are
    # visible, or kopf meets 403s at start and backs off for minutes.
    needed = [
        ("watch", "jobqueues.jobqueue.dev", "-n", namespace),
        ("watch", "namespaces"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ]
    for check in needed:
        for _ in range(100):
            if k("auth", "can-i", *check, f"--as={SA_USER}", check=False).strip() == "yes":
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the operator's RBAC never allowed {check}")
    token = k("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=2h").strip()
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SA_NAME, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster["name"], "user": SA_NAME}}
        ],
        "current-context": "operator",
    }
    path = tmp_path / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def start_operator(
    control_plane: ControlPlane, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator (as the ServiceAccount, watching ``namespace``); stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(*, lease: str | None = None, verbose: bool = False, **env: str) -> OperatorProcess:
        """``lease=None``: --standalone; else leader election on that Lease in ``namespace``."""
        metrics_port, health_port = free_port(), free_port()
        log = tmp_path / f"operator-{len(started)}.log"
        environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [
                    str(ROOT / "operator"),
                    str(ROOT / "worker-image"),
                    str(ROOT / "worker-image" / "protocol"),
                    os.environ.get("PYTHONPATH", ""),
                ]
            ),
            "KUBECONFIG": str(operator_kubeconfig),
            "JQO_METRICS_PORT": str(metrics_port),
            "JQO_LEASE_NAMESPACE": namespace,
            **env,
        }
        environ.pop("KUBERNETES_SERVICE_HOST", None)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *OPERATOR_CMD,
                    *(["--standalone"] if lease is None else [f"--lease={lease}"]),
                    f"--namespace={namespace}",
                    f"--liveness=http://127.0.0.1:{health_port}/healthz",
                    *(["--verbose"] if verbose else []),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environ,
                start_new_session=True,
            )
        op = OperatorProcess(proc, log, metrics_port, health_port)
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
        print(f"--- operator log {op.log.name} (last 40 lines)")
        print("\n".join(op.output().splitlines()[-40:]))
    # With the operator gone, kopf's finalizer would keep the namespace Terminating
    # forever; drop it the way docs/operator.md tells users to.
    k = Kubectl(control_plane)
    for name in k("get", "jobqueues", "-n", namespace, "-o", "name", check=False).split():
        if name.startswith("jobqueue"):
            k("patch", name, "-n", namespace, "--type=merge",
              "-p", '{"metadata": {"finalizers": null}}', check=False)  # fmt: skip


@pytest.fixture
async def kube(operator_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    """The operator's own Kubernetes adapter, with the operator's credentials."""
    # kubernetes_asyncio read KUBECONFIG when it was imported
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(operator_kubeconfig))
    client = await Kube.connect()
    yield client
    await client.close()
