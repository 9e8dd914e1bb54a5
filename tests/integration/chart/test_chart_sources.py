"""The chart ships copies of files kept elsewhere; `make chart-sync` refreshes them.

Helm installs only files inside the chart, so the CRDs and the alert rules are
copied in. These checks fail as soon as an original changes without its copy.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from chart_harness import CHART, ROOT

COPIES = [
    (ROOT / "crds" / "jobqueues.yaml", CHART / "crds" / "jobqueues.yaml"),
    (ROOT / "manifests" / "admission" / "policy.yaml", CHART / "files" / "admission-policy.yaml"),
    (
        ROOT / "manifests" / "admission" / "deprecations.yaml",
        CHART / "files" / "admission-deprecations.yaml",
    ),
    (
        ROOT / "manifests" / "monitoring" / "prometheusrule.yaml",
        CHART / "files" / "prometheusrule.yaml",
    ),
]


@pytest.mark.parametrize(("original", "copy"), COPIES, ids=lambda p: p.name)
def test_copy_is_byte_identical(original: Path, copy: Path) -> None:
    assert original.read_bytes() == copy.read_bytes(), (
        f"{copy} differs from {original}: run `make chart-sync`"
    )


def test_chart_crds_are_exactly_the_copies() -> None:
    shipped = {p.name for p in (CHART / "crds").iterdir()}
    assert shipped == {"jobqueues.yaml"}


def test_app_version_is_the_project_version() -> None:
    """The images are tagged with the project version; the chart's default tag is appVersion."""
    project = tomllib.loads((ROOT / "operator" / "pyproject.toml").read_text())["project"][
        "version"
    ]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == project
