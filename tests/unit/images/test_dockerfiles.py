"""The two Dockerfiles, checked without a Docker engine (the CI machines have none).

What is checked: every COPY source exists and .dockerignore lets all of it in;
COPY --from names an earlier stage; multi-stage with a slim Python base of the
project's version; the final stage runs as a numeric non-root user, installs no
compiler, sets the Python env flags, has OCI labels and no HEALTHCHECK; the
ENTRYPOINT is a console script of a distribution the image builds, and the image
builds exactly its distributions' wheels (the worker image never the operator's,
the operator image never the worker's); and, where the venv has the scripts, each
runs --help. tests/integration/images builds the wheels from the real context.
The last test feeds bad Dockerfiles to the checks to show each one bites.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dockerfile_checks import (
    Dockerfile,
    DockerIgnore,
    check_base_images,
    check_copy_from,
    check_copy_sources,
    check_entrypoint,
    check_env,
    check_no_compilers,
    check_stages,
    check_user,
    labels,
    parse,
    wheel_sources,
)

REPO = Path(__file__).resolve().parents[3]
PROTOCOL, WORKER, OPERATOR = "worker-image/protocol", "worker-image", "operator"
DISTRIBUTIONS = {
    folder: tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
    for folder in (PROTOCOL, WORKER, OPERATOR)
}
SCRIPTS: dict[str, str] = {
    name: target
    for project in DISTRIBUTIONS.values()
    for name, target in project.get("scripts", {}).items()
}
PYTHON = DISTRIBUTIONS[OPERATOR]["requires-python"].removeprefix(">=")


@dataclass(frozen=True)
class Image:
    dockerfile: str
    script: str  # the console script the ENTRYPOINT must run
    distributions: tuple[str, ...]  # the folders whose wheels the image builds, in order
    command: tuple[str, ...]  # the default CMD after the script (a Pod's args replace it)


IMAGES = [
    Image("operator/Dockerfile", "jobqueue-operator", (PROTOCOL, OPERATOR), ()),
    Image("worker-image/Dockerfile", "jobqueue", (PROTOCOL, WORKER), ("worker",)),
]
IDS = [i.dockerfile for i in IMAGES]


def load(image: Image) -> Dockerfile:
    return parse((REPO / image.dockerfile).read_text())


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    path = REPO / ".dockerignore"
    assert path.is_file(), "the build context (repo root) needs a .dockerignore"
    return DockerIgnore.parse(path.read_text())


# ---------------------------------------------------------------- the real files
@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_copy_sources_exist_and_reach_the_context(image: Image, ignore: DockerIgnore) -> None:
    df = load(image)
    assert check_copy_sources(df, REPO, ignore) == []
    assert check_copy_from(df) == []


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_multi_stage_on_a_slim_python_base(image: Image) -> None:
    df = load(image)
    assert check_stages(df) == []
    assert check_base_images(df, PYTHON) == []
    assert "slim" in df.final.base


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_final_stage_is_non_root_without_compilers(image: Image) -> None:
    df = load(image)
    assert check_user(df) == []
    assert check_no_compilers(df) == []


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_final_stage_env_labels_and_no_healthcheck(image: Image) -> None:
    df = load(image)
    required = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    assert check_env(df, required) == []
    assert df.final.all("HEALTHCHECK") == [], "Kubernetes probes do health, not Docker"
    found = labels(df)
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}" in found, key


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_entrypoint_is_the_console_script_of_the_distributions_built(image: Image) -> None:
    df = load(image)
    assert check_entrypoint(df, SCRIPTS) == []
    (entrypoint,) = df.final.all("ENTRYPOINT")
    assert entrypoint.args == [image.script]
    commands = df.final.all("CMD")
    assert [c.args for c in commands] == ([list(image.command)] if image.command else [])
    assert all(c.exec_form for c in commands)
    # Exactly its own distributions: the worker image must not carry kopf, nor the
    # operator image the job handlers.
    assert wheel_sources(df) == list(image.distributions)
    owner = next(
        f for f in image.distributions if image.script in DISTRIBUTIONS[f].get("scripts", {})
    )
    assert owner != PROTOCOL


def test_dockerignore_keeps_the_heavy_and_private_folders_out(ignore: DockerIgnore) -> None:
    for path in [
        ".git/config",
        ".venv/bin/python",
        ".mypy_cache/x.json",
        "tests/conftest.py",
        "bench/run.py",
        "bench/.cache/node/node_modules/x/index.js",
        ".cluster/kubeconfig",
        "docs/kind.md",
        "pyproject.toml",
        "worker-image/jobqueue_worker/__pycache__/cli.cpython-311.pyc",
        "worker-image/jobqueue_worker/handlers/email.pyc",
    ]:
        assert ignore.ignored(path), path
    for path in [
        "worker-image/pyproject.toml",
        "worker-image/protocol/pyproject.toml",
        "worker-image/protocol/jobqueue_protocol/keys.py",
        "operator/pyproject.toml",
        "worker-image/jobqueue_cli/__init__.py",
        "worker-image/jobqueue_worker/scripts/step.lua",
        "worker-image/jobqueue_worker/handlers/webhook.py",
        "operator/jobqueue_operator/cli.py",
    ]:
        assert not ignore.ignored(path), path


# ---------------------------------------------------------------- the installed scripts
@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_entrypoint_script_runs_help(image: Image) -> None:
    """The same command line the image runs, plus --help, from this venv's scripts."""
    script = Path(sys.executable).parent / image.script
    if not script.exists():
        pytest.skip(f"{script} is not installed (run `make install`)")
    proc = subprocess.run(
        [str(script), *image.command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (
        f"`{image.script} {' '.join(image.command)} --help` exited {proc.returncode}: "
        f"the image's ENTRYPOINT/CMD would fail the same way.\n{proc.stderr[-2000:]}"
    )
    assert "usage" in proc.stdout.lower()


# ---------------------------------------------------------------- the checks bite
BAD = """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS builder
COPY operator/pyproject.toml missing-file.txt ./
COPY tests/conftest.py /x/
COPY ../outside /y/
ADD https://example.com/x.tgz /z/
FROM builder AS runtime
COPY --from=later /a /a
RUN apt-get update && apt-get install -y --no-install-recommends gcc \\
    libpq5
USER root
ENTRYPOINT jobqueue worker
"""


def test_checks_catch_a_bad_dockerfile(ignore: DockerIgnore) -> None:
    df = parse(BAD)
    assert [s.name for s in df.stages] == ["builder", "runtime"]
    assert df.stages[0].base == "python:3.11-slim-bookworm"  # ARG substituted

    copies = check_copy_sources(df, REPO, ignore)
    assert any("missing-file.txt: does not exist" in p for p in copies), copies
    assert any("tests/conftest.py is excluded by .dockerignore" in p for p in copies), copies
    assert any("escapes the build context" in p for p in copies), copies
    assert any("remote sources" in p for p in copies), copies
    assert not any("operator/pyproject.toml" in p for p in copies), copies

    assert check_copy_from(df) == ["line 9: COPY --from=later names no earlier stage"]
    assert any("inherits its tools" in p for p in check_stages(df))
    assert check_user(df) == ["USER 'root' is not numeric (runAsNonRoot cannot verify a name)"]
    assert len(check_no_compilers(df)) == 1
    assert "shell form" in check_entrypoint(df, SCRIPTS)[0]
    assert check_env(df, {"PYTHONUNBUFFERED": "1"}) != []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM python:3.11\nUSER 10001", "not a slim image"),
        ("FROM python:3.12-slim\nUSER 10001", "not Python 3.11"),
        ("FROM ubuntu:24.04\nUSER 10001", "not a tagged python image"),
        ("FROM python:3.11-slim\nUSER 0:10001", "is root"),
        ("FROM python:3.11-slim\nUSER 10001:0", "is root"),
        ("FROM python:3.11-slim\nRUN true", "no USER"),
        ('FROM python:3.11-slim\nENTRYPOINT ["celery", "worker"]', "no [project.scripts]"),
        ("FROM python:3.11-slim", "not multi-stage"),
    ],
)
def test_each_check_reports_its_problem(text: str, problem: str) -> None:
    df = parse(text)
    problems = (
        check_base_images(df, PYTHON)
        + check_user(df)
        + check_entrypoint(df, SCRIPTS)
        + check_stages(df)
    )
    assert any(problem in p for p in problems), problems


def test_dockerignore_semantics() -> None:
    rules = DockerIgnore.parse("*\n!src/\nsrc/**/*.tmp\n**/__pycache__\n!src/keep.tmp\n")
    assert rules.ignored("other.txt")
    assert rules.ignored("other/deep/file")
    assert not rules.ignored("src/a.py")
    assert not rules.ignored("src/pkg/b.py")
    assert rules.ignored("src/pkg/c.tmp")
    assert rules.ignored("src/__pycache__/a.pyc")
    assert not rules.ignored("src/keep.tmp")  # the last matching rule wins
