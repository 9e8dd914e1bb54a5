"""Who this worker is: ``POD_NAME`` in Kubernetes, else host, pid and a random part."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import secrets
import socket
import time


def worker_id(pod_name: str | None) -> str:
    if pod_name:
        # A restarted container keeps its pod name; the suffix keeps leases apart.
        return f"{pod_name}:{os.getpid()}"
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@functools.cache
def worker_version() -> str | None:
    """The installed jobqueue-worker's version, for the heartbeat (None if not installed)."""
    try:
        return importlib.metadata.version("jobqueue-worker")
    except importlib.metadata.PackageNotFoundError:
        return None


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of this process (or ``pid``); 0 if it cannot be read."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:
        return 0


class CpuMeter:
    """Cores this process used since the previous sample, for the heartbeat.

    The operator's CPU trigger reads it instead of a metrics-server. It counts
    user and system time of every thread plus reaped children (isolated job
    processes), so 1.0 means one core busy on average over the interval.
    """

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    @staticmethod
    def _cpu_seconds() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def sample(self) -> float | None:
        """None on the first call (no interval yet), then the average since the last."""
        now = (time.monotonic(), self._cpu_seconds())
        last, self._last = self._last, now
        if last is None or now[0] <= last[0]:
            return None
        return max(0.0, (now[1] - last[1]) / (now[0] - last[0]))
