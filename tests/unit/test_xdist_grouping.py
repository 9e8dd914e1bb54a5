"""`make pytest` relies on xdist's loadgroup: tests marked with one `xdist_group` share a worker.

The real-node, Docker and KEDA tests depend on it (one bridge, one engine, fixed
ports per machine). pytest 9.2 with pytest-xdist 3.8 silently stopped grouping;
this runs the installed pair on a throwaway suite and fails if they drift apart again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SUITE = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("n", range(6))
def test_record_worker(n):
    with open(os.environ["WORKERS_FILE"], "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_one_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's addopts
    workers = tmp_path / "workers.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        cwd=tmp_path,
        env={"WORKERS_FILE": str(workers), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    seen = workers.read_text().split()
    assert len(seen) == 6, seen
    assert len(set(seen)) == 1, f"one xdist_group ran on several workers: {sorted(set(seen))}"
