"""Memory limits, pure: byte sizes, the container's cgroup limit, and the decisions.

``parse_bytes`` accepts what Kubernetes and people write: ``536870912``, ``512Mi``,
``1G``, ``1.5Gi``, ``800M``, ``64k``. The cgroup reader takes the filesystem root
as an argument (tests pass a temporary directory): cgroup v2 ``memory.max``
first, then v1 ``memory/memory.limit_in_bytes``; ``max`` or a v1 "unlimited"
value (≥ 2^60) means no limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
EXPECTED_BYTES = "a size in bytes, or with a unit: 512Mi, 1G, 1.5Gi, 800M, 64k"
_V1_UNLIMITED = 1 << 60


def parse_bytes(value: str | int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}; expected {EXPECTED_BYTES}")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(value)
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"not a size: {value!r}; expected {EXPECTED_BYTES}")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError(f"a size must be positive: {value!r}")
    return n


def cgroup_limit(root: Path = Path("/")) -> int | None:
    """The container's memory limit in bytes, or None (no cgroup file, or unlimited)."""
    v2 = root / "sys/fs/cgroup/memory.max"
    v1 = root / "sys/fs/cgroup/memory/memory.limit_in_bytes"
    for path in (v2, v1):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        try:
            n = int(text)
        except ValueError:
            continue
        return None if n <= 0 or n >= _V1_UNLIMITED else n
    return None


@dataclass(frozen=True)
class MemoryPolicy:
    """The worker's limits in bytes; None = not enforced."""

    soft: int | None = None
    hard: int | None = None

    def state(self, rss: int) -> Literal["ok", "soft", "hard"]:
        if self.hard is not None and rss >= self.hard:
            return "hard"
        if self.soft is not None and rss >= self.soft:
            return "soft"
        return "ok"

    def fits(self, rss: int, reserved: int, expected: int) -> bool:
        """Would a job expecting ``expected`` bytes keep the worker under its hard limit?

        ``reserved``: the expected bytes of jobs already running (their growth may
        not show in RSS yet). A job is always admitted when nothing else runs, so a
        type that expects more than the limit cannot wedge the queue; it fails
        (or trips the hard limit) on its own.
        """
        if self.hard is None or expected <= 0:
            return True
        return rss + reserved + expected <= self.hard


def default_policy(
    soft: int | None, hard: int | None, cgroup: int | None, soft_ratio: float = 0.8
) -> MemoryPolicy:
    """Explicit limits win; otherwise hard = 90 % of the cgroup limit (before the
    kernel's OOM killer) and soft = ``soft_ratio`` × hard."""
    if hard is None and cgroup is not None:
        hard = int(cgroup * 0.9)
    if soft is None and hard is not None:
        soft = int(hard * soft_ratio)
    return MemoryPolicy(soft=soft, hard=hard)
