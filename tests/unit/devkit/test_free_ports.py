"""Free ports come from below the ephemeral range, where client sockets never land."""

from __future__ import annotations

import socket

from jobqueue_devkit import ports


def test_ports_are_drawn_below_the_ephemeral_range() -> None:
    span = ports.server_port_range()
    assert span is not None, "this machine's ephemeral range leaves room below it"
    low, high = span
    ephemeral_low = int(ports._RANGE_FILE.read_text().split()[0])
    assert low == ports.LOWEST
    assert high == min(ports.HIGHEST, ephemeral_low - 1)
    drawn = {ports.free_port() for _ in range(50)}
    assert all(low <= p <= high for p in drawn)
    assert len(drawn) > 40, "drawn at random, so parallel sessions rarely meet"


def test_a_port_in_use_is_never_returned() -> None:
    span = ports.server_port_range()
    assert span is not None
    held = []
    try:
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", ports.free_port()))
            sock.listen()
            held.append(sock)
        taken = {s.getsockname()[1] for s in held}
        assert len(taken) == 20
        assert not taken & {ports.free_port() for _ in range(200)}
    finally:
        for sock in held:
            sock.close()
