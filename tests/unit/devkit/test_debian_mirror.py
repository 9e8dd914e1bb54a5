"""The base image's mirror comes from the host's apt sources, never a hard-coded host."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue_devkit.base_images import debian_mirror
from jobqueue_devkit.errors import DevkitError

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
"""


@pytest.mark.parametrize(
    ("deb822", "legacy", "expected"),
    [
        (DEB822, None, "http://mirror.example/debian"),
        (None, "deb http://old.example/debian bookworm main\n", "http://old.example/debian"),
        (
            "Types: deb\nURIs: http://x/debian-security\nSuites: bookworm-security\n",
            "# deb http://commented/debian bookworm main\ndeb http://legacy/debian bookworm main\n",
            "http://legacy/debian",
        ),
    ],
)
def test_mirror_of_the_main_suite(
    tmp_path: Path, deb822: str | None, legacy: str | None, expected: str
) -> None:
    sources, old = tmp_path / "debian.sources", tmp_path / "sources.list"
    if deb822 is not None:
        sources.write_text(deb822)
    if legacy is not None:
        old.write_text(legacy)
    assert debian_mirror(sources, old) == expected


def test_no_mirror_is_one_line_naming_both_files(tmp_path: Path) -> None:
    with pytest.raises(DevkitError, match=r"no Debian mirror for bookworm in .*debian.sources"):
        debian_mirror(tmp_path / "debian.sources", tmp_path / "sources.list")
