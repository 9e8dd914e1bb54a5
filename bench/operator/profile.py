"""Where the operator's CPU goes: py-spy attached to the running operator process.

py-spy samples the process the devkit started, from outside, so the operator
runs unchanged (pyinstrument would have to relaunch it inside its own profiler,
i.e. a different command line and a profiler hook in every call). Profiling
happens in its own window *after* the measured one, so the sampling never
perturbs the CPU figures. Only on-CPU samples are kept (py-spy drops idle
threads by default), and stacks are summarised by function (self share), by
package (self share) and, for the operator's own functions, inclusive share
("which of our calls leads to the time").
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE_HZ = 100
TOP = 15


def py_spy() -> str | None:
    """The py-spy executable next to the interpreter, else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path) -> Path:
    """Sample ``pid`` for ``seconds`` into ``out`` (collapsed stacks); bounded in time."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    proc = await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(RATE_HZ),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(seconds + 60):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy failed ({proc.returncode}): {err.decode()[-500:]}")
    return out


def _function(frame: str) -> str:
    """``func (path/to/file.py:123)`` → ``func (file.py)``: lines merged, path shortened."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({_short_path(file)})"


def _short_path(file: str) -> str:
    """py-spy already prints ``package/module.py``; shorten absolute paths the same way."""
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _package(frame: str) -> str:
    path = _short_path(frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0])
    return path.split("/", 1)[0].removesuffix(".py")


OURS = ("jobqueue_operator/", "jobqueue_protocol/")


def summarise(collapsed: Path) -> dict[str, Any]:
    """Self and inclusive shares per function, and self share per package."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkg: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += count
        self_t[_function(frames[-1])] += count
        pkg[_package(frames[-1])] += count
        for fn in {_function(f) for f in frames if f.partition(" (")[2].startswith(OURS)}:
            incl[fn] += count

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in c.most_common(TOP)] if total else []

    return {
        "samples": total,
        "rate_hz": RATE_HZ,
        "self": share(self_t),
        "inclusive_ours": share(incl),
        "by_package_self": share(pkg),
    }
