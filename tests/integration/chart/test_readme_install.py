"""The README's "Install with Helm" commands work word for word.

They run in bash from the repository root against a control plane of their own
(the shared one already holds manifests/' objects under the same names), with the
pinned helm first on PATH. Only the image cannot run here (no kubelet), so the
check stops at what the API server holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator

import pytest
from chart_harness import ROOT, Helm

from jobqueue_devkit import binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.errors import DevkitError

pytestmark = [pytest.mark.helm, pytest.mark.k8s, pytest.mark.slow]


def readme_install_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install with Helm", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block in the README's Install with Helm section"
    return match.group(1)


@pytest.fixture
def own_plane() -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane(binaries.ensure_binaries()).start(crds_dir=None)
    except DevkitError as exc:
        pytest.skip(f"the local Kubernetes control plane is unavailable: {exc}")
    yield plane
    plane.stop()


def test_readme_helm_install_block_runs_word_for_word(helm: Helm, own_plane: ControlPlane) -> None:
    block = readme_install_block()
    assert "helm install jobqueue-operator ./charts/jobqueue-operator" in block
    env = {
        **os.environ,
        "KUBECONFIG": str(own_plane.kubeconfig),
        "PATH": f"{helm.binary.parent}:{os.environ['PATH']}",
        "HELM_CACHE_HOME": str(helm.home / "cache"),
        "HELM_CONFIG_HOME": str(helm.home / "config"),
        "HELM_DATA_HOME": str(helm.home / "data"),
    }
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "STATUS: deployed" in out.stdout
    dep = json.loads(
        own_plane.kubectl(
            "get", "deploy", "jobqueue-operator", "-n", "jobqueue-system", "-o", "json"
        )
    )
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "jobqueue-operator:0.1.0"
    assert "--namespace=jobqueue-demo" in container["args"]
    own_plane.kubectl("get", "rolebinding", "jobqueue-operator", "-n", "jobqueue-demo")
    own_plane.kubectl("get", "role", "jobqueue-operator-own", "-n", "jobqueue-system")
    own_plane.kubectl("get", "configmap", "jobqueue-operator-defaults", "-n", "jobqueue-system")
    own_plane.kubectl("get", "validatingadmissionpolicy", "jobqueue-defaults")
    own_plane.kubectl("get", "pdb", "jobqueue-operator", "-n", "jobqueue-system")
    crds = own_plane.kubectl("get", "crd", "-o", "name").split()
    assert set(crds) >= {
        "customresourcedefinition.apiextensions.k8s.io/jobqueues.jobqueue.dev",
    }
