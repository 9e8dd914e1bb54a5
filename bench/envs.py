"""Per-peer environments: one virtualenv per Python peer, one node_modules for BullMQ.

Everything lives under a git-ignored cache dir (``bench/.cache`` or ``$JOBQUEUE_BENCH_CACHE``),
so the peers' redis-py pins never touch the project venv. Each environment is (re)built only
when its pinned requirements change (a stamp file holds their hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
REQUIREMENTS_DIR = BENCH_DIR / "requirements"
ADAPTERS_DIR = BENCH_DIR / "adapters"
BULLMQ_SRC = ADAPTERS_DIR / "bullmq"

INSTALL_TIMEOUT_S = 900


def cache_dir() -> Path:
    """Where peer environments live (outside git)."""
    override = os.environ.get("JOBQUEUE_BENCH_CACHE")
    return Path(override) if override else BENCH_DIR / ".cache"


@dataclass(frozen=True)
class PeerEnv:
    """A ready environment: the interpreter to run adapters with and what is installed."""

    name: str
    executable: Path
    packages: dict[str, str]


class EnvError(RuntimeError):
    """An environment could not be created."""


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:16]


def _run(cmd: list[str], *, cwd: Path | None = None, log: Path) -> None:
    with log.open("ab") as fh:
        fh.write(("\n$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        try:
            proc = subprocess.run(
                cmd,
                cwd=cwd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EnvError(f"timed out after {INSTALL_TIMEOUT_S}s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise EnvError(f"{' '.join(cmd)} exited {proc.returncode}; log {log}:\n{tail}")


def _pip_freeze(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return {row["name"].lower(): row["version"] for row in json.loads(out)}


def python_env(peer: str, requirements: str) -> PeerEnv:
    """Create (or reuse) ``<cache>/venvs/<peer>`` from ``bench/requirements/<requirements>.txt``."""
    req = REQUIREMENTS_DIR / f"{requirements}.txt"
    if not req.exists():
        raise EnvError(f"missing pin file {req}")
    root = cache_dir() / "venvs" / requirements
    python = root / "bin" / "python"
    stamp = root / ".bench-stamp"
    want = _digest(req.read_bytes(), sys.version.encode())
    if not (python.exists() and stamp.exists() and stamp.read_text().strip() == want):
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        log = cache_dir() / f"install-{requirements}.log"
        log.write_text("")
        _run([sys.executable, "-m", "venv", str(root)], log=log)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
        _run([*pip, "install", "--upgrade", "pip"], log=log)
        _run([*pip, "install", "-r", str(req)], log=log)
        stamp.write_text(want + "\n")
    return PeerEnv(name=peer, executable=python, packages=_pip_freeze(python))


def project_env() -> PeerEnv:
    """Our worker runs from the project venv (the interpreter running the harness)."""
    python = Path(sys.executable)
    return PeerEnv(name="ours", executable=python, packages=_pip_freeze(python))


def node_env() -> PeerEnv:
    """Install BullMQ's pinned npm deps into ``<cache>/node`` (package.json copied there)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not node or not npm:
        raise EnvError("node/npm not found on PATH")
    root = cache_dir() / "node"
    pkg = BULLMQ_SRC / "package.json"
    lock = BULLMQ_SRC / "package-lock.json"
    want = _digest(pkg.read_bytes(), lock.read_bytes() if lock.exists() else b"")
    stamp = root / ".bench-stamp"
    if not (
        stamp.exists() and stamp.read_text().strip() == want and (root / "node_modules").exists()
    ):
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        shutil.copy2(pkg, root / "package.json")
        log = cache_dir() / "install-bullmq.log"
        log.write_text("")
        quiet = ["--no-audit", "--no-fund", "--loglevel=error"]
        if lock.exists():  # the committed lock pins the transitive packages npm resolves here
            shutil.copy2(lock, root / "package-lock.json")
        _run([npm, "install", *quiet, "--save-exact"], cwd=root, log=log)
        stamp.write_text(want + "\n")
    # The adapter script is copied next to node_modules so `import "bullmq"` resolves.
    shutil.copy2(BULLMQ_SRC / "bench.mjs", root / "bench.mjs")
    versions: dict[str, str] = {
        "node": subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    }
    modules = root / "node_modules"
    for meta in sorted([*modules.glob("*/package.json"), *modules.glob("@*/*/package.json")]):
        try:
            data = json.loads(meta.read_text())
            versions[str(data["name"])] = str(data["version"])
        except (OSError, ValueError, KeyError):
            continue
    return PeerEnv(name="bullmq", executable=Path(node), packages=versions)
