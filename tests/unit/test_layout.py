"""The repository layout rules that are easy to break by accident."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_operator_folder_is_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()


def test_import_operator_is_the_standard_library_from_the_repo_root() -> None:
    stdlib = sysconfig.get_paths()["stdlib"]
    for flags in ([], ["-S"]):
        out = subprocess.run(
            [sys.executable, *flags, "-c", "import operator; print(operator.__file__)"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        assert out.startswith(stdlib), out


def test_wheel_packages_exist_and_none_is_named_operator() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert packages, "the wheel must list its packages"
    for package in packages:
        path = REPO / package
        assert (path / "__init__.py").is_file(), package
        assert path.name != "operator"
    assert not any("devkit" in p for p in packages), "development tools never ship"


def test_console_scripts_point_at_shipped_packages() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = {
        Path(p).name for p in config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    }
    for target in config["project"]["scripts"].values():
        assert target.split(":", 1)[0].split(".", 1)[0] in shipped, target
