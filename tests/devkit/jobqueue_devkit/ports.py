"""Free loopback ports.

A port found free can be taken by someone else before our server binds it, so
every caller that starts a server retries on "address already in use"
(see `procs.ManagedProcess` users) instead of trusting this answer.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free on `host` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
