"""`make cluster-up` and `cluster-down` via the CLI they call: kubectl works, nothing is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobqueue_devkit import binaries
from jobqueue_devkit.procs import pid_alive

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.k8s


def devkit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "devkit")}
    return subprocess.run(
        [sys.executable, "-m", "jobqueue_devkit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cluster_up_prints_a_kubeconfig_kubectl_uses_and_down_leaves_nothing(
    tmp_path: Path,
) -> None:
    binaries.ensure_binaries()
    workdir = tmp_path / "plane"
    up = devkit("cluster", "up", "--dir", str(workdir))
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().splitlines()[-1]
    assert Path(kubeconfig).is_file()
    pids = json.loads((workdir / "state.json").read_text())["pids"]
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    try:
        namespaces = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "namespaces", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        assert "namespace/kube-system" in namespaces

        again = devkit("cluster", "up", "--dir", str(workdir))  # idempotent
        assert again.returncode == 0
        assert again.stdout.strip().splitlines()[-1] == kubeconfig
    finally:
        down = devkit("cluster", "down", "--dir", str(workdir))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stderr
    assert not workdir.exists()
    assert not any(pid_alive(pid) for pid in pids.values())
