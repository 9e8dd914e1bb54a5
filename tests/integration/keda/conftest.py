"""Real KEDA beside its own control plane: the `real_keda` fixture and a scaler process.

KEDA's build takes 10-20 minutes cold, so these tests run only when `make keda`
has cached it: otherwise they are skipped with one line saying how to build it.
The plane here has the aggregation layer and the HPA controller, which the
run-wide plane keeps off (an HPA there would fight every other test's scaling).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue_devkit import binaries, keda_binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.keda_stack import KedaStack, start_keda_scaler

# --import-mode=importlib puts no test folder on sys.path: this one's helpers, and the
# operator tests' (kubectl, Deployments, JobQueues, waiting), serve here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))
from keda_harness import ScalerProcess

ROOT = Path(__file__).resolve().parents[3]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def real_keda() -> Iterator[KedaStack]:
    """etcd, kube-apiserver (aggregation layer), KCM (HPA controller), KEDA operator + adapter."""
    bins = keda_binaries.cached_keda()
    if bins is None:
        pytest.skip(
            f"real KEDA {keda_binaries.KEDA_VERSION} is not built: `make keda` builds it "
            "(10-20 min cold), then `make test-keda`"
        )
    plane = ControlPlane(binaries.ensure_binaries(), aggregation=True)
    try:
        plane.start(ROOT / "crds")
        stack = KedaStack(plane, bins).start()
    except DevkitError as exc:
        plane.stop()
        message = f"real KEDA could not start: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield stack
    plane.stop()


@pytest.fixture
def keda_namespace(real_keda: KedaStack) -> Iterator[str]:
    name = f"k-{os.urandom(4).hex()}"
    real_keda.plane.kubectl("create", "namespace", name)
    yield name
    real_keda.plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture
def keda_scaler(redis_url: str, tmp_path: Path) -> Iterator[ScalerProcess]:
    log = tmp_path / "keda-scaler.log"
    scaler = start_keda_scaler(redis_url, log)
    assert scaler.process.popen is not None
    yield ScalerProcess(scaler.process.popen, scaler.port, log)
    scaler.stop(grace_s=15)
    print("--- keda-scaler log (last 20 lines)")
    print("\n".join(log.read_text(errors="replace").splitlines()[-20:]))
