"""Free loopback ports, picked outside the kernel's ephemeral range.

``bind(port 0)`` hands out a port from the ephemeral range, the same range every
outgoing connection on the machine draws its local port from: in a test session
with hundreds of connections to the API server and Redis, a port found free that
way was taken by a client socket before our server bound it ("address already in
use"). Ports are therefore drawn at random from below that range, where only
servers bind. A port found free can still be taken by someone else before our
server binds it, so callers that can retry on "address already in use" should.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: Where the servers' ports are drawn from, when the ephemeral range leaves room;
#: below Kubernetes' NodePort range (30000-32767) too.
LOWEST = 20_000
HIGHEST = 29_999
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def server_port_range() -> tuple[int, int] | None:
    """LOWEST..HIGHEST, less what the ephemeral range covers; None when little is left."""
    try:
        ephemeral_low = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32_768  # Linux's default
    highest = min(HIGHEST, ephemeral_low - 1)
    if highest - LOWEST < 1_000:
        return None
    return LOWEST, highest


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free on `host` a moment ago (outside the ephemeral range)."""
    span = server_port_range()
    if span is not None:
        for _ in range(100):
            port = random.randint(*span)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def is_listening(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
