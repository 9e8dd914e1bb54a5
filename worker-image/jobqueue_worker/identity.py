"""Who this worker is: ``POD_NAME`` in Kubernetes, else host, pid and a random part."""

from __future__ import annotations

import os
import secrets
import socket


def worker_id(pod_name: str | None) -> str:
    if pod_name:
        # A restarted container keeps its pod name; the suffix keeps leases apart.
        return f"{pod_name}:{os.getpid()}"
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of this process (or ``pid``); 0 if it cannot be read."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:
        return 0
