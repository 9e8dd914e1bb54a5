"""Debian packages the devkit needs, installed with apt-get when missing.

Only root on a Debian-like machine can install; anywhere else the caller gets
one line naming the package to install by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from jobqueue_devkit.errors import DevkitError

APT_TIMEOUT_S = 15 * 60
# Several sessions may run apt-get at once on one machine; wait for the dpkg lock.
LOCK_WAIT = "DPkg::Lock::Timeout=600"


def _present(what: str) -> bool:
    """A command name on PATH, or an absolute path that exists."""
    return Path(what).exists() if what.startswith("/") else shutil.which(what) is not None


def ensure_packages(needed: Mapping[str, str]) -> list[str]:
    """Install the package of every missing command or file; return the packages installed.

    `needed` maps a command name (or an absolute path the package ships) to
    its Debian package.
    """
    missing = sorted({pkg for what, pkg in needed.items() if not _present(what)})
    if not missing:
        return []
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DevkitError(
            f"missing Debian packages {' '.join(missing)}: install them as root "
            f"(`apt-get install {' '.join(missing)}`)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "-o", LOCK_WAIT, "update", "-qq"],
        ["apt-get", "-o", LOCK_WAIT, "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        try:
            out = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DevkitError(f"`{' '.join(argv)}` hung for {APT_TIMEOUT_S // 60} min") from exc
        if out.returncode != 0:
            last = (out.stderr.strip() or out.stdout.strip()).splitlines()[-1:]
            raise DevkitError(f"`{' '.join(argv)}` failed: {' '.join(last)}")
    still = sorted({pkg for what, pkg in needed.items() if not _present(what)})
    if still:
        raise DevkitError(f"apt-get installed {' '.join(missing)} but {' '.join(still)} is missing")
    return missing
