"""Image names as containerd and the kubelet spell them, so imports match Pod specs."""

from __future__ import annotations

import pytest

from jobqueue_devkit.node_runtime import containerd_name


@pytest.mark.parametrize(
    ("docker_name", "expected"),
    [
        ("jobqueue-worker:0.1.0", "docker.io/library/jobqueue-worker:0.1.0"),
        ("local/python:3.11-bookworm", "docker.io/local/python:3.11-bookworm"),
        ("local/pause:3.10", "docker.io/local/pause:3.10"),
        ("registry.example:5000/team/app:1", "registry.example:5000/team/app:1"),
        ("ghcr.io/org/app:2", "ghcr.io/org/app:2"),
        ("localhost/app:3", "localhost/app:3"),
    ],
)
def test_containerd_name(docker_name: str, expected: str) -> None:
    assert containerd_name(docker_name) == expected
