"""The repository layout rules that are easy to break by accident."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

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


DISTRIBUTIONS = ("worker-image/protocol", "worker-image", "operator")


def _project(folder: str) -> dict[str, Any]:
    return tomllib.loads((REPO / folder / "pyproject.toml").read_text())


def _packages(folder: str) -> list[str]:
    packages: list[str] = _project(folder)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def test_wheel_packages_exist_and_none_is_named_operator() -> None:
    for folder in DISTRIBUTIONS:
        packages = _packages(folder)
        assert packages, f"{folder}: the wheel must list its packages"
        for package in packages:
            path = REPO / folder / package
            assert (path / "__init__.py").is_file(), f"{folder}: {package}"
            assert path.name != "operator"
            assert "devkit" not in package, "development tools never ship"


def test_every_package_ships_in_exactly_one_distribution() -> None:
    names = [Path(p).name for folder in DISTRIBUTIONS for p in _packages(folder)]
    assert len(names) == len(set(names)), names
    on_disk = {
        p.parent.name
        for folder in DISTRIBUTIONS
        for p in (REPO / folder).glob("*/__init__.py")
        if p.parent.name.startswith("jobqueue_")
    }
    assert on_disk == set(names), "a package folder that no wheel declares never reaches a user"


def test_console_scripts_point_at_shipped_packages() -> None:
    for folder in DISTRIBUTIONS:
        shipped = {Path(p).name for p in _packages(folder)}
        for target in _project(folder)["project"].get("scripts", {}).values():
            assert target.split(":", 1)[0].split(".", 1)[0] in shipped, (folder, target)


def test_one_version_everywhere() -> None:
    """The three distributions, their pins on the protocol, the CHANGELOG and the chart."""
    versions = {folder: _project(folder)["project"]["version"] for folder in DISTRIBUTIONS}
    (version,) = set(versions.values())
    for folder in DISTRIBUTIONS:
        for requirement in _project(folder)["project"]["dependencies"]:
            if requirement.startswith("jobqueue-"):
                assert requirement.endswith(f"=={version}"), (folder, requirement)
    changelog = (REPO / "CHANGELOG.md").read_text()
    first = re.search(r"^## \[?(\d+\.\d+\.\d+)", changelog, re.M)
    assert first is not None, "CHANGELOG.md has no version entry"
    assert first.group(1) == version, "CHANGELOG.md's newest entry"


def test_each_distribution_carries_the_license() -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text
    assert "Version 2.0" in license_text
    for folder in DISTRIBUTIONS:
        project = _project(folder)["project"]
        assert project["license"] == "Apache-2.0", folder
        assert (REPO / folder / "LICENSE").read_text() == license_text, folder


def test_the_worker_distribution_does_not_depend_on_kopf() -> None:
    for folder in ("worker-image/protocol", "worker-image"):
        requirements = " ".join(_project(folder)["project"]["dependencies"]).lower()
        for forbidden in ("kopf", "kubernetes", "matplotlib", "jobqueue-operator"):
            assert forbidden not in requirements, (folder, forbidden)
