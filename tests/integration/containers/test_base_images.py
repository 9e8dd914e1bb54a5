"""The locally made base image runs Python, and pip in it trusts the host's added CAs."""

from __future__ import annotations

import pytest

from jobqueue_devkit import docker_engine

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def run_in(image: str, script: str) -> str:
    out = docker_engine.docker("run", "--rm", image, "sh", "-c", script, timeout_s=180)
    return out.stdout.decode()


def test_base_image_runs_debian_python(docker_base_image: str) -> None:
    out = run_in(docker_base_image, "python3 --version; python --version; command -v python3")
    words = out.split()
    assert words[0] == "Python", out
    assert words[1].startswith("3.11."), out
    assert words[2:4] == ["Python", words[1]], out
    assert out.strip().endswith("/usr/bin/python3"), out


def test_pip_in_base_image_reaches_the_package_index(docker_base_image: str) -> None:
    # A download over HTTPS fails with CERTIFICATE_VERIFY_FAILED unless the image
    # trusts the CA that re-signs the index's traffic on these machines.
    out = run_in(
        docker_base_image,
        "python3 -m pip download --no-deps --disable-pip-version-check -q -d /tmp/d six"
        " && ls /tmp/d",
    )
    assert out.strip().startswith("six-"), out
    assert out.strip().endswith(".whl"), out
