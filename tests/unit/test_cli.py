"""The `jobqueue` console script composes the worker's commands with health and simulate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from jobqueue_cli import app


def test_jobqueue_lists_worker_health_and_simulate() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("worker", "enqueue", "stats", "dlq", "health", "simulate"):
        assert command in result.output, command
    for option in ("--version", "--debug", "--install-completion"):
        assert option in result.output, option


def test_installed_console_script_is_the_composed_one() -> None:
    script = shutil.which("jobqueue", path=str(Path(sys.executable).parent))
    assert script is not None, "run `make install`: the jobqueue console script is missing"
    out = subprocess.run(
        [script, "simulate", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "--trace" in out.stdout
    assert "Usage: jobqueue simulate" in out.stdout


def test_the_simulator_is_imported_only_when_simulate_runs() -> None:
    code = (
        "import sys, jobqueue_cli\n"
        "from typer.testing import CliRunner\n"
        "assert CliRunner().invoke(jobqueue_cli.app, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if 'simulator' in m or m.startswith('kopf')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_command_is_registered_twice() -> None:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    assert len(names) == len(set(names)), sorted(names)
