"""Each image's wheels, built from exactly its Docker build context, install and run.

The builder stage of each Dockerfile is replayed without a Docker engine: the files
the context holds (tracked files less what .dockerignore drops), copied as the
stage's COPY lines copy them, the wheels built from the folders its `pip wheel`
line names, installed into a fresh venv, and every console script run with --help
and --version. Then the side rules: the worker's venv has no kopf, no Kubernetes
client and no simulator data; the operator's has no job handlers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "unit" / "images"))
from dockerfile_checks import DockerIgnore, parse, tracked_files, wheel_sources  # noqa: E402

# One xdist worker builds both images' wheels once, not one worker per test.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheels")]


@dataclass(frozen=True)
class Image:
    dockerfile: str
    scripts: tuple[str, ...]
    absent_modules: tuple[str, ...]  # must not be importable in the image's venv


IMAGES = [
    Image(
        "worker-image/Dockerfile",
        ("jobqueue",),
        ("kopf", "kubernetes_asyncio", "jobqueue_operator", "matplotlib"),
    ),
    Image("operator/Dockerfile", ("jobqueue-operator",), ("jobqueue_worker", "jobqueue_cli")),
]


def _version() -> str:
    text = (REPO / "operator" / "pyproject.toml").read_text()
    version: str = tomllib.loads(text)["project"]["version"]
    return version


def _stage_builder_sources(dockerfile: str, dest_root: Path) -> list[str]:
    """Copy what the builder stage's COPY lines take from the context; its wheel sources."""
    df = parse((REPO / dockerfile).read_text())
    ignore = DockerIgnore.parse((REPO / ".dockerignore").read_text())
    builder = df.stages[0]
    for ins in builder.all("COPY"):
        assert "from" not in ins.flags, "the builder stage copies only from the context"
        *sources, dest = ins.args
        for src in sources:
            root = REPO / PurePosixPath(src.lstrip("/"))
            assert root.is_dir(), f"{dockerfile}: COPY {src} is not a folder"
            for rel in tracked_files(REPO, root):
                if ignore.ignored(rel):
                    continue
                inside = Path(rel).relative_to(root.relative_to(REPO))
                target = dest_root / dest / inside
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, target)
    return wheel_sources(df)


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module", params=IMAGES, ids=[i.dockerfile for i in IMAGES])
def installed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Image, Path]:
    image: Image = request.param
    work = tmp_path_factory.mktemp(Path(image.dockerfile).parent.name)
    src, wheels = work / "src", work / "wheels"
    for source in _stage_builder_sources(image.dockerfile, src):
        built = _run(
            sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheels,
            src / source,
        )  # fmt: skip
        assert built.returncode == 0, f"building {source} from the context:\n{built.stderr}"
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = _run(
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", *sorted(wheels.glob("*.whl")),
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    return image, env_dir


def test_every_console_script_runs_help_and_version(installed: tuple[Image, Path]) -> None:
    image, env_dir = installed
    for script in image.scripts:
        path = env_dir / "bin" / script
        assert path.is_file(), f"{script} is not installed from the context's wheels"
        helped = _run(path, "--help")
        assert helped.returncode == 0, f"{script} --help:\n{helped.stderr[-2000:]}"
        assert "usage" in helped.stdout.lower()
        versioned = _run(path, "--version")
        assert versioned.returncode == 0, versioned.stderr
        assert versioned.stdout.split() == [script, _version()]


def test_the_image_holds_only_its_own_side(installed: tuple[Image, Path]) -> None:
    image, env_dir = installed
    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
    )
    found = _run(env_dir / "bin" / "python", "-c", probe, *image.absent_modules)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == []


def test_the_worker_distribution_declares_no_kopf(installed: tuple[Image, Path]) -> None:
    image, env_dir = installed
    if "jobqueue" not in image.scripts:
        pytest.skip("the operator's distribution depends on kopf by design")
    probe = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted(r for d in ('jobqueue-worker', 'jobqueue-protocol') "
        "for r in (m.requires(d) or []))))"
    )
    out = _run(env_dir / "bin" / "python", "-c", probe)
    assert out.returncode == 0, out.stderr
    requirements = " ".join(json.loads(out.stdout)).lower()
    assert "kopf" not in requirements
    assert "kubernetes" not in requirements
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    assert not list(site.rglob("*.csv")), "simulator traces must not ship in the worker image"
