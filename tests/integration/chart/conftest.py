"""The helm CLI for the chart's tests, built from the helm.sh/helm/v4 Go module and cached.

Like the control plane, a helm that cannot be built skips these tests locally
and fails them under CI=true.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.helm_binary import ensure_helm

# pytest runs with --import-mode=importlib, which puts no test folder on sys.path;
# the tests here share chart_harness.py, so this folder goes on it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_harness import Helm

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = ensure_helm()
    except DevkitError as exc:
        message = f"helm unavailable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing tool fails the run)", pytrace=False)
        pytest.skip(message)
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))
